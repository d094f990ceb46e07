#include "record/json_text.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace tlsgate::record {
namespace {

using Json = nlohmann::json;

std::string nlohmann_text(const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string written(std::string_view text) {
    std::string out = "prefix:";
    append_json_string(out, text);
    return out.substr(7);
}

TEST(JsonText, StringsAreWhatNlohmannWrites) {
    std::string every_ascii_byte;
    for (int byte = 0; byte < 0x80; ++byte) {
        every_ascii_byte += static_cast<char>(byte);
    }
    const std::vector<std::string> cases = {
        "",
        "curl/7.88.1",
        "Sun, 22 Nov 2026 21:47:10 GMT",
        "\"6740f7a0-400\"",
        "back\\slash",
        std::string("nul\0byte", 8),
        "tab\there, newline\n, return\r, bell\a, escape\x1b, delete\x7f",
        every_ascii_byte,
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",  // valid UTF-8
        "bad \xff\xfe bytes",                         // invalid UTF-8
        "truncated \xe2\x82",
        "mixed \"quote\" \xc3\xa9 and \x01 and \xc0\xaf overlong",
    };
    for (const auto& text : cases) {
        EXPECT_EQ(written(text), nlohmann_text(Json(text))) << text;
    }
}

TEST(JsonText, RandomBytesAreWhatNlohmannWrites) {
    std::mt19937 random(20261122);
    std::uniform_int_distribution<int> length(0, 40);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> ascii(0, 127);
    for (int i = 0; i < 5000; ++i) {
        std::string text(static_cast<std::size_t>(length(random)), '\0');
        const bool ascii_only = i % 2 == 0;  // half take the fast path
        for (char& c : text) {
            c = static_cast<char>(ascii_only ? ascii(random) : byte(random));
        }
        ASSERT_EQ(written(text), nlohmann_text(Json(text))) << i;
    }
}

// Plain text is scanned eight bytes at a time: one byte that needs care, at every position of
// strings around a word's length, must still be found.
TEST(JsonText, OneSpecialByteAnywhereIsFound) {
    for (const char special : {'\0', '\x1f', ' ', '"', '\\', '\x7f', '\x80', '\xff', '~'}) {
        for (std::size_t length = 1; length <= 25; ++length) {
            for (std::size_t at = 0; at < length; ++at) {
                std::string text(length, 'a');
                text[at] = special;
                ASSERT_EQ(written(text), nlohmann_text(Json(text)))
                    << int(special) << " at " << at << " of " << length;
            }
        }
    }
}

TEST(JsonText, HeaderListsAndStatusListsAreWhatNlohmannWrites) {
    const std::vector<inspect::HeaderField> headers = {
        {"Host", "origin.test:44321"}, {"X-Quote", "say \"hi\""}, {"X-Utf8", "\xc3\xa9\xff"}};
    Json list = Json::array();
    for (const auto& header : headers) {
        list.push_back(Json::array({header.name, header.value}));
    }
    std::string out;
    append_headers_json(out, headers);
    EXPECT_EQ(out, nlohmann_text(list));
    out.clear();
    append_headers_json(out, {});
    EXPECT_EQ(out, "[]");

    for (const std::vector<int>& statuses : {std::vector<int>{}, {100}, {100, 103, -1}}) {
        out.clear();
        append_int_array_json(out, statuses);
        EXPECT_EQ(out, nlohmann_text(Json(statuses)));
    }
}

}  // namespace
}  // namespace tlsgate::record
