#pragma once
// The FTP data connections the gateway expects: an FTP control session announces its passive
// endpoints (227/229 replies), and the client's connection to one of them, on an arbitrary port,
// arrives moments later, perhaps on another worker. It carries no name of its own when the client
// sends no SNI; this remembers the control session's, so the policy decides the same way and the
// upstream is verified against the same name. Process-wide and locked: consulted once per
// in-path connection, but answered without the lock while nothing is expected (no FTP at all).
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include <openssl/ssl.h>

#include "common/ip.hpp"

namespace tlsgate::relay {

struct FtpDataExpectation {
    std::string host;              // for the policy: the control session's SNI or in-band name
    std::string verify_name;       // the control session's SNI (verified there), or empty
    std::uint64_t control_id = 0;  // the control connection's record id
    // The control connection's upstream TLS session, for servers that require data connections
    // to resume it (vsftpd's require_ssl_reuse, the default there); empty if it had none.
    std::shared_ptr<SSL_SESSION> upstream_session;
};

class FtpDataRegistry {
public:
    using Clock = std::chrono::steady_clock;
    // Clients connect as soon as they read the reply; a minute covers a slow one.
    static constexpr Clock::duration kLifetime = std::chrono::seconds(60);
    // Beyond this the oldest expectations are forgotten (their connections lose only the name).
    static constexpr std::size_t kMaxEntries = 4096;

    // The one every worker shares.
    static FtpDataRegistry& process();

    // A data connection from `client` (any client when absent) to server:port is expected.
    void expect(const IpAddress& server, std::uint16_t port, std::optional<IpAddress> client,
                FtpDataExpectation expectation, Clock::time_point now = Clock::now());
    // The expectation for this connection, if any; it is used up (a passive port serves one
    // transfer).
    std::optional<FtpDataExpectation> take(const IpAddress& server, std::uint16_t port,
                                           const std::optional<IpAddress>& client,
                                           Clock::time_point now = Clock::now());
    std::size_t size() const;

private:
    using Key = std::tuple<bool, std::array<std::uint8_t, 16>, std::uint16_t>;
    struct Entry {
        std::optional<IpAddress> client;
        FtpDataExpectation expectation;
        Clock::time_point expires;
        std::uint64_t sequence = 0;  // insertion order, to drop the oldest when full
    };

    void drop_expired(Clock::time_point now);

    mutable std::mutex mutex_;
    std::map<Key, Entry> entries_;
    std::uint64_t next_sequence_ = 0;
    std::atomic<std::size_t> count_{0};
};

}  // namespace tlsgate::relay
