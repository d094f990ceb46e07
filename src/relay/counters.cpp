#include "relay/counters.hpp"

namespace tlsgate::relay {

std::string_view to_string(ClientRejection reason) {
    switch (reason) {
        case ClientRejection::unknown_ca:
            return "unknown_ca";
        case ClientRejection::bad_certificate:
            return "bad_certificate";
        case ClientRejection::certificate_unknown:
            return "certificate_unknown";
        case ClientRejection::closed_after_certificate:
            return "closed_after_certificate";
        case ClientRejection::other:
        case ClientRejection::count_:
            break;
    }
    return "other";
}

std::size_t verify_reason_index(std::string_view code) {
    for (std::size_t i = 0; i + 1 < kVerifyReasons.size(); ++i) {
        if (kVerifyReasons[i] == code)
            return i;
    }
    return kVerifyReasons.size() - 1;
}

std::string_view to_string(ListenerKind kind) {
    switch (kind) {
        case ListenerKind::explicit_proxy:
            return "explicit";
        case ListenerKind::transparent:
            return "transparent";
        case ListenerKind::tproxy:
            return "tproxy";
        case ListenerKind::socks5:
            return "socks5";
        case ListenerKind::portal:
            return "portal";
        case ListenerKind::count_:
            break;
    }
    return "unknown";
}

std::string_view to_string(Outcome outcome) {
    switch (outcome) {
        case Outcome::intercept:
            return "intercept";
        case Outcome::passthrough:
            return "passthrough";
        case Outcome::block:
            return "block";
        case Outcome::relay:
            return "relay";
        case Outcome::http:
            return "http";
        case Outcome::portal:
            return "portal";
        case Outcome::error:
            return "error";
        case Outcome::count_:
            break;
    }
    return "error";
}

}  // namespace tlsgate::relay
