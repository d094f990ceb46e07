#include "record/flow_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <limits>
#include <utility>

namespace tlsgate::record {
namespace {

using namespace std::chrono_literals;
using inspect::HeaderField;

Clock::time_point at_seconds(std::int64_t seconds, std::int64_t micros = 0) {
    return Clock::time_point(std::chrono::seconds(seconds) + std::chrono::microseconds(micros));
}

// A directory of its own per test, removed afterwards.
class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ =
            std::filesystem::temp_directory_path() /
            ("tlsgate-flow-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

std::vector<std::pair<std::string, std::string>> pairs(const std::vector<HeaderField>& headers) {
    std::vector<std::pair<std::string, std::string>> result;
    for (const auto& header : headers) {
        result.emplace_back(header.name, header.value);
    }
    return result;
}

void expect_same_body(const inspect::BodySummary& actual, const inspect::BodySummary& expected) {
    EXPECT_EQ(actual.size, expected.size);
    EXPECT_EQ(actual.sha256, expected.sha256);
    EXPECT_EQ(actual.content_type, expected.content_type);
    EXPECT_EQ(actual.content_encoding, expected.content_encoding);
    EXPECT_EQ(actual.captured, expected.captured);
    EXPECT_EQ(actual.capture_truncated, expected.capture_truncated);
}

void expect_same(const FlowRecord& actual, const FlowRecord& expected) {
    EXPECT_EQ(actual.connection_id, expected.connection_id);
    EXPECT_EQ(actual.client_address, expected.client_address);
    EXPECT_EQ(actual.server_address, expected.server_address);
    EXPECT_EQ(actual.sni, expected.sni);
    EXPECT_EQ(actual.client_tls_version, expected.client_tls_version);
    EXPECT_EQ(actual.upstream_tls_version, expected.upstream_tls_version);
    EXPECT_EQ(actual.alpn, expected.alpn);
    const auto& a = actual.exchange;
    const auto& e = expected.exchange;
    EXPECT_EQ(a.protocol, e.protocol);
    EXPECT_EQ(a.stream_id, e.stream_id);
    EXPECT_EQ(a.sequence, e.sequence);
    EXPECT_EQ(a.request_start, e.request_start);
    EXPECT_EQ(a.response_start, e.response_start);
    EXPECT_EQ(a.end, e.end);
    EXPECT_EQ(a.method, e.method);
    EXPECT_EQ(a.scheme, e.scheme);
    EXPECT_EQ(a.authority, e.authority);
    EXPECT_EQ(a.path, e.path);
    EXPECT_EQ(a.status, e.status);
    EXPECT_EQ(a.reason, e.reason);
    EXPECT_EQ(a.informational, e.informational);
    EXPECT_EQ(pairs(a.request_headers), pairs(e.request_headers));
    EXPECT_EQ(pairs(a.response_headers), pairs(e.response_headers));
    expect_same_body(a.request_body, e.request_body);
    expect_same_body(a.response_body, e.response_body);
    ASSERT_EQ(a.websocket.has_value(), e.websocket.has_value());
    if (a.websocket) {
        EXPECT_EQ(a.websocket->client_messages, e.websocket->client_messages);
        EXPECT_EQ(a.websocket->server_messages, e.websocket->server_messages);
        EXPECT_EQ(a.websocket->client_payload_bytes, e.websocket->client_payload_bytes);
        EXPECT_EQ(a.websocket->server_payload_bytes, e.websocket->server_payload_bytes);
        EXPECT_EQ(a.websocket->client_opcodes, e.websocket->client_opcodes);
        EXPECT_EQ(a.websocket->server_opcodes, e.websocket->server_opcodes);
        EXPECT_EQ(a.websocket->close_code, e.websocket->close_code);
        EXPECT_EQ(a.websocket->error, e.websocket->error);
    }
    EXPECT_EQ(a.error, e.error);
}

FlowRecord full_record() {
    FlowRecord record;
    record.connection_id = std::numeric_limits<std::uint64_t>::max();  // beyond SQLite's int64
    record.client_address = "192.0.2.10:53422";
    record.server_address = "203.0.113.5:443";
    record.sni = "ws.example.test";
    record.client_tls_version = "TLSv1.3";
    record.upstream_tls_version = "TLSv1.2";
    record.alpn = "http/1.1";
    auto& exchange = record.exchange;
    exchange.protocol = "HTTP/1.1";
    exchange.stream_id = std::numeric_limits<std::uint32_t>::max();
    exchange.sequence = 7;
    exchange.request_start = at_seconds(1'795'000'000, 123'456);
    exchange.response_start = std::nullopt;
    exchange.end = at_seconds(1'795'000'042, 999'999);
    exchange.method = "GET";
    exchange.scheme = "https";
    exchange.authority = "ws.example.test";
    exchange.path = "/chat?room=caf\xC3\xA9&x=%41";
    exchange.status = 101;
    exchange.reason = "Switching Protocols";
    exchange.informational = {100, 103};
    exchange.request_headers = {{"Host", "ws.example.test"},
                                {"Upgrade", "websocket"},
                                {"X-Greeting",
                                 "Gr\xC3\xBC\xC3\x9F"
                                 "e \xF0\x9F\x98\x80 \xE6\x97\xA5"},
                                {"X-Quote", "say \"hi\" \\ back"},
                                {"X-Empty", ""},
                                {"X-Greeting", "second value, same name"}};
    exchange.response_headers = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
    exchange.request_body.size = 5;
    exchange.request_body.sha256 = std::string(64, 'a');
    exchange.request_body.content_type = "application/octet-stream";
    exchange.request_body.content_encoding = "gzip";
    exchange.request_body.captured = std::string("\x00\x01\xFF\x00z", 5);
    exchange.request_body.capture_truncated = false;
    exchange.response_body.size = std::numeric_limits<std::uint64_t>::max() - 1;
    exchange.response_body.sha256 = std::string(64, 'b');
    exchange.response_body.content_type = "text/plain; charset=utf-8";
    exchange.response_body.captured = "partial \xE2\x9C\x93";
    exchange.response_body.capture_truncated = true;
    inspect::WebSocketSummary websocket;
    websocket.client_messages = 3;
    websocket.server_messages = 4;
    websocket.client_payload_bytes = 300;
    websocket.server_payload_bytes = std::numeric_limits<std::uint64_t>::max();
    websocket.client_opcodes = {{1, 2}, {9, 1}};
    websocket.server_opcodes = {{2, 3}, {8, 1}};
    websocket.close_code = 1001;
    websocket.error = "reserved bits set";
    exchange.websocket = websocket;
    exchange.error = "connection closed before the response";
    return record;
}

FlowStore open_store(const std::filesystem::path& path, OpenMode mode = OpenMode::read_write) {
    auto store = FlowStore::open(path, mode);
    EXPECT_TRUE(store) << store.error();
    return std::move(store).value();
}

std::vector<FlowRecord> query_ok(const FlowStore& store, const FlowQuery& query) {
    auto records = store.query(query);
    EXPECT_TRUE(records) << records.error();
    return records ? std::move(records).value() : std::vector<FlowRecord>{};
}

TEST(FlowStore, RoundTripsAFullyPopulatedRecordExactly) {
    TempDir dir;
    FlowRecord full = full_record();
    FlowRecord with_response = full_record();
    with_response.exchange.response_start = at_seconds(1'795'000'001, 1);
    with_response.exchange.websocket.reset();
    with_response.exchange.request_body.captured.clear();
    FlowRecord empty;  // every field at its default

    auto store = open_store(dir.path() / "nested" / "flows.db");
    const std::vector<FlowRecord> records = {full, with_response, empty};
    ASSERT_TRUE(store.insert(records));

    FlowQuery everything;
    everything.limit = 0;
    // Ordered by request start: the default record (epoch) first.
    const auto read = query_ok(store, everything);
    ASSERT_EQ(read.size(), 3u);
    expect_same(read[0], empty);
    expect_same(read[1], full);
    expect_same(read[2], with_response);
    EXPECT_FALSE(read[1].exchange.response_start.has_value());
}

// A batch is stored several rows per statement, then row by row for the rest: every row of
// both kinds must read back exactly, in order.
TEST(FlowStore, RoundTripsEveryRecordOfABatchThatSpansMultiRowStatements) {
    TempDir dir;
    auto store = open_store(dir.path() / "flows.db");
    std::vector<FlowRecord> batch;
    for (int i = 0; i < 37; ++i) {
        FlowRecord record = i % 3 == 0 ? FlowRecord{} : full_record();
        record.connection_id = static_cast<std::uint64_t>(i);
        record.exchange.request_start = at_seconds(1'795'000'000 + i, i);
        record.exchange.path = "/item/" + std::to_string(i);
        record.exchange.request_headers.push_back({"X-Index", std::to_string(i)});
        if (i % 2 == 0) {
            record.exchange.websocket.reset();
            record.exchange.response_start = at_seconds(1'795'000'000 + i, 500'000);
        }
        batch.push_back(std::move(record));
    }
    ASSERT_TRUE(store.insert(batch));

    FlowQuery everything;
    everything.limit = 0;
    const auto read = query_ok(store, everything);
    ASSERT_EQ(read.size(), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        SCOPED_TRACE(i);
        expect_same(read[i], batch[i]);
    }
}

TEST(FlowStore, StoresCapturedBodiesAsBlobsAndNullWhenNotCaptured) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    {
        auto store = open_store(path);
        FlowRecord uncaptured = full_record();
        uncaptured.exchange.request_body.captured.clear();
        uncaptured.exchange.response_body.captured.clear();
        ASSERT_TRUE(store.insert(std::vector<FlowRecord>{full_record(), uncaptured}));
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    ASSERT_EQ(
        sqlite3_prepare_v2(db,
                           "SELECT typeof(request_body_captured), length(request_body_captured),"
                           " typeof(response_start_us), json_extract(request_headers, '$[2][1]')"
                           " FROM flows ORDER BY id",
                           -1, &statement, nullptr),
        SQLITE_OK);
    ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)), "blob");
    EXPECT_EQ(sqlite3_column_int(statement, 1), 5);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 2)), "null");
    // The header JSON is readable with SQLite's own JSON functions.
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 3)),
                 "Gr\xC3\xBC\xC3\x9F"
                 "e \xF0\x9F\x98\x80 \xE6\x97\xA5");
    ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)), "null");
    sqlite3_finalize(statement);
    sqlite3_close(db);
}

