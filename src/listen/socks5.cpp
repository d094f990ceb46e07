#include "listen/socks5.hpp"

#include <algorithm>
#include <string_view>
#include <utility>

#include "common/hostname.hpp"

namespace tlsgate::listen {

namespace {

constexpr std::uint8_t kSocksVersion = 0x05;
constexpr std::uint8_t kAuthVersion = 0x01;  // RFC 1929 sub-negotiation version
constexpr std::uint8_t kAuthSuccess = 0x00;
constexpr std::uint8_t kAuthFailure = 0x01;  // any non-zero status is a failure; 1 is customary

constexpr std::uint8_t kCommandConnect = 0x01;
constexpr std::uint8_t kCommandBind = 0x02;
constexpr std::uint8_t kCommandUdpAssociate = 0x03;

constexpr std::uint8_t kAddressIpv4 = 0x01;
constexpr std::uint8_t kAddressDomain = 0x03;
constexpr std::uint8_t kAddressIpv6 = 0x04;

// VER CMD RSV ATYP: the fixed part of a request before the address.
constexpr std::size_t kRequestHeaderSize = 4;
constexpr std::size_t kPortSize = 2;

// Compares a client's guess with a configured secret without an early exit, so the time taken
// does not reveal how many leading bytes of the guess were right. The loop runs over the guess
// (which the client already knows) and the secret is indexed without a data-dependent branch.
// The accumulator is volatile so the compiler cannot turn the loop back into an early exit.
bool equal_in_constant_time(std::span<const std::uint8_t> guess, std::string_view secret) {
    volatile std::uint8_t difference = guess.size() == secret.size() ? 0 : 1;
    if (secret.empty()) {
        return guess.empty();
    }
    for (std::size_t i = 0; i < guess.size(); ++i) {
        const auto secret_byte = static_cast<std::uint8_t>(secret[i % secret.size()]);
        difference = static_cast<std::uint8_t>(difference | (guess[i] ^ secret_byte));
    }
    return difference == 0;
}

// Client-chosen bytes go into log messages only as printable ASCII, and not too many of them.
std::string printable(std::span<const std::uint8_t> bytes) {
    constexpr std::size_t kMaxShown = 64;
    std::string text;
    for (std::size_t i = 0; i < bytes.size() && i < kMaxShown; ++i) {
        const auto c = static_cast<char>(bytes[i]);
        text.push_back(bytes[i] >= 0x20 && bytes[i] < 0x7f ? c : '?');
    }
    if (bytes.size() > kMaxShown) {
        text += "...";
    }
    return text;
}

void append_reply(std::vector<std::uint8_t>& out, std::initializer_list<std::uint8_t> bytes) {
    out.insert(out.end(), bytes.begin(), bytes.end());
}

void append_connect_reply(std::vector<std::uint8_t>& out, Socks5Reply reply) {
    const auto failure = Socks5ServerHandshake::reply_for(reply);
    out.insert(out.end(), failure.begin(), failure.end());
}

}  // namespace

const char* to_string(Socks5Reply reply) {
    switch (reply) {
        case Socks5Reply::succeeded:
            return "succeeded";
        case Socks5Reply::general_failure:
            return "general SOCKS server failure";
        case Socks5Reply::not_allowed_by_ruleset:
            return "connection not allowed by ruleset";
        case Socks5Reply::network_unreachable:
            return "network unreachable";
        case Socks5Reply::host_unreachable:
            return "host unreachable";
        case Socks5Reply::connection_refused:
            return "connection refused";
        case Socks5Reply::ttl_expired:
            return "TTL expired";
        case Socks5Reply::command_not_supported:
            return "command not supported";
        case Socks5Reply::address_type_not_supported:
            return "address type not supported";
    }
    return "unknown reply";
}

Socks5Reply socks5_reply_for_connect_error(std::errc error) {
    switch (error) {
        case std::errc::connection_refused:
            return Socks5Reply::connection_refused;
        case std::errc::network_unreachable:
        case std::errc::network_down:
            return Socks5Reply::network_unreachable;
        case std::errc::host_unreachable:
        case std::errc::address_not_available:
            return Socks5Reply::host_unreachable;
        case std::errc::timed_out:
            return Socks5Reply::ttl_expired;
        case std::errc::permission_denied:
        case std::errc::operation_not_permitted:
            // A local firewall rule refused the connect: the closest code is "not allowed".
            return Socks5Reply::not_allowed_by_ruleset;
        default:
            return Socks5Reply::general_failure;
    }
}

const char* to_string(Socks5Failure failure) {
    switch (failure) {
        case Socks5Failure::none:
            return "none";
        case Socks5Failure::bad_version:
            return "bad_version";
        case Socks5Failure::no_acceptable_method:
            return "no_acceptable_method";
        case Socks5Failure::bad_auth_version:
            return "bad_auth_version";
        case Socks5Failure::bad_credentials:
            return "bad_credentials";
        case Socks5Failure::bad_request_version:
            return "bad_request_version";
        case Socks5Failure::command_not_supported:
            return "command_not_supported";
        case Socks5Failure::address_type_not_supported:
            return "address_type_not_supported";
        case Socks5Failure::bad_domain_name:
            return "bad_domain_name";
    }
    return "unknown";
}

std::string Socks5Destination::host_text() const {
    if (const auto* name = std::get_if<std::string>(&host)) {
        return *name;
    }
    return std::get<IpAddress>(host).to_string();
}

Socks5ServerHandshake::Socks5ServerHandshake(std::shared_ptr<const Socks5AuthConfig> config)
    : config_(std::move(config)) {
    if (!config_) {
        // No configuration accepts nobody: every greeting gets "no acceptable methods".
        config_ = std::make_shared<const Socks5AuthConfig>(Socks5AuthConfig{false, {}});
    }
    message_.reserve(64);
}

std::vector<std::uint8_t> Socks5ServerHandshake::reply_for(Socks5Reply reply,
                                                           const IpAddress& bound_address,
                                                           std::uint16_t bound_port) {
    std::vector<std::uint8_t> out{kSocksVersion, static_cast<std::uint8_t>(reply), 0x00,
                                  bound_address.is_v6 ? kAddressIpv6 : kAddressIpv4};
    out.insert(out.end(), bound_address.bytes.begin(),
               bound_address.bytes.begin() + static_cast<std::ptrdiff_t>(bound_address.size()));
    out.push_back(static_cast<std::uint8_t>(bound_port >> 8));
    out.push_back(static_cast<std::uint8_t>(bound_port));
    return out;
}

std::vector<std::uint8_t> Socks5ServerHandshake::reply_for(Socks5Reply reply) {
    return reply_for(reply, IpAddress{}, 0);
}

Socks5Step Socks5ServerHandshake::feed(std::span<const std::uint8_t> bytes) {
    Socks5Step step;
    std::size_t position = 0;
    while (phase_ != Socks5Phase::request_ready && phase_ != Socks5Phase::failed) {
        Verdict verdict{Verdict::need};
        switch (phase_) {
            case Socks5Phase::awaiting_greeting:
                verdict = examine_greeting(step.reply);
                break;
            case Socks5Phase::awaiting_credentials:
                verdict = examine_credentials(step.reply);
                break;
            case Socks5Phase::awaiting_request:
                verdict = examine_request(step.reply);
                break;
            case Socks5Phase::request_ready:
            case Socks5Phase::failed:
                break;
        }
        if (verdict.kind == Verdict::complete) {
            message_.clear();
            continue;
        }
        if (verdict.kind == Verdict::failed || position == bytes.size()) {
            break;
        }
        // Take only what the next check needs, so a message never swallows bytes after it.
        const std::size_t wanted = verdict.bytes_needed - message_.size();
        const std::size_t taken = std::min(wanted, bytes.size() - position);
        message_.insert(message_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(position),
                        bytes.begin() + static_cast<std::ptrdiff_t>(position + taken));
        position += taken;
    }
    step.consumed = position;
    consumed_total_ += position;
    switch (phase_) {
        case Socks5Phase::request_ready:
            step.status = Socks5Status::request_ready;
            break;
        case Socks5Phase::failed:
            step.status = Socks5Status::failed;
            break;
        default:
            step.status = Socks5Status::need_more;
            break;
    }
    return step;
}

Socks5ServerHandshake::Verdict Socks5ServerHandshake::fail(Socks5Failure failure,
                                                           std::string message) {
    phase_ = Socks5Phase::failed;
    failure_ = failure;
    error_ = std::move(message);
    message_.clear();
    message_.shrink_to_fit();
    return Verdict{Verdict::failed};
}

// +----+----------+----------+
// |VER | NMETHODS | METHODS  |
// | 1  |    1     | 1 to 255 |
Socks5ServerHandshake::Verdict Socks5ServerHandshake::examine_greeting(
    std::vector<std::uint8_t>& reply) {
    if (message_.empty()) {
        return Verdict{Verdict::need, 1};
    }
    if (message_[0] != kSocksVersion) {
        // Not SOCKS5 (a SOCKS4 client sends 4, a TLS client 0x16): there is no reply it would
        // understand, so the connection is just closed.
        return fail(Socks5Failure::bad_version,
                    "greeting version " + std::to_string(message_[0]) + ", not 5");
    }
    if (message_.size() < 2) {
        return Verdict{Verdict::need, 2};
    }
    const std::size_t method_count = message_[1];
    if (message_.size() < 2 + method_count) {
        return Verdict{Verdict::need, 2 + method_count};
    }
    const auto methods = std::span(message_).subspan(2, method_count);
    const auto offers = [&](Socks5Method method) {
        return std::find(methods.begin(), methods.end(), static_cast<std::uint8_t>(method)) !=
               methods.end();
    };
    // A client that offers credentials while credentials are configured authenticates, even when
    // no-auth is also allowed: it chose to identify itself, and the log then names the user.
    if (!config_->users.empty() && offers(Socks5Method::username_password)) {
        append_reply(reply,
                     {kSocksVersion, static_cast<std::uint8_t>(Socks5Method::username_password)});
        request_.method = Socks5Method::username_password;
        phase_ = Socks5Phase::awaiting_credentials;
        return Verdict{Verdict::complete};
    }
    if (config_->allow_no_auth && offers(Socks5Method::no_auth)) {
        append_reply(reply, {kSocksVersion, static_cast<std::uint8_t>(Socks5Method::no_auth)});
        request_.method = Socks5Method::no_auth;
        phase_ = Socks5Phase::awaiting_request;
        return Verdict{Verdict::complete};
    }
    append_reply(reply, {kSocksVersion, static_cast<std::uint8_t>(Socks5Method::no_acceptable)});
    std::string offered;
    for (const auto method : methods) {
        offered += (offered.empty() ? "" : ",") + std::to_string(method);
    }
    return fail(Socks5Failure::no_acceptable_method,
                "no acceptable authentication method among those offered [" + offered + "]");
}

// +----+------+----------+------+----------+
// |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
// | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
Socks5ServerHandshake::Verdict Socks5ServerHandshake::examine_credentials(
    std::vector<std::uint8_t>& reply) {
    if (message_.empty()) {
        return Verdict{Verdict::need, 1};
    }
    if (message_[0] != kAuthVersion) {
        append_reply(reply, {kAuthVersion, kAuthFailure});
        return fail(Socks5Failure::bad_auth_version,
                    "username/password version " + std::to_string(message_[0]) + ", not 1");
    }
    if (message_.size() < 2) {
        return Verdict{Verdict::need, 2};
    }
    const std::size_t username_length = message_[1];
    const std::size_t password_length_at = 2 + username_length;
    if (message_.size() < password_length_at + 1) {
        return Verdict{Verdict::need, password_length_at + 1};
    }
    const std::size_t password_length = message_[password_length_at];
    const std::size_t total = password_length_at + 1 + password_length;
    if (message_.size() < total) {
        return Verdict{Verdict::need, total};
    }
    const auto username = std::span(message_).subspan(2, username_length);
    const auto password = std::span(message_).subspan(password_length_at + 1, password_length);
    // Every configured user is compared, with no early exit, so the time taken does not tell
    // which usernames exist.
    std::uint8_t matched = 0;
    for (const auto& user : config_->users) {
        const bool name_ok = equal_in_constant_time(username, user.username);
        const bool password_ok = equal_in_constant_time(password, user.password);
        matched = static_cast<std::uint8_t>(matched | (name_ok & password_ok));
    }
    if (matched == 0) {
        append_reply(reply, {kAuthVersion, kAuthFailure});
        return fail(Socks5Failure::bad_credentials,
                    "unknown user or wrong password for user '" + printable(username) + "'");
    }
    append_reply(reply, {kAuthVersion, kAuthSuccess});
    request_.username.assign(username.begin(), username.end());
    phase_ = Socks5Phase::awaiting_request;
    return Verdict{Verdict::complete};
}

// +----+-----+-------+------+----------+----------+
// |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
// | 1  |  1  | X'00' |  1   | Variable |    2     |
Socks5ServerHandshake::Verdict Socks5ServerHandshake::examine_request(
    std::vector<std::uint8_t>& reply) {
    if (message_.empty()) {
        return Verdict{Verdict::need, 1};
    }
    if (message_[0] != kSocksVersion) {
        append_connect_reply(reply, Socks5Reply::general_failure);
        return fail(Socks5Failure::bad_request_version,
                    "request version " + std::to_string(message_[0]) + ", not 5");
    }
    if (message_.size() < 2) {
        return Verdict{Verdict::need, 2};
    }
    if (const std::uint8_t command = message_[1]; command != kCommandConnect) {
        append_connect_reply(reply, Socks5Reply::command_not_supported);
        const char* name = command == kCommandBind           ? "BIND"
                           : command == kCommandUdpAssociate ? "UDP ASSOCIATE"
                                                             : "unknown command";
        return fail(Socks5Failure::command_not_supported,
                    std::string(name) + " (" + std::to_string(command) +
                        ") is not supported; only CONNECT is");
    }
    // RSV (message_[2]) should be zero; it carries nothing, so other values are tolerated.
    if (message_.size() < kRequestHeaderSize) {
        return Verdict{Verdict::need, kRequestHeaderSize};
    }
    const std::uint8_t address_type = message_[3];
    std::size_t address_size = 0;
    std::size_t address_at = kRequestHeaderSize;
    switch (address_type) {
        case kAddressIpv4:
            address_size = 4;
            break;
        case kAddressIpv6:
            address_size = 16;
            break;
        case kAddressDomain:
            if (message_.size() < kRequestHeaderSize + 1) {
                return Verdict{Verdict::need, kRequestHeaderSize + 1};
            }
            address_size = message_[kRequestHeaderSize];
            address_at = kRequestHeaderSize + 1;
            if (address_size == 0) {
                append_connect_reply(reply, Socks5Reply::host_unreachable);
                return fail(Socks5Failure::bad_domain_name, "empty domain name");
            }
            break;
        default:
            append_connect_reply(reply, Socks5Reply::address_type_not_supported);
            return fail(Socks5Failure::address_type_not_supported,
                        "address type " + std::to_string(address_type) + " is not supported");
    }
    const std::size_t total = address_at + address_size + kPortSize;
    if (message_.size() < total) {
        return Verdict{Verdict::need, total};
    }
    const auto address = std::span(message_).subspan(address_at, address_size);
    Socks5Destination destination;
    if (address_type == kAddressDomain) {
        const std::string_view name(reinterpret_cast<const char*>(address.data()), address.size());
        // Some clients put IP literals in the domain field; the shell should not resolve those.
        if (const auto literal = IpAddress::parse(name)) {
            destination.host = *literal;
        } else if (auto normalized = normalize_hostname(name)) {
            destination.host = std::move(*normalized);
        } else {
            append_connect_reply(reply, Socks5Reply::host_unreachable);
            return fail(Socks5Failure::bad_domain_name, "'" + printable(address) + "' (" +
                                                            std::to_string(address.size()) +
                                                            " bytes) is not a valid domain name");
        }
    } else {
        IpAddress ip;
        ip.is_v6 = address_type == kAddressIpv6;
        std::copy(address.begin(), address.end(), ip.bytes.begin());
        destination.host = ip;
    }
    const std::size_t port_at = address_at + address_size;
    destination.port = static_cast<std::uint16_t>((message_[port_at] << 8) | message_[port_at + 1]);
    request_.destination = std::move(destination);
    phase_ = Socks5Phase::request_ready;
    message_.clear();
    message_.shrink_to_fit();
    return Verdict{Verdict::complete};
}

}  // namespace tlsgate::listen
