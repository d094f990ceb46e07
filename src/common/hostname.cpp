#include "common/hostname.hpp"

namespace tlsgate {

std::optional<std::string> normalize_hostname(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    if (name.empty() || name.size() > 253) {
        return std::nullopt;
    }
    std::string normalized;
    normalized.reserve(name.size());
    std::size_t label_length = 0;
    char previous = '.';
    for (char c : name) {
        if (c == '.') {
            if (label_length == 0 || previous == '-') {
                return std::nullopt;
            }
            label_length = 0;
        } else {
            const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            const bool digit = c >= '0' && c <= '9';
            if (!letter && !digit && c != '-' && c != '_') {
                return std::nullopt;
            }
            if (c == '-' && label_length == 0) {
                return std::nullopt;
            }
            if (++label_length > 63) {
                return std::nullopt;
            }
            if (c >= 'A' && c <= 'Z') {
                c = static_cast<char>(c - 'A' + 'a');
            }
        }
        normalized.push_back(c);
        previous = c;
    }
    // A last label that is empty ("a..") or ends in '-' is not a host name.
    if (label_length == 0 || previous == '-') {
        return std::nullopt;
    }
    return normalized;
}

}  // namespace tlsgate