TEST(FlowStore, HeaderBytesThatAreNotUtf8BecomeReplacementCharacters) {
    TempDir dir;
    auto store = open_store(dir.path() / "flows.db");
    FlowRecord record;
    record.exchange.request_headers = {{"X-Latin1", "caf\xE9"}};
    record.exchange.path = "/caf\xE9";  // a plain column keeps its bytes
    ASSERT_TRUE(store.insert(std::span(&record, 1)));
    const auto read = query_ok(store, {});
    ASSERT_EQ(read.size(), 1u);
    ASSERT_EQ(read[0].exchange.request_headers.size(), 1u);
    EXPECT_EQ(read[0].exchange.request_headers[0].value, "caf\xEF\xBF\xBD");
    EXPECT_EQ(read[0].exchange.path, "/caf\xE9");
}

// Five flows that each filter tells apart.
class FlowStoreQuery : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = FlowStore::open(dir_.path() / "flows.db", OpenMode::read_write);
        ASSERT_TRUE(opened) << opened.error();
        store_.emplace(std::move(opened).value());
        std::vector<FlowRecord> records;
        records.push_back(
            make(1, "api.example.test:8443", "api.example.test", 200, "GET", "/v1/users"));
        records.push_back(make(2, "www.Example.TEST", "", 404, "GET", "/missing"));
        records.push_back(make(3, "other.test", "cdn.example.test", 503, "POST", "/upload"));
        records.back().exchange.request_body.captured = std::string("a needle\0in a body", 18);
        records.push_back(make(4, "other.test", "other.test", 0, "GET", "/slow"));
        records.back().exchange.response_headers = {{"X-Trace", "abc%_';def"}};
        records.push_back(make(5, "[2001:db8::1]:443", "", 301, "HEAD", "/moved"));
        ASSERT_TRUE(store_->insert(records));
    }

    static FlowRecord make(std::uint64_t id, std::string authority, std::string sni, int status,
                           std::string method, std::string path) {
        FlowRecord record;
        record.connection_id = id;
        record.sni = std::move(sni);
        auto& exchange = record.exchange;
        exchange.request_start = at_seconds(static_cast<std::int64_t>(id) * 1000);
        exchange.end = exchange.request_start + 1s;
        exchange.authority = std::move(authority);
        exchange.status = status;
        exchange.method = std::move(method);
        exchange.path = std::move(path);
        exchange.request_headers = {{"Host", exchange.authority}, {"Accept", "*/*"}};
        return record;
    }

    std::vector<std::uint64_t> ids(const FlowQuery& query) {
        std::vector<std::uint64_t> result;
        for (const auto& record : query_ok(*store_, query)) {
            result.push_back(record.connection_id);
        }
        return result;
    }

    static FlowQuery host(std::string pattern) {
        FlowQuery query;
        query.host_pattern = std::move(pattern);
        return query;
    }
    static FlowQuery grep(std::string text) {
        FlowQuery query;
        query.grep = std::move(text);
        return query;
    }
    static FlowQuery status(std::string_view text) {
        FlowQuery query;
        query.status = parse_status_filter(text).value();
        return query;
    }

    using Ids = std::vector<std::uint64_t>;
    TempDir dir_;
    std::optional<FlowStore> store_;
};

