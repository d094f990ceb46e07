// Fuzz target for the HTTP/2 dissector. Beyond "no crash, no UB, no leak" it checks what the
// relay relies on: the outcome does not depend on how each side's bytes are cut into feeds, a
// failure stops reporting for good, finish() leaves nothing open, and every reported exchange
// is well formed (captures within the limit, SHA-256 present, sequences unique).
//
// Input layout: an options byte (bit 0: capture bodies, bit 1: a 16-byte capture limit), then
// records: a tag byte (bit 7: the server sent it, bits 0-6: length - 1) and up to 128 bytes.
// The unit test DISABLED_WriteFuzzSeeds writes seeds in this format.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inspect/http2_dissector.hpp"

namespace {

namespace inspect = tlsgate::inspect;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "http2 fuzz: %s\n", what);
        std::abort();
    }
}

struct Record {
    inspect::Side side;
    std::string_view bytes;
};

class CheckingSink final : public inspect::ExchangeSink {
public:
    explicit CheckingSink(const inspect::DissectorOptions& options) : options_(options) {}

    void on_exchange(inspect::HttpExchange&& exchange) override {
        require(exchange.protocol == "HTTP/2", "protocol is not HTTP/2");
        require(exchange.stream_id != 0, "exchange on stream 0");
        require(sequences_.insert(exchange.sequence).second, "sequence reported twice");
        require(exchange.end >= exchange.request_start, "ends before it starts");
        require(exchange.informational.size() <= inspect::Http2Dissector::kMaxInformational,
                "too many 1xx statuses kept");
        for (const auto* body : {&exchange.request_body, &exchange.response_body}) {
            require(body->sha256.size() == 64, "missing SHA-256");
            const std::size_t limit = options_.capture_bodies ? options_.body_capture_limit : 0;
            require(body->captured.size() <= limit, "captured beyond the limit");
            require(body->captured.size() <= body->size, "captured more than the body");
            require(!body->capture_truncated || body->size > body->captured.size(),
                    "truncated without more body");
        }
        digest_ += describe(exchange);
    }

    const std::string& digest() const { return digest_; }
    std::size_t count() const { return sequences_.size(); }

private:
    // Everything but the times, which depend on how the input was fed.
    static std::string describe(const inspect::HttpExchange& exchange) {
        std::string text = std::to_string(exchange.stream_id) + "#" +
                           std::to_string(exchange.sequence) + " " + exchange.method + " " +
                           exchange.scheme + " " + exchange.authority + " " + exchange.path + " " +
                           std::to_string(exchange.status) + " " + exchange.error + "|";
        for (const int status : exchange.informational) {
            text += std::to_string(status) + ",";
        }
        for (const auto* fields : {&exchange.request_headers, &exchange.response_headers}) {
            for (const auto& field : *fields) {
                text += field.name + ":" + field.value + ";";
            }
            text += "|";
        }
        for (const auto* body : {&exchange.request_body, &exchange.response_body}) {
            text += std::to_string(body->size) + body->sha256 + body->content_type +
                    body->content_encoding + body->captured + "|";
        }
        return text + "\n";
    }

    const inspect::DissectorOptions& options_;
    std::set<std::uint64_t> sequences_;
    std::string digest_;
};

enum class Feeding { as_recorded, runs_joined, byte_by_byte };

std::string run(const std::vector<Record>& records, const inspect::DissectorOptions& options,
                Feeding feeding) {
    CheckingSink sink(options);
    inspect::Http2Dissector dissector(options, sink);
    auto now = inspect::Clock::time_point{} + std::chrono::hours(1);
    std::size_t reported_at_failure = 0;
    bool failed = false;
    auto feed = [&](inspect::Side side, std::string_view bytes) {
        now += std::chrono::milliseconds(1);
        dissector.feed(side, std::span<const char>(bytes.data(), bytes.size()), now);
        if (failed) {
            require(sink.count() == reported_at_failure, "reported after the failure");
        } else if (dissector.failed()) {
            failed = true;
            reported_at_failure = sink.count();
            require(dissector.open_streams() == 0, "streams left open after the failure");
        }
    };
    for (std::size_t i = 0; i < records.size();) {
        std::size_t end = i + 1;
        if (feeding == Feeding::runs_joined) {
            while (end < records.size() && records[end].side == records[i].side) {
                ++end;
            }
        }
        // Copied: the tag bytes sit between the records' slices of the input.
        std::string joined;
        for (std::size_t k = i; k < end; ++k) {
            joined += records[k].bytes;
        }
        if (feeding == Feeding::byte_by_byte) {
            for (const char byte : joined) {
                feed(records[i].side, std::string_view(&byte, 1));
            }
        } else {
            feed(records[i].side, joined);
        }
        i = end;
    }
    dissector.end(inspect::Side::client, now);
    dissector.end(inspect::Side::server, now);
    dissector.finish(now);
    require(dissector.open_streams() == 0, "streams left open after finish");
    const std::size_t reported = sink.count();
    dissector.finish(now);
    require(sink.count() == reported, "finish reported twice");
    return dissector.failure() + "\n" + sink.digest();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    inspect::DissectorOptions options;
    options.capture_bodies = (data[0] & 0x1) != 0;
    if ((data[0] & 0x2) != 0) {
        options.body_capture_limit = 16;
    }
    options.redacted_headers = {"authorization", "cookie"};

    std::vector<Record> records;
    const char* input = reinterpret_cast<const char*>(data);
    for (std::size_t position = 1; position < size;) {
        const std::uint8_t tag = data[position++];
        const std::size_t length = std::min<std::size_t>((tag & 0x7f) + 1, size - position);
        records.push_back({(tag & 0x80) != 0 ? inspect::Side::server : inspect::Side::client,
                           std::string_view(input + position, length)});
        position += length;
    }

    const std::string as_recorded = run(records, options, Feeding::as_recorded);
    require(run(records, options, Feeding::runs_joined) == as_recorded,
            "outcome depends on how runs of records are joined");
    require(run(records, options, Feeding::byte_by_byte) == as_recorded,
            "outcome depends on feeding byte by byte");
    return 0;
}
