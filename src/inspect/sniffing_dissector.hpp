#pragma once
// Picks the dissector for a connection: HTTP/2 when ALPN says h2 or the client opens with the
// HTTP/2 preface, HTTP/1 when ALPN says http/1.1 or the client opens with a request line, and
// nothing otherwise (IMAPS, a server that speaks first, any other protocol inside TLS): such a
// connection is relayed and recorded as a connection, just not dissected. That is not a failure.
#include <memory>
#include <string>
#include <string_view>

#include "inspect/exchange.hpp"

namespace tlsgate::inspect {

class SniffingDissector final : public Dissector {
public:
    SniffingDissector(const DissectorOptions& options, ExchangeSink& sink, std::string_view alpn);

    void feed(Side side, std::span<const char> bytes, Clock::time_point now) override;
    void end(Side side, Clock::time_point now) override;
    void finish(Clock::time_point now) override;

    // "HTTP/1", "HTTP/2", "" while undecided, "none" when the connection is not HTTP.
    std::string_view protocol() const { return protocol_; }

private:
    void choose(std::string_view first_client_bytes);
    void start_http1();
    void start_http2();

    const DissectorOptions& options_;
    ExchangeSink& sink_;
    std::unique_ptr<Dissector> chosen_;
    std::string sniffed_;  // client bytes held until they decide (at most the preface length)
    std::string_view protocol_;
    Clock::time_point first_client_byte_{};
};

}  // namespace tlsgate::inspect
