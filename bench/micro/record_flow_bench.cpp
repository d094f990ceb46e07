// What recording one HTTP/1.1 exchange costs, piece by piece, on the workload of
// bench/recording_bench.py (a curl GET, an nginx 200 with a 1 KiB body):
// - the worker's share: dissecting both heads and the body (SHA-256 included), and building the
//   flow record and handing it to the writer thread (BM_DissectAndSubmit), against destroying
//   it on the spot (BM_DissectAndDestroy: the difference is the hand-off, mostly memory freed on
//   another thread than the one that allocated it);
// - the writer's share: storing records in SQLite, per record, by batch size (BM_StoreInsert).
// These run hot in the caches. Inside the gateway the same code runs between TLS records and
// system calls, with cold caches, and costs about three times as much per exchange.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "inspect/http1_dissector.hpp"
#include "record/flow_store.hpp"
#include "record/flow_writer.hpp"

namespace tlsgate::record {
namespace {

const std::string kRequest =
    "GET /1k.bin?1234 HTTP/1.1\r\nHost: origin.test:44321\r\nUser-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n\r\n";

std::string response() {
    return "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 21:47:10 GMT\r\n"
           "Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
           "Last-Modified: Sun, 22 Nov 2026 21:40:00 GMT\r\nConnection: keep-alive\r\n"
           "ETag: \"6740f7a0-400\"\r\nAccept-Ranges: bytes\r\n\r\n" +
           std::string(1024, 'x');
}

// The connection facts ConnectionInspector adds to every exchange.
FlowRecord with_connection_facts(inspect::HttpExchange&& exchange) {
    FlowRecord flow;
    flow.connection_id = 42;
    flow.client_address = "127.0.0.1:53422";
    flow.server_address = "127.0.0.1:44321";
    flow.sni = "origin.test";
    flow.client_tls_version = "TLSv1.3";
    flow.upstream_tls_version = "TLSv1.3";
    flow.alpn = "http/1.1";
    flow.exchange = std::move(exchange);
    return flow;
}

class DiscardingSink final : public FlowSink {
public:
    Result<void> write(std::span<const FlowRecord>) override { return {}; }
    std::string_view name() const override { return "discard"; }
};

class SubmittingSink final : public inspect::ExchangeSink {
public:
    explicit SubmittingSink(FlowWriter& writer) : writer_(writer) {}
    void on_exchange(inspect::HttpExchange&& exchange) override {
        writer_.submit(with_connection_facts(std::move(exchange)));
    }

private:
    FlowWriter& writer_;
};

// Each iteration one exchange, fed as the relay sees it (the request in one read, the
// response head and body in another).
void feed_exchanges(benchmark::State& state, inspect::Http1Dissector& dissector) {
    const std::string reply = response();
    for (auto _ : state) {
        const auto now = inspect::Clock::now();
        dissector.feed(inspect::Side::client, kRequest, now);
        dissector.feed(inspect::Side::server, reply, now);
    }
}

// One keep-alive connection: each iteration is one exchange, fed as the relay sees it (the
// request in one read, the response head and body in another).
void BM_DissectAndSubmit(benchmark::State& state) {
    std::vector<std::unique_ptr<FlowSink>> sinks;
    sinks.push_back(std::make_unique<DiscardingSink>());
    FlowWriterOptions options;
    options.queue_capacity = 1 << 20;
    auto writer = FlowWriter::start(std::move(sinks), options, {});
    if (!writer) {
        state.SkipWithError(writer.error().c_str());
        return;
    }
    SubmittingSink sink(**writer);
    const inspect::DissectorOptions dissector_options;
    inspect::Http1Dissector dissector(dissector_options, sink);
    feed_exchanges(state, dissector);
    (*writer)->close();
    if ((*writer)->written() != static_cast<std::uint64_t>(state.iterations())) {
        state.SkipWithError("not every exchange was recorded");
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DissectAndSubmit);

class DestroyingSink final : public inspect::ExchangeSink {
public:
    void on_exchange(inspect::HttpExchange&& exchange) override {
        FlowRecord flow = with_connection_facts(std::move(exchange));
        benchmark::DoNotOptimize(flow);
    }
};

void BM_DissectAndDestroy(benchmark::State& state) {
    DestroyingSink sink;
    const inspect::DissectorOptions dissector_options;
    inspect::Http1Dissector dissector(dissector_options, sink);
    feed_exchanges(state, dissector);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DissectAndDestroy);

// Records as the dissector makes them, stored in batches of state.range(0).
void BM_StoreInsert(benchmark::State& state) {
    static std::atomic<int> counter{0};
    const auto dir =
        std::filesystem::temp_directory_path() /
        ("tlsgate-flow-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(dir);
    auto store = FlowStore::open(dir / "flows.db", OpenMode::read_write);
    if (!store) {
        state.SkipWithError(store.error().c_str());
        return;
    }
    std::vector<FlowRecord> batch;
    {
        class Collector final : public inspect::ExchangeSink {
        public:
            explicit Collector(std::vector<FlowRecord>& out) : out_(out) {}
            void on_exchange(inspect::HttpExchange&& exchange) override {
                out_.push_back(with_connection_facts(std::move(exchange)));
            }

        private:
            std::vector<FlowRecord>& out_;
        } collector(batch);
        const inspect::DissectorOptions dissector_options;
        inspect::Http1Dissector dissector(dissector_options, collector);
        const std::string reply = response();
        for (std::int64_t i = 0; i < state.range(0); ++i) {
            dissector.feed(inspect::Side::client, kRequest, inspect::Clock::now());
            dissector.feed(inspect::Side::server, reply, inspect::Clock::now());
        }
    }
    // Times move on as they do on a gateway, so the time index is appended to, not piled on one
    // key.
    auto start = inspect::Clock::now();
    for (auto _ : state) {
        for (auto& flow : batch) {
            start += std::chrono::microseconds(250);
            flow.exchange.request_start = start;
            flow.exchange.response_start = start;
            flow.exchange.end = start;
        }
        if (auto inserted = store->insert(batch); !inserted) {
            state.SkipWithError(inserted.error().c_str());
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
}
BENCHMARK(BM_StoreInsert)->Arg(16)->Arg(128)->Arg(512);

}  // namespace
}  // namespace tlsgate::record

BENCHMARK_MAIN();
