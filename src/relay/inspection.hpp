#pragma once
// Watches the plaintext of one connection (an intercepted tunnel or forwarded plain HTTP): feeds
// it to a dissector, turns finished exchanges into flow records, and mirrors the bytes into the
// pcap file. Everything here only observes: it runs after the bytes were written on, and no
// failure in it (a malformed message, a full record queue) touches the relay.
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "inspect/sniffing_dissector.hpp"
#include "record/flow_record.hpp"
#include "record/pcap.hpp"

namespace tlsgate::relay {

class Connection;

class ConnectionInspector final : public inspect::ExchangeSink {
public:
    // `alpn` as negotiated with the client (chooses HTTP/2 or HTTP/1); `scheme` "https" for an
    // intercepted tunnel, "http" for forwarded plain HTTP.
    ConnectionInspector(Connection& connection, std::string_view alpn, std::string_view scheme);
    ~ConnectionInspector() override;

    void observe(inspect::Side side, std::span<const char> bytes);
    void end(inspect::Side side);
    // The connection is over: what is still open is recorded as incomplete.
    void finish();

    void on_exchange(inspect::HttpExchange&& exchange) override;

private:
    void flush_pcap(bool force);

    Connection& connection_;
    std::unique_ptr<inspect::SniffingDissector> dissector_;
    bool failure_counted_ = false;
    bool finished_ = false;
    std::optional<record::SynthesizedTcpFlow> pcap_flow_;
    std::string pcap_pending_;
};

}  // namespace tlsgate::relay
