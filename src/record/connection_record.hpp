#pragma once
// What the gateway recorded about one client connection: who, where, what the policy decided and
// why, what each TLS leg negotiated, what upstream presented, how much passed, and how it ended.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tlsgate::record {

struct TlsLeg {
    std::string version;  // "TLSv1.3"; empty when no handshake completed
    std::string alpn;
    std::string cipher;
    bool resumed = false;  // an abbreviated handshake resuming an earlier session
};

// A mail or FTP session (STARTTLS ports), or an FTP data connection: what the dialogue showed.
// Verbs and counts only: never an argument that may hold a credential, never message content.
struct MailRecord {
    std::string protocol;          // smtp, imap, pop3, ftp; ftp-data for a passive data connection
    std::string upgrade;           // none, upgraded, refused
    bool upgrade_offered = false;  // the server advertised it (relayed as sent: never stripped)
    bool observed_inside_tls = false;  // intercepted: the decrypted dialogue was followed too
    std::string state;                 // where following the dialogue stopped
    std::string dialogue_error;        // why it stopped, if it did
    std::string greeting_host;         // the host the server's greeting named
    std::vector<std::pair<std::string, std::uint64_t>> commands;  // verb, count; in order seen
    std::uint64_t other_commands = 0;
    // SMTP envelope and messages.
    std::uint64_t mail_from = 0;
    std::uint64_t rcpt_to = 0;
    std::vector<std::string> sender_domains;
    std::uint64_t messages = 0;
    std::uint64_t message_bytes = 0;
    std::vector<std::uint64_t> message_sizes;
    std::uint64_t ftp_data_endpoints = 0;  // passive endpoints the control session announced
    std::uint64_t ftp_control_id = 0;      // ftp-data: the control connection's id
};

struct ConnectionRecord {
    std::uint64_t id = 0;
    std::chrono::system_clock::time_point start;
    double duration_ms = 0;
    std::string listener;        // "explicit@127.0.0.1:8080"
    std::string client_address;  // "127.0.0.1:53422" (the real client, from a PROXY header if any)
    std::string proxied_by;      // the load balancer that sent the PROXY header
    std::string destination;     // host:port as requested (CONNECT authority, Host, or address)
    std::string destination_address;  // the address actually connected to
    std::string sni;
    std::string kind;    // tunnel, http (plain HTTP forwarding)
    std::string action;  // intercept, passthrough, block, none (failed before a decision)
    std::string rule;    // the policy rule that decided, or "default"
    std::string reason;  // why the connection took the path it took or ended as it did
    TlsLeg client_tls;
    TlsLeg upstream_tls;
    std::string upstream_subject;
    std::string upstream_issuer;
    std::string upstream_sha256;
    std::string upstream_verify_error;  // classify_verify_result code
    std::string upstream_aia_fetched;   // the caIssuers URL a missing intermediate came from
    std::string upstream_aia_error;     // why fetching it failed ("URL: reason")
    std::string upstream_error_action;  // what the client got instead: mirror, block
    std::string client_rejection;       // how the client turned our certificate down, if it did
    std::optional<int> http_status;     // the status tlsgate itself answered (CONNECT, errors)
    std::uint64_t http_requests = 0;    // plain HTTP requests forwarded on this connection
    std::uint64_t bytes_client_to_server = 0;
    std::uint64_t bytes_server_to_client = 0;
    std::optional<MailRecord> mail;
    std::string error;
};

}  // namespace tlsgate::record
