// How fast the ClientHello parser digests real hellos, fed whole or as TCP might trickle them.
// The 1-byte case is the cost a slow-loris client can impose; it should stay within a small
// factor of the whole-buffer case.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "classify/client_hello.hpp"

namespace {

using tlsgate::classify::ClientHelloParser;
using tlsgate::classify::HelloStatus;

const std::vector<std::uint8_t>& capture(const std::string& name) {
    static std::map<std::string, std::vector<std::uint8_t>> cache;
    auto found = cache.find(name);
    if (found == cache.end()) {
        std::ifstream file(std::string(TLSGATE_TEST_DATA) + "/client_hello/" + name,
                           std::ios::binary);
        std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                        std::istreambuf_iterator<char>());
        if (bytes.empty()) {
            std::fprintf(stderr, "missing capture %s\n", name.c_str());
            std::exit(1);
        }
        found = cache.emplace(name, std::move(bytes)).first;
    }
    return found->second;
}

// piece == 0 feeds the whole hello in one call.
void parse_hello(benchmark::State& state, const char* file, std::size_t piece) {
    const auto& bytes = capture(file);
    const std::span<const std::uint8_t> all(bytes);
    const std::size_t step = piece == 0 ? bytes.size() : piece;
    for (auto _ : state) {
        ClientHelloParser parser;
        for (std::size_t position = 0; position < all.size(); position += step) {
            parser.feed(all.subspan(position, std::min(step, all.size() - position)));
        }
        if (parser.status() != HelloStatus::complete) {
            state.SkipWithError("hello did not parse");
            break;
        }
        benchmark::DoNotOptimize(parser.hello().sni.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

BENCHMARK_CAPTURE(parse_hello, openssl_335B_whole, "openssl_s_client.bin", 0);
BENCHMARK_CAPTURE(parse_hello, openssl_335B_100B_pieces, "openssl_s_client.bin", 100);
BENCHMARK_CAPTURE(parse_hello, openssl_335B_1B_pieces, "openssl_s_client.bin", 1);
BENCHMARK_CAPTURE(parse_hello, curl_517B_whole, "curl_http2.bin", 0);
BENCHMARK_CAPTURE(parse_hello, curl_517B_100B_pieces, "curl_http2.bin", 100);
BENCHMARK_CAPTURE(parse_hello, curl_517B_1B_pieces, "curl_http2.bin", 1);
BENCHMARK_CAPTURE(parse_hello, large_8KiB_whole, "openssl_large_8k.bin", 0);
BENCHMARK_CAPTURE(parse_hello, large_8KiB_100B_pieces, "openssl_large_8k.bin", 100);
BENCHMARK_CAPTURE(parse_hello, large_8KiB_1B_pieces, "openssl_large_8k.bin", 1);
BENCHMARK_CAPTURE(parse_hello, two_records_20KiB_whole, "openssl_multi_record_20k.bin", 0);
BENCHMARK_CAPTURE(parse_hello, two_records_20KiB_1B_pieces, "openssl_multi_record_20k.bin", 1);

}  // namespace

BENCHMARK_MAIN();