TEST_F(FlowStoreQuery, NoFilterReturnsAllInTimeOrder) {
    EXPECT_EQ(ids({}), (Ids{1, 2, 3, 4, 5}));
}

TEST_F(FlowStoreQuery, HostGlobMatchesAuthorityPortlessAuthorityOrSniCaseInsensitively) {
    EXPECT_EQ(ids(host("*.example.test")), (Ids{1, 2, 3}));
    EXPECT_EQ(ids(host("*.EXAMPLE.test")), (Ids{1, 2, 3}));
    EXPECT_EQ(ids(host("api.example.test")), (Ids{1}));
    EXPECT_EQ(ids(host("api.example.test:8443")), (Ids{1}));
    EXPECT_EQ(ids(host("other.test")), (Ids{3, 4}));
    EXPECT_EQ(ids(host("?ther.test")), (Ids{3, 4}));
    EXPECT_EQ(ids(host("[2001:db8::1]")), (Ids{5}));
    EXPECT_EQ(ids(host("example.test")), (Ids{}));
    EXPECT_EQ(ids(host("*")), (Ids{1, 2, 3, 4, 5}));
}

TEST_F(FlowStoreQuery, StatusFiltersByCodeOrClass) {
    EXPECT_EQ(ids(status("404")), (Ids{2}));
    EXPECT_EQ(ids(status("5xx")), (Ids{3}));
    EXPECT_EQ(ids(status("3XX")), (Ids{5}));
    EXPECT_EQ(ids(status("0")), (Ids{4}));
    EXPECT_EQ(ids(status("418")), (Ids{}));
}

