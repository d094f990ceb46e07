// Fuzz target for the incremental ClientHello parser. Beyond "no crash, no UB" it checks the
// parser's two promises: the result does not depend on how the stream is split, and the byte
// cap is exact.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "classify/client_hello.hpp"

namespace {

using tlsgate::classify::ClientHelloParser;
using tlsgate::classify::HelloStatus;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "client_hello fuzz: %s\n", what);
        std::abort();
    }
}

bool same_outcome(const ClientHelloParser& a, const ClientHelloParser& b) {
    return a.status() == b.status() && a.error() == b.error() &&
           a.bytes_consumed() == b.bytes_consumed() && a.hello() == b.hello();
}

ClientHelloParser parse_split(std::span<const std::uint8_t> input, std::size_t split,
                              std::size_t max_bytes) {
    ClientHelloParser parser(max_bytes);
    parser.feed(input.first(split));
    parser.feed(input.subspan(split));
    return parser;
}

ClientHelloParser parse_in_pieces(std::span<const std::uint8_t> input, std::size_t piece,
                                  std::size_t max_bytes) {
    ClientHelloParser parser(max_bytes);
    for (std::size_t position = 0; position < input.size(); position += piece) {
        parser.feed(input.subspan(position, std::min(piece, input.size() - position)));
    }
    return parser;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const std::size_t default_cap = ClientHelloParser::kDefaultMaxBytes;

    ClientHelloParser whole(default_cap);
    whole.feed(input);
    require(whole.bytes_consumed() <= size, "consumed more than it was fed");
    require(whole.bytes_consumed() <= default_cap, "consumed past the cap");
    if (whole.status() == HelloStatus::complete) {
        require(whole.hello().handshake_length <= whole.bytes_consumed(),
                "handshake longer than the bytes consumed");
        require(whole.error().empty(), "complete with an error message");
    } else if (whole.status() != HelloStatus::need_more) {
        require(!whole.error().empty(), "failure without an error message");
    }

    // Split position from the first byte, as asked, mixed with the last: on every interesting
    // input the first byte is 0x16, which alone would always split at the same fraction.
    std::size_t split = 0;
    if (size > 0) {
        split = (std::size_t{data[0]} + 256 * std::size_t{data[size - 1]}) % (size + 1);
    }
    require(same_outcome(whole, parse_split(input, split, default_cap)),
            "two-piece feed differs from whole feed");
    // Byte by byte is the harshest split; on large inputs it would cut the fuzzer's speed
    // tenfold, so those are fed in small pieces instead.
    const std::size_t piece = size <= 4096 ? 1 : 1 + data[size / 2] % 64;
    require(same_outcome(whole, parse_in_pieces(input, piece, default_cap)),
            "piecewise feed differs from whole feed");

    // The cap is exact: a hello that took N stream bytes completes under a cap of N and is
    // too_large under any smaller cap, however it is split.
    if (whole.status() == HelloStatus::complete && whole.bytes_consumed() > 0) {
        const std::size_t needed = whole.bytes_consumed();
        ClientHelloParser exact(needed);
        exact.feed(input);
        require(same_outcome(whole, exact), "complete hello fails under a cap of its own size");
        const std::size_t smaller = needed - 1 - (size > 1 ? data[1] % needed : 0);
        require(parse_split(input, split, smaller).status() == HelloStatus::too_large,
                "hello over a smaller cap is not too_large");
    }
    return 0;
}
