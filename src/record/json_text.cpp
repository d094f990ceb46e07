#include "record/json_text.hpp"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

namespace tlsgate::record {

namespace {

// What each byte needs in a JSON string: nothing, an escape, or UTF-8 validation.
enum class ByteClass : unsigned char { plain, escape, non_ascii };

constexpr std::array<ByteClass, 256> kByteClasses = [] {
    std::array<ByteClass, 256> classes{};
    for (int byte = 0; byte < 256; ++byte) {
        classes[byte] = byte >= 0x80                                 ? ByteClass::non_ascii
                        : byte < 0x20 || byte == '"' || byte == '\\' ? ByteClass::escape
                                                                     : ByteClass::plain;
    }
    return classes;
}();

ByteClass class_of(char c) {
    return kByteClasses[static_cast<unsigned char>(c)];
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    std::size_t plain_end = 0;
    while (plain_end < text.size() && class_of(text[plain_end]) == ByteClass::plain) {
        ++plain_end;
    }
    out += '"';
    out.append(text.data(), plain_end);
    if (plain_end == text.size()) {
        out += '"';
        return;
    }
    // Non-ASCII text is rare in headers and needs UTF-8 validation with nlohmann's exact
    // replacement rules: let nlohmann write that string.
    if (std::any_of(text.begin() + static_cast<std::ptrdiff_t>(plain_end), text.end(),
                    [](char c) { return class_of(c) == ByteClass::non_ascii; })) {
        out.resize(out.size() - plain_end - 1);
        out += nlohmann::json(std::string(text))
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::size_t i = plain_end; i < text.size(); ++i) {
        std::size_t run_end = i;
        while (run_end < text.size() && class_of(text[run_end]) == ByteClass::plain) {
            ++run_end;
        }
        if (run_end > i) {  // plain bytes up to the next escape or the end, appended at once
            out.append(text.data() + i, run_end - i);
            if (run_end == text.size()) {
                break;
            }
            i = run_end;
        }
        const auto byte = static_cast<unsigned char>(text[i]);
        switch (byte) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\r':
                out += "\\r";
                break;
            default: {
                const char escape[] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xf]};
                out.append(escape, sizeof escape);
                break;
            }
        }
    }
    out += '"';
}

void append_headers_json(std::string& out, const std::vector<inspect::HeaderField>& headers) {
    out += '[';
    for (std::size_t i = 0; i < headers.size(); ++i) {
        out += i == 0 ? "[" : ",[";
        append_json_string(out, headers[i].name);
        out += ',';
        append_json_string(out, headers[i].value);
        out += ']';
    }
    out += ']';
}

void append_int_array_json(std::string& out, const std::vector<int>& values) {
    out += '[';
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        out += std::to_string(values[i]);
    }
    out += ']';
}

}  // namespace tlsgate::record