TEST_F(FlowStoreQuery, SinceKeepsRequestsStartedAtOrAfter) {
    FlowQuery query;
    query.since = at_seconds(3000);
    EXPECT_EQ(ids(query), (Ids{3, 4, 5}));
    query.since = at_seconds(3000, 1);
    EXPECT_EQ(ids(query), (Ids{4, 5}));
}

TEST_F(FlowStoreQuery, GrepSearchesPathAuthorityMethodHeadersAndBodies) {
    EXPECT_EQ(ids(grep("users")), (Ids{1}));                 // path
    EXPECT_EQ(ids(grep("www.Example")), (Ids{2}));           // authority (and Host header)
    EXPECT_EQ(ids(grep("POST")), (Ids{3}));                  // method
    EXPECT_EQ(ids(grep("X-Trace")), (Ids{4}));               // header name
    EXPECT_EQ(ids(grep("abc%")), (Ids{4}));                  // header value
    EXPECT_EQ(ids(grep("needle")), (Ids{3}));                // captured body
    EXPECT_EQ(ids(grep(std::string("\0in", 3))), (Ids{3}));  // across a NUL in the body
    EXPECT_EQ(ids(grep("*/*")), (Ids{1, 2, 3, 4, 5}));
    EXPECT_EQ(ids(grep("users ")), (Ids{}));
    EXPECT_EQ(ids(grep("USERS")), (Ids{}));  // case-sensitive, like grep
}

TEST_F(FlowStoreQuery, SqlMetacharactersAreLiteral) {
    for (const char* text : {"%", "_", "'", ";", "%_';"}) {
        EXPECT_EQ(ids(grep(text)), (Ids{4})) << text;
    }
    EXPECT_EQ(ids(grep("x'; DROP TABLE flows; --")), (Ids{}));
    EXPECT_EQ(ids(grep("\" OR 1=1 --")), (Ids{}));
    EXPECT_EQ(ids(host("%")), (Ids{}));
    EXPECT_EQ(ids(host("_ther.test")), (Ids{}));
    EXPECT_EQ(ids(host("other.test' OR '1'='1")), (Ids{}));
    EXPECT_EQ(ids(host("other.test;")), (Ids{}));
    EXPECT_EQ(ids(host("[a-z]*")), (Ids{}));  // no bracket classes: '[' is a literal
    EXPECT_EQ(ids({}).size(), 5u);            // and the table is still there
}

