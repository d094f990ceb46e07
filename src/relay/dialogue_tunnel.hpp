#pragma once
// In-path connections to mail and FTP ports: the plaintext dialogue is relayed untouched while
// classify::StartTlsDialogue follows it; once the server accepts STARTTLS (STLS, AUTH TLS) the
// TLS that follows takes the tunnel's path (classify, decide, intercept or pass through), and an
// intercepted session's decrypted dialogue is followed on for the record. FTP passive replies
// tell the gateway which data connections to expect (relay/ftp_data_registry.hpp).
#include <asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "relay/connection.hpp"

namespace tlsgate::relay {

// For every listener once upstream TCP is connected (CONNECT and SOCKS5 too): a
// STARTTLS port (classify::starttls_protocol_for_port) gets the dialogue, an expected FTP data
// connection the name of its control session, anything else run_tunnel as before.
asio::awaitable<void> run_in_path_tunnel(std::shared_ptr<Connection> connection,
                                         std::vector<std::uint8_t> already_read,
                                         TunnelTarget target);

}  // namespace tlsgate::relay
