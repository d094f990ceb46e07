#pragma once
// Incremental TLS ClientHello parser (sans-io). The shell feeds it the bytes it reads from the
// client, in whatever pieces TCP delivers them, and keeps those bytes itself so they can be
// replayed untouched (passthrough) or handed to OpenSSL (intercept). The parser reassembles the
// handshake message across TLS records and reads only what a decision needs.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tlsgate::classify {

struct ClientHello {
    std::uint16_t record_version = 0;  // version in the first record header
    std::uint16_t legacy_version = 0;  // client_version field of the ClientHello
    std::string sni;                   // raw server_name (host_name type); empty when absent
    bool has_sni = false;
    std::vector<std::string> alpn;                  // protocols in the client's order
    std::vector<std::uint16_t> supported_versions;  // from the extension; empty when absent
    std::vector<std::uint16_t> cipher_suites;
    std::size_t handshake_length = 0;  // bytes of the ClientHello message, 4-byte header included

    bool operator==(const ClientHello&) const = default;
};

enum class HelloStatus {
    need_more,  // feed more bytes
    complete,   // hello() is filled in
    not_tls,    // the first bytes are not a TLS handshake record: relay raw or reject
    invalid,    // a TLS record, but a malformed ClientHello (error() says what)
    too_large,  // the ClientHello would exceed the byte cap
};

const char* to_string(HelloStatus status);

class ClientHelloParser {
public:
    static constexpr std::size_t kDefaultMaxBytes = 64 * 1024;

    explicit ClientHelloParser(std::size_t max_bytes = kDefaultMaxBytes);

    // Feed the next bytes received from the client. Once the status is anything but need_more,
    // further calls return the same status and ignore their input. Linear in the bytes fed,
    // however they are split (a client trickling one byte at a time costs no more). A hello that
    // ends before its record does stays need_more until the rest of that record has arrived.
    HelloStatus feed(std::span<const std::uint8_t> bytes);

    HelloStatus status() const { return status_; }
    const ClientHello& hello() const { return hello_; }
    const std::string& error() const { return error_; }
    // Total bytes consumed from the stream so far. Once complete: every stream byte through the
    // end of the record that carries the hello's last byte, and not one more (bytes after it in
    // the same feed() are the caller's to relay).
    std::size_t bytes_consumed() const { return consumed_; }

private:
    HelloStatus fail(HelloStatus status, std::string message);
    HelloStatus reject_header_byte(std::uint8_t byte);
    HelloStatus start_record();
    std::size_t whole_message_at(std::span<const std::uint8_t> bytes) const;
    HelloStatus at_handshake_checkpoint();
    HelloStatus finish_message(std::span<const std::uint8_t> message);

    std::size_t max_bytes_;
    HelloStatus status_ = HelloStatus::need_more;
    ClientHello hello_;
    std::string error_;
    std::size_t consumed_ = 0;
    // Record reassembly: the current record header (5 bytes) and how much body remains.
    std::uint8_t header_[5]{};
    std::size_t header_filled_ = 0;
    std::size_t record_remaining_ = 0;
    // The handshake message bytes gathered across records, released once parsed, and the size
    // at which the next check is due.
    std::vector<std::uint8_t> handshake_;
    std::size_t handshake_checkpoint_ = 1;
    // The hello is parsed; what remains is the tail of the record that carried its last byte.
    bool hello_parsed_ = false;
};

// Convenience for tests and tools: parse a complete byte string at once.
ClientHelloParser parse_client_hello(std::span<const std::uint8_t> bytes);

}  // namespace tlsgate::classify
