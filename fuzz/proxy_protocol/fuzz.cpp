// Fuzz target for the PROXY protocol header parser. Beyond "no crash, no UB" it checks the
// promises the shell relies on: a settled verdict never changes as more bytes arrive (so parsing
// a growing buffer gives the whole input's answer, however TCP split it), a complete header is
// complete at exactly its length, and need_more never asks for more than the cap.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "listen/proxy_protocol.hpp"

namespace {

using tlsgate::listen::kMaxProxyHeaderBytes;
using tlsgate::listen::kMaxProxyV1HeaderBytes;
using tlsgate::listen::parse_proxy_header;
using tlsgate::listen::ProxyHeaderResult;
using tlsgate::listen::ProxyHeaderStatus;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "proxy_protocol fuzz: %s\n", what);
        std::abort();
    }
}

bool same(const ProxyHeaderResult& a, const ProxyHeaderResult& b) {
    return a.status == b.status && a.header == b.header && a.error == b.error;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const ProxyHeaderResult whole = parse_proxy_header(input);

    switch (whole.status) {
        case ProxyHeaderStatus::need_more:
            require(whole.error.empty(), "need_more with an error");
            require(size < kMaxProxyHeaderBytes, "need_more past the cap");
            if (size > 0 && data[0] == 'P') {
                require(size < kMaxProxyV1HeaderBytes, "v1 need_more past 107 bytes");
            }
            break;
        case ProxyHeaderStatus::invalid:
            require(!whole.error.empty(), "invalid without a reason");
            break;
        case ProxyHeaderStatus::complete: {
            const auto& header = whole.header;
            require(whole.error.empty(), "complete with an error");
            require(header.length > 0 && header.length <= size, "length outside the input");
            require(header.version == 1 || header.version == 2, "bad version");
            if (header.version == 1) {
                require(header.length <= kMaxProxyV1HeaderBytes, "v1 header over 107 bytes");
            }
            if (header.addresses) {
                require(header.addresses->source.address.is_v6 ==
                            header.addresses->destination.address.is_v6,
                        "source and destination families differ");
            }
            // Complete at exactly its length, and not a byte earlier.
            require(same(parse_proxy_header(input.first(header.length)), whole),
                    "header alone parses differently");
            require(parse_proxy_header(input.first(header.length - 1)).status ==
                        ProxyHeaderStatus::need_more,
                    "complete before its last byte");
            // The cap is exact: a header fits a cap of its own length and no smaller one.
            require(same(parse_proxy_header(input, header.length), whole),
                    "header fails under a cap of its own length");
            require(
                parse_proxy_header(input, header.length - 1).status == ProxyHeaderStatus::invalid,
                "header over a smaller cap is not invalid");
            break;
        }
    }

    // The shell parses a growing buffer: any prefix either needs more or already has the final
    // answer. Check a prefix chosen by the input, then every prefix of short inputs.
    const std::size_t split =
        size == 0 ? 0 : (data[size - 1] + 256 * std::size_t{data[size / 2]}) % (size + 1);
    const ProxyHeaderResult at_split = parse_proxy_header(input.first(split));
    require(at_split.status == ProxyHeaderStatus::need_more || same(at_split, whole),
            "verdict on a prefix differs from the whole input's");
    const std::size_t every_prefix_up_to = std::min<std::size_t>(size, 512);
    for (std::size_t length = 0; length < every_prefix_up_to; ++length) {
        const ProxyHeaderResult prefix = parse_proxy_header(input.first(length));
        if (prefix.status != ProxyHeaderStatus::need_more) {
            require(same(prefix, whole), "growing-buffer verdict differs from the whole input's");
            break;
        }
    }
    return 0;
}