TEST_F(FlowStoreQuery, FiltersCombine) {
    FlowQuery query = host("*.example.test");
    query.status = parse_status_filter("4xx").value();
    EXPECT_EQ(ids(query), (Ids{2}));

    query = host("*.example.test");
    query.since = at_seconds(2000);
    EXPECT_EQ(ids(query), (Ids{2, 3}));

    query = grep("GET");
    query.status = parse_status_filter("2xx").value();
    EXPECT_EQ(ids(query), (Ids{1}));

    query = host("other.test");
    query.grep = "needle";
    query.since = at_seconds(1000);
    query.status = parse_status_filter("503").value();
    EXPECT_EQ(ids(query), (Ids{3}));
    query.status = parse_status_filter("500").value();
    EXPECT_EQ(ids(query), (Ids{}));
}

TEST_F(FlowStoreQuery, LimitAndNewestFirst) {
    FlowQuery query;
    query.limit = 2;
    EXPECT_EQ(ids(query), (Ids{1, 2}));
    query.newest_first = true;
    EXPECT_EQ(ids(query), (Ids{5, 4}));
    query = host("*.example.test");
    query.newest_first = true;
    query.limit = 0;  // no limit
    EXPECT_EQ(ids(query), (Ids{3, 2, 1}));
}

TEST(FlowStore, ReadOnlyOpenOfAMissingFileSaysSo) {
    TempDir dir;
    const auto path = dir.path() / "absent.db";
    const auto store = FlowStore::open(path, OpenMode::read_only);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().find("does not exist"), std::string::npos) << store.error();
    EXPECT_NE(store.error().find(path.string()), std::string::npos) << store.error();
    EXPECT_FALSE(std::filesystem::exists(path));  // and did not create it
}

TEST(FlowStore, RejectsFilesThatAreNotFlowStores) {
    TempDir dir;
    const auto text_file = dir.path() / "notes.txt";
    std::ofstream(text_file) << "this is not a database, just some text that is long enough\n";
    for (auto mode : {OpenMode::read_only, OpenMode::read_write}) {
        const auto store = FlowStore::open(text_file, mode);
        ASSERT_FALSE(store);
        EXPECT_NE(store.error().find(text_file.string()), std::string::npos) << store.error();
    }

    const auto other_db = dir.path() / "other.db";
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(other_db.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    const auto foreign = FlowStore::open(other_db, OpenMode::read_only);
    ASSERT_FALSE(foreign);
    EXPECT_NE(foreign.error().find("not a tlsgate flow store"), std::string::npos)
        << foreign.error();
}

TEST(FlowStore, RefusesANewerSchema) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    { open_store(path); }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    for (auto mode : {OpenMode::read_only, OpenMode::read_write}) {
        const auto store = FlowStore::open(path, mode);
        ASSERT_FALSE(store);
        EXPECT_NE(store.error().find("newer"), std::string::npos) << store.error();
    }
}

TEST(FlowStore, OpeningForWritingDropsTheUnusedSniIndexOfOlderStores) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    { open_store(path); }
    const auto index_count = [&path] {
        sqlite3* db = nullptr;
        EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
        sqlite3_stmt* statement = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db,
                                     "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                                     "AND name = 'flows_by_sni'",
                                     -1, &statement, nullptr),
                  SQLITE_OK);
        EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW);
        const int count = sqlite3_column_int(statement, 0);
        sqlite3_finalize(statement);
        sqlite3_close(db);
        return count;
    };
    EXPECT_EQ(index_count(), 0);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE INDEX flows_by_sni ON flows(sni COLLATE NOCASE)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ(index_count(), 1);
    { open_store(path, OpenMode::read_only); }
    EXPECT_EQ(index_count(), 1);  // a reader changes nothing
    { open_store(path); }
    EXPECT_EQ(index_count(), 0);
}

