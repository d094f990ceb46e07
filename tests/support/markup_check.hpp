#pragma once
// A deliberately small markup checker for the portal's generated HTML and plist XML: every tag
// that opens is closed, in order. Not a parser; it knows only what the generators write (no
// comments, no '<' or '>' inside attribute values, which escaping guarantees).
#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::testing {

// Empty when the tags balance; otherwise what is wrong, for a test message.
inline std::string unbalanced_tags(std::string_view markup) {
    static constexpr std::array<std::string_view, 6> kVoidElements = {"meta", "br",   "hr",
                                                                      "img",  "link", "input"};
    std::vector<std::string> open;
    std::size_t at = 0;
    while ((at = markup.find('<', at)) != std::string_view::npos) {
        const std::size_t end = markup.find('>', at);
        if (end == std::string_view::npos) {
            return "'<' without '>' at offset " + std::to_string(at);
        }
        std::string_view tag = markup.substr(at + 1, end - at - 1);
        at = end + 1;
        if (tag.empty()) {
            return "empty tag";
        }
        if (tag.front() == '!' || tag.front() == '?') {
            continue;  // doctype, XML declaration
        }
        const bool closing = tag.front() == '/';
        if (closing) {
            tag.remove_prefix(1);
        }
        const bool self_closing = tag.back() == '/';
        std::size_t name_end = 0;
        while (name_end < tag.size() && std::isalnum(static_cast<unsigned char>(tag[name_end]))) {
            ++name_end;
        }
        const std::string name(tag.substr(0, name_end));
        if (name.empty()) {
            return "tag without a name: <" + std::string(tag) + ">";
        }
        if (closing) {
            if (open.empty() || open.back() != name) {
                return "</" + name + "> closes " +
                       (open.empty() ? "nothing" : "<" + open.back() + ">");
            }
            open.pop_back();
        } else if (!self_closing && std::find(kVoidElements.begin(), kVoidElements.end(), name) ==
                                        kVoidElements.end()) {
            open.push_back(name);
        }
    }
    if (!open.empty()) {
        return "<" + open.back() + "> never closed";
    }
    return {};
}

}  // namespace tlsgate::testing
