// Fuzz target for the SOCKS5 server handshake. Beyond "no crash, no UB" it checks that the
// outcome (replies, status, bytes consumed, request or failure) does not depend on how the stream
// is split, and that whatever it accepts is well-formed.
//
// Input: the first byte picks the listener's authentication config (low two bits), the rest is
// the client's byte stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/hostname.hpp"
#include "listen/socks5.hpp"

namespace {

using tlsgate::listen::Socks5AuthConfig;
using tlsgate::listen::Socks5Failure;
using tlsgate::listen::Socks5Method;
using tlsgate::listen::Socks5Phase;
using tlsgate::listen::Socks5Request;
using tlsgate::listen::Socks5ServerHandshake;
using tlsgate::listen::Socks5Status;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "socks5 fuzz: %s\n", what);
        std::abort();
    }
}

std::shared_ptr<const Socks5AuthConfig> config_for(std::uint8_t selector) {
    switch (selector & 3) {
        case 0:
            return std::make_shared<const Socks5AuthConfig>(Socks5AuthConfig{true, {}});
        case 1:
            return std::make_shared<const Socks5AuthConfig>(
                Socks5AuthConfig{false, {{"alice", "correct-pass"}, {"bob", "hunter2"}}});
        case 2:
            return std::make_shared<const Socks5AuthConfig>(
                Socks5AuthConfig{true, {{"alice", "correct-pass"}}});
        default:
            return nullptr;
    }
}

struct Outcome {
    Socks5Status status = Socks5Status::need_more;
    std::vector<std::uint8_t> replies;
    std::size_t consumed = 0;
    Socks5Phase phase = Socks5Phase::awaiting_greeting;
    Socks5Request request;
    Socks5Failure failure = Socks5Failure::none;
    std::string error;

    bool operator==(const Outcome&) const = default;
};

Outcome run_in_pieces(const std::shared_ptr<const Socks5AuthConfig>& config,
                      std::span<const std::uint8_t> stream, std::size_t first_piece,
                      std::size_t piece) {
    Socks5ServerHandshake handshake(config);
    Outcome outcome;
    std::size_t position = 0;
    std::size_t next = std::min(first_piece, stream.size());
    while (true) {
        const auto step = handshake.feed(stream.subspan(position, next - position));
        require(step.consumed <= next - position, "consumed more than it was fed");
        if (step.status == Socks5Status::need_more) {
            require(step.consumed == next - position, "need_more left input unconsumed");
        }
        outcome.replies.insert(outcome.replies.end(), step.reply.begin(), step.reply.end());
        outcome.consumed += step.consumed;
        outcome.status = step.status;
        if (next == stream.size()) {
            break;
        }
        position = next;
        next = std::min(stream.size(), next + piece);
    }
    require(outcome.consumed == handshake.bytes_consumed(), "consumed totals disagree");
    outcome.phase = handshake.phase();
    if (outcome.status == Socks5Status::request_ready) {
        outcome.request = handshake.request();
    }
    outcome.failure = handshake.failure();
    outcome.error = handshake.error();
    return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const auto config = config_for(data[0]);
    const std::span<const std::uint8_t> stream(data + 1, size - 1);

    const Outcome whole = run_in_pieces(config, stream, stream.size(), 1);
    require(whole.consumed <= stream.size(), "consumed past the input");
    switch (whole.status) {
        case Socks5Status::need_more:
            require(whole.consumed == stream.size(), "need_more without consuming everything");
            require(whole.failure == Socks5Failure::none && whole.error.empty(),
                    "need_more with a failure");
            break;
        case Socks5Status::failed:
            require(whole.phase == Socks5Phase::failed, "failed in another phase");
            require(whole.failure != Socks5Failure::none && !whole.error.empty(),
                    "failed without a reason");
            break;
        case Socks5Status::request_ready: {
            require(whole.phase == Socks5Phase::request_ready, "ready in another phase");
            require(whole.failure == Socks5Failure::none && whole.error.empty(),
                    "ready with a failure");
            const auto& destination = whole.request.destination;
            if (destination.is_domain()) {
                const auto& name = std::get<std::string>(destination.host);
                require(tlsgate::normalize_hostname(name) == name, "domain not normalised");
            }
            require(whole.request.method != Socks5Method::no_acceptable, "ready without method");
            require(whole.request.method == Socks5Method::username_password ||
                        whole.request.username.empty(),
                    "a username without authentication");
            break;
        }
    }

    // Split in two at a position taken from the input, and in small pieces down to single bytes.
    const std::size_t split =
        stream.empty() ? 0
                       : (data[size - 1] + 256 * std::size_t{data[size / 2]}) % (stream.size() + 1);
    require(run_in_pieces(config, stream, split, stream.size()) == whole,
            "two-piece feed differs from whole feed");
    require(run_in_pieces(config, stream, 1, 1) == whole, "byte-by-byte feed differs");
    const std::size_t piece = 1 + data[0] % 7;
    require(run_in_pieces(config, stream, piece, piece) == whole, "piecewise feed differs");
    return 0;
}