TEST(FlowStore, ReadOnlyStoreRefusesInserts) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    { open_store(path); }
    auto store = open_store(path, OpenMode::read_only);
    FlowRecord record;
    const auto inserted = store.insert(std::span(&record, 1));
    ASSERT_FALSE(inserted);
    EXPECT_NE(inserted.error().find("read-only"), std::string::npos) << inserted.error();
}

TEST(FlowStore, TenThousandInsertsInBatches) {
    TempDir dir;
    auto store = open_store(dir.path() / "flows.db");
    constexpr int kTotal = 10'000;
    constexpr int kBatch = 500;
    for (int first = 0; first < kTotal; first += kBatch) {
        std::vector<FlowRecord> batch(kBatch);
        for (int i = 0; i < kBatch; ++i) {
            auto& record = batch[i];
            record.connection_id = static_cast<std::uint64_t>(first + i);
            record.exchange.request_start = at_seconds(first + i);
            record.exchange.status = (first + i) % 2 == 0 ? 200 : 404;
            record.exchange.authority = "host" + std::to_string((first + i) % 10) + ".test";
            record.exchange.request_headers = {{"Host", record.exchange.authority}};
        }
        const auto inserted = store.insert(batch);
        ASSERT_TRUE(inserted) << inserted.error();
    }
    FlowQuery everything;
    everything.limit = 0;
    const auto all = query_ok(store, everything);
    ASSERT_EQ(all.size(), static_cast<std::size_t>(kTotal));
    for (int i = 0; i < kTotal; ++i) {
        ASSERT_EQ(all[i].connection_id, static_cast<std::uint64_t>(i));
    }
    FlowQuery not_found;
    not_found.status = StatusFilter{404, 404};
    not_found.host_pattern = "HOST3.test";
    not_found.limit = 0;
    EXPECT_EQ(query_ok(store, not_found).size(), 1000u);
    EXPECT_EQ(query_ok(store, {}).size(), 100u);  // the default limit
}

TEST(FlowStore, ReopeningKeepsTheData) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    {
        auto store = open_store(path);
        ASSERT_TRUE(store.insert(std::vector<FlowRecord>{full_record()}));
    }
    {
        auto store = open_store(path);
        FlowRecord second;
        second.connection_id = 2;
        second.exchange.request_start = at_seconds(1'900'000'000);
        ASSERT_TRUE(store.insert(std::span(&second, 1)));
    }
    auto reader = open_store(path, OpenMode::read_only);
    const auto read = query_ok(reader, {});
    ASSERT_EQ(read.size(), 2u);
    expect_same(read[0], full_record());
    EXPECT_EQ(read[1].connection_id, 2u);
}

TEST(FlowStore, AReaderSeesWhatTheWriterCommitsWhileBothAreOpen) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    auto writer = open_store(path);
    auto reader = open_store(path, OpenMode::read_only);
    EXPECT_TRUE(query_ok(reader, {}).empty());
    ASSERT_TRUE(writer.insert(std::vector<FlowRecord>{full_record()}));
    EXPECT_EQ(query_ok(reader, {}).size(), 1u);
}

TEST(FlowStore, MovedStoreKeepsWorking) {
    TempDir dir;
    auto first = open_store(dir.path() / "flows.db");
    FlowStore second = std::move(first);
    ASSERT_TRUE(second.insert(std::vector<FlowRecord>{full_record()}));
    EXPECT_EQ(query_ok(second, {}).size(), 1u);
}

TEST(HostGlob, MatchesWholeNamesWithStarAndQuestionMark) {
    EXPECT_TRUE(host_glob_matches("*.example.test", "a.example.test"));
    EXPECT_TRUE(host_glob_matches("*.example.test", "a.b.example.test"));
    EXPECT_FALSE(host_glob_matches("*.example.test", "example.test"));
    EXPECT_FALSE(host_glob_matches("*.example.test", "a.example.test.evil"));
    EXPECT_TRUE(host_glob_matches("A?C.Test", "abc.test"));
    EXPECT_FALSE(host_glob_matches("a?c.test", "ac.test"));
    EXPECT_TRUE(host_glob_matches("*", ""));
    EXPECT_TRUE(host_glob_matches("", ""));
    EXPECT_FALSE(host_glob_matches("", "a"));
    EXPECT_TRUE(host_glob_matches("a*b*c", "aXXbYYbZc"));
    EXPECT_FALSE(host_glob_matches("a*b*c", "aXXbYYbZ"));
    EXPECT_TRUE(host_glob_matches("**a**", "bab"));
    // Many stars over a long name stay fast (no exponential backtracking).
    EXPECT_FALSE(host_glob_matches("*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(ParseStatusFilter, AcceptsCodesAndClasses) {
    EXPECT_EQ(parse_status_filter("404").value(), (StatusFilter{404, 404}));
    EXPECT_EQ(parse_status_filter("200").value(), (StatusFilter{200, 200}));
    EXPECT_EQ(parse_status_filter("4xx").value(), (StatusFilter{400, 499}));
    EXPECT_EQ(parse_status_filter("5XX").value(), (StatusFilter{500, 599}));
    EXPECT_EQ(parse_status_filter("0").value(), (StatusFilter{0, 0}));
    for (const char* bad : {"", "4", "40", "4044", "4x", "4x4", "x4x", "0xx", "099", "abc", " 404",
                            "404 ", "-404", "4xxx"}) {
        const auto filter = parse_status_filter(bad);
        EXPECT_FALSE(filter) << bad;
        if (!filter) {
            EXPECT_NE(filter.error().find("4xx"), std::string::npos);
        }
    }
}

TEST(ParseSince, AcceptsIsoTimesInUtc) {
    using namespace std::chrono;
    const auto now = Clock::now();
    const Clock::time_point ten = sys_days(year(2026) / November / 22) + 10h;
    EXPECT_EQ(parse_since("2026-11-22T10:00:00Z", now).value(), ten);
    EXPECT_EQ(parse_since("2026-11-22 10:00:00", now).value(), ten);
    EXPECT_EQ(parse_since("2026-11-22T10:00:00", now).value(), ten);
    EXPECT_EQ(parse_since("2026-11-22T10:00Z", now).value(), ten);
    EXPECT_EQ(parse_since("2026-11-22", now).value(), ten - 10h);
    EXPECT_EQ(parse_since("2026-11-22T10:00:00.25Z", now).value(), ten + 250ms);
    EXPECT_EQ(parse_since("2026-11-22T10:00:00.123456Z", now).value(), ten + 123456us);
    EXPECT_EQ(parse_since("2026-11-22T12:30:00+02:30", now).value(), ten);
    EXPECT_EQ(parse_since("2026-11-22T05:00:00-0500", now).value(), ten);
    EXPECT_EQ(parse_since("2024-02-29", now).value(), Clock::time_point(sys_days(2024y / 2 / 29)));
}

TEST(ParseSince, AcceptsDurationsBeforeNow) {
    const auto now = Clock::now();
    EXPECT_EQ(parse_since("90s", now).value(), now - std::chrono::seconds(90));
    EXPECT_EQ(parse_since("10m", now).value(), now - std::chrono::minutes(10));
    EXPECT_EQ(parse_since("2h", now).value(), now - std::chrono::hours(2));
    EXPECT_EQ(parse_since("3d", now).value(), now - std::chrono::hours(72));
    EXPECT_EQ(parse_since("0s", now).value(), now);
}

TEST(ParseSince, RejectsAnythingElse) {
    const auto now = Clock::now();
    for (const char* bad : {"",
                            "10",
                            "m",
                            "10x",
                            "-5m",
                            "+5m",
                            " 10m",
                            "10m ",
                            "1.5h",
                            "10 m",
                            "99999999999999999999d",
                            "40000d",
                            "2026-13-01",
                            "2026-02-30",
                            "2025-02-29",
                            "2026-11-22T24:00:00Z",
                            "2026-11-22T10:60:00Z",
                            "2026-11-22T10:00:60Z",
                            "2026-11-22T10:00:00Zjunk",
                            "2026-11-22T10",
                            "2026-11-22T",
                            "2026-11-2",
                            "26-11-22",
                            "2026/11/22",
                            "2026-11-22T10:00:00.Z",
                            "2026-11-22T10:00:00.1234567890Z",
                            "9999-01-01",
                            "2026-11-22T10:00:00+25:00",
                            "yesterday"}) {
        const auto since = parse_since(bad, now);
        EXPECT_FALSE(since) << bad;
        if (!since) {
            EXPECT_NE(since.error().find(bad), std::string::npos) << since.error();
        }
    }
}

}  // namespace
}  // namespace tlsgate::record
