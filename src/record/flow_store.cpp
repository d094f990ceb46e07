#include "record/flow_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "record/json_text.hpp"

namespace tlsgate::record {
namespace {

using Json = nlohmann::json;

// The columns in the order insert binds them and query reads them.
struct Column {
    const char* name;
    const char* definition;
};

constexpr Column kColumns[] = {
    {"connection_id", "INTEGER NOT NULL"},
    {"client_address", "TEXT NOT NULL"},
    {"server_address", "TEXT NOT NULL"},
    {"sni", "TEXT NOT NULL"},
    {"client_tls_version", "TEXT NOT NULL"},
    {"upstream_tls_version", "TEXT NOT NULL"},
    {"alpn", "TEXT NOT NULL"},
    {"protocol", "TEXT NOT NULL"},
    {"stream_id", "INTEGER NOT NULL"},
    {"sequence", "INTEGER NOT NULL"},
    {"request_start_us", "INTEGER NOT NULL"},
    {"response_start_us", "INTEGER"},
    {"end_us", "INTEGER NOT NULL"},
    {"method", "TEXT NOT NULL"},
    {"scheme", "TEXT NOT NULL"},
    {"authority", "TEXT NOT NULL"},
    {"path", "TEXT NOT NULL"},
    {"status", "INTEGER NOT NULL"},
    {"reason", "TEXT NOT NULL"},
    {"informational", "TEXT NOT NULL"},     // JSON array of statuses
    {"request_headers", "TEXT NOT NULL"},   // JSON array of [name, value]
    {"response_headers", "TEXT NOT NULL"},  // JSON array of [name, value]
    {"request_body_size", "INTEGER NOT NULL"},
    {"request_body_sha256", "TEXT NOT NULL"},
    {"request_body_content_type", "TEXT NOT NULL"},
    {"request_body_content_encoding", "TEXT NOT NULL"},
    {"request_body_captured", "BLOB"},
    {"request_body_capture_truncated", "INTEGER NOT NULL"},
    {"response_body_size", "INTEGER NOT NULL"},
    {"response_body_sha256", "TEXT NOT NULL"},
    {"response_body_content_type", "TEXT NOT NULL"},
    {"response_body_content_encoding", "TEXT NOT NULL"},
    {"response_body_captured", "BLOB"},
    {"response_body_capture_truncated", "INTEGER NOT NULL"},
    {"websocket", "TEXT"},  // JSON object; NULL without an upgrade
    {"error", "TEXT NOT NULL"},
};
constexpr int kColumnCount = static_cast<int>(std::size(kColumns));

std::string column_names() {
    std::string names;
    for (const auto& column : kColumns) {
        if (!names.empty()) {
            names += ", ";
        }
        names += column.name;
    }
    return names;
}

std::string create_schema_sql() {
    std::string sql = "CREATE TABLE flows (id INTEGER PRIMARY KEY";
    for (const auto& column : kColumns) {
        sql += std::string(", ") + column.name + " " + column.definition;
    }
    sql +=
        ");"
        "CREATE INDEX flows_by_request_start ON flows(request_start_us);"
        "CREATE INDEX flows_by_authority ON flows(authority COLLATE NOCASE);"
        "CREATE INDEX flows_by_status ON flows(status);";
    sql += "PRAGMA user_version = " + std::to_string(FlowStore::kSchemaVersion) + ";";
    return sql;
}

// Rows per multi-row INSERT: one statement execution (cursors opened on the table and every
// index once) stores this many flows. 16 rows are 576 parameters, far under SQLite's limit.
constexpr std::size_t kRowsPerInsert = 16;

std::string insert_sql(std::size_t rows) {
    std::string row = "(";
    for (int i = 0; i < kColumnCount; ++i) {
        row += i == 0 ? "?" : ", ?";
    }
    row += ")";
    std::string sql = "INSERT INTO flows (" + column_names() + ") VALUES ";
    for (std::size_t i = 0; i < rows; ++i) {
        sql += i == 0 ? row : ", " + row;
    }
    return sql;
}

std::int64_t to_micros(Clock::time_point when) {
    return std::chrono::floor<std::chrono::microseconds>(when.time_since_epoch()).count();
}

// Network text may be invalid UTF-8, which JSON cannot hold: replace rather than throw.
std::string dump(const Json& value) {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json opcodes_json(const std::map<int, std::uint64_t>& opcodes) {
    Json object = Json::object();
    for (const auto& [opcode, count] : opcodes) {
        object[std::to_string(opcode)] = count;
    }
    return object;
}

std::string websocket_json(const inspect::WebSocketSummary& summary) {
    Json object = {{"client_messages", summary.client_messages},
                   {"server_messages", summary.server_messages},
                   {"client_payload_bytes", summary.client_payload_bytes},
                   {"server_payload_bytes", summary.server_payload_bytes},
                   {"client_opcodes", opcodes_json(summary.client_opcodes)},
                   {"server_opcodes", opcodes_json(summary.server_opcodes)},
                   {"error", summary.error}};
    if (summary.close_code) {
        object["close_code"] = *summary.close_code;
    }
    return dump(object);
}

// Binds one row's values in column order. The bound text must outlive the statement's step.
class RowBinder {
public:
    // `row`: which row of a multi-row INSERT (0 for the first).
    RowBinder(sqlite3_stmt* statement, std::size_t row)
        : statement_(statement), first_(static_cast<int>(row) * kColumnCount) {}

    void integer(std::int64_t value) { check(sqlite3_bind_int64(statement_, next(), value)); }
    // SQLite integers are signed 64-bit; the cast back in RowReader restores the value exactly.
    void unsigned_integer(std::uint64_t value) { integer(static_cast<std::int64_t>(value)); }
    void text(std::string_view value) {
        // A null data pointer would bind SQL NULL; an empty view may have one.
        const char* data = value.data() != nullptr ? value.data() : "";
        check(sqlite3_bind_text64(statement_, next(), data, value.size(), SQLITE_STATIC,
                                  SQLITE_UTF8));
    }
    void blob_or_null(std::string_view value) {
        if (value.empty()) {
            null();
            return;
        }
        check(sqlite3_bind_blob64(statement_, next(), value.data(), value.size(), SQLITE_STATIC));
    }
    void null() { check(sqlite3_bind_null(statement_, next())); }

    // SQLITE_OK when every value was bound and the count matches the columns.
    int status() const {
        if (status_ == SQLITE_OK && bound_ != kColumnCount) {
            return SQLITE_MISUSE;
        }
        return status_;
    }

private:
    int next() { return first_ + ++bound_; }
    void check(int code) {
        if (status_ == SQLITE_OK) {
            status_ = code;
        }
    }

    sqlite3_stmt* statement_;
    int first_;
    int bound_ = 0;
    int status_ = SQLITE_OK;
};

void bind_body(RowBinder& row, const inspect::BodySummary& body) {
    row.unsigned_integer(body.size);
    row.text(body.sha256);
    row.text(body.content_type);
    row.text(body.content_encoding);
    row.blob_or_null(body.captured);
    row.integer(body.capture_truncated ? 1 : 0);
}

// The JSON texts of one record, kept alive while its row is bound. One set serves a whole
// batch: filling it again reuses its buffers.
struct RecordJson {
    std::string informational;
    std::string request_headers;
    std::string response_headers;
    std::optional<std::string> websocket;

    void fill(const inspect::HttpExchange& exchange) {
        informational.clear();
        append_int_array_json(informational, exchange.informational);
        request_headers.clear();
        append_headers_json(request_headers, exchange.request_headers);
        response_headers.clear();
        append_headers_json(response_headers, exchange.response_headers);
        if (exchange.websocket) {
            websocket = websocket_json(*exchange.websocket);
        } else {
            websocket.reset();
        }
    }
};

int bind_record(sqlite3_stmt* statement, std::size_t row_index, const FlowRecord& record,
                const RecordJson& json) {
    const auto& exchange = record.exchange;
    RowBinder row(statement, row_index);
    row.unsigned_integer(record.connection_id);
    row.text(record.client_address);
    row.text(record.server_address);
    row.text(record.sni);
    row.text(record.client_tls_version);
    row.text(record.upstream_tls_version);
    row.text(record.alpn);
    row.text(exchange.protocol);
    row.integer(exchange.stream_id);
    row.unsigned_integer(exchange.sequence);
    row.integer(to_micros(exchange.request_start));
    if (exchange.response_start) {
        row.integer(to_micros(*exchange.response_start));
    } else {
        row.null();
    }
    row.integer(to_micros(exchange.end));
    row.text(exchange.method);
    row.text(exchange.scheme);
    row.text(exchange.authority);
    row.text(exchange.path);
    row.integer(exchange.status);
    row.text(exchange.reason);
    row.text(json.informational);
    row.text(json.request_headers);
    row.text(json.response_headers);
    bind_body(row, exchange.request_body);
    bind_body(row, exchange.response_body);
    if (json.websocket) {
        row.text(*json.websocket);
    } else {
        row.null();
    }
    row.text(exchange.error);
    return row.status();
}

// Reads one row in column order. A value that cannot be what insert wrote (a damaged or foreign
// file) sets problem() instead of producing garbage.
class RowReader {
public:
    explicit RowReader(sqlite3_stmt* statement) : statement_(statement) {}

    std::int64_t integer() { return sqlite3_column_int64(statement_, index_++); }
    std::uint64_t unsigned_integer() { return static_cast<std::uint64_t>(integer()); }
    std::uint32_t uint32() {
        const std::int64_t value = integer();
        if (value < 0 || value > std::numeric_limits<std::uint32_t>::max()) {
            fail("integer out of range");
            return 0;
        }
        return static_cast<std::uint32_t>(value);
    }
    int int32() {
        const std::int64_t value = integer();
        if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
            fail("integer out of range");
            return 0;
        }
        return static_cast<int>(value);
    }
    bool boolean() { return integer() != 0; }
    std::string text() {
        // sqlite3_column_bytes after sqlite3_column_text: the length of that text.
        const auto* data = sqlite3_column_text(statement_, index_);
        const int size = sqlite3_column_bytes(statement_, index_);
        ++index_;
        return data != nullptr ? std::string(reinterpret_cast<const char*>(data), size)
                               : std::string();
    }
    std::string blob() {
        const void* data = sqlite3_column_blob(statement_, index_);
        const int size = sqlite3_column_bytes(statement_, index_);
        ++index_;
        return data != nullptr ? std::string(static_cast<const char*>(data), size) : std::string();
    }
    bool next_is_null() const { return sqlite3_column_type(statement_, index_) == SQLITE_NULL; }
    void skip() { ++index_; }
    Clock::time_point time() {
        const std::int64_t micros = integer();
        // Clock::duration is finer than microseconds: keep the conversion from overflowing.
        constexpr std::int64_t kLimit =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::duration::max()).count();
        if (micros > kLimit || micros < -kLimit) {
            fail("time out of range");
            return {};
        }
        return Clock::time_point(
            std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(micros)));
    }

    void fail(std::string problem) {
        if (problem_.empty()) {
            problem_ = std::move(problem);
        }
    }
    const std::string& problem() const { return problem_; }

private:
    sqlite3_stmt* statement_;
    int index_ = 0;
    std::string problem_;
};

// The JSON decoders throw on a shape insert never writes; read_row turns that into an error.
std::vector<inspect::HeaderField> headers_from_json(const std::string& text) {
    std::vector<inspect::HeaderField> headers;
    for (const auto& pair : Json::parse(text)) {
        if (!pair.is_array() || pair.size() != 2) {
            throw std::runtime_error("header is not a [name, value] pair");
        }
        headers.push_back({pair[0].get<std::string>(), pair[1].get<std::string>()});
    }
    return headers;
}

std::map<int, std::uint64_t> opcodes_from_json(const Json& object) {
    std::map<int, std::uint64_t> opcodes;
    for (const auto& [key, count] : object.items()) {
        int opcode = 0;
        const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), opcode);
        if (error != std::errc() || end != key.data() + key.size()) {
            throw std::runtime_error("opcode is not a number");
        }
        opcodes[opcode] = count.get<std::uint64_t>();
    }
    return opcodes;
}

inspect::WebSocketSummary websocket_from_json(const std::string& text) {
    const Json object = Json::parse(text);
    inspect::WebSocketSummary summary;
    summary.client_messages = object.at("client_messages").get<std::uint64_t>();
    summary.server_messages = object.at("server_messages").get<std::uint64_t>();
    summary.client_payload_bytes = object.at("client_payload_bytes").get<std::uint64_t>();
    summary.server_payload_bytes = object.at("server_payload_bytes").get<std::uint64_t>();
    summary.client_opcodes = opcodes_from_json(object.at("client_opcodes"));
    summary.server_opcodes = opcodes_from_json(object.at("server_opcodes"));
    if (object.contains("close_code")) {
        summary.close_code = object.at("close_code").get<int>();
    }
    summary.error = object.at("error").get<std::string>();
    return summary;
}

void read_body(RowReader& row, inspect::BodySummary& body) {
    body.size = row.unsigned_integer();
    body.sha256 = row.text();
    body.content_type = row.text();
    body.content_encoding = row.text();
    body.captured = row.blob();
    body.capture_truncated = row.boolean();
}

Result<FlowRecord> read_row(sqlite3_stmt* statement) {
    RowReader row(statement);
    FlowRecord record;
    auto& exchange = record.exchange;
    try {
        record.connection_id = row.unsigned_integer();
        record.client_address = row.text();
        record.server_address = row.text();
        record.sni = row.text();
        record.client_tls_version = row.text();
        record.upstream_tls_version = row.text();
        record.alpn = row.text();
        exchange.protocol = row.text();
        exchange.stream_id = row.uint32();
        exchange.sequence = row.unsigned_integer();
        exchange.request_start = row.time();
        if (row.next_is_null()) {
            row.skip();
        } else {
            exchange.response_start = row.time();
        }
        exchange.end = row.time();
        exchange.method = row.text();
        exchange.scheme = row.text();
        exchange.authority = row.text();
        exchange.path = row.text();
        exchange.status = row.int32();
        exchange.reason = row.text();
        exchange.informational = Json::parse(row.text()).get<std::vector<int>>();
        exchange.request_headers = headers_from_json(row.text());
        exchange.response_headers = headers_from_json(row.text());
        read_body(row, exchange.request_body);
        read_body(row, exchange.response_body);
        if (row.next_is_null()) {
            row.skip();
        } else {
            exchange.websocket = websocket_from_json(row.text());
        }
        exchange.error = row.text();
    } catch (const std::exception& error) {
        row.fail(error.what());
    }
    if (!row.problem().empty()) {
        return make_error("unreadable flow row: " + row.problem());
    }
    return record;
}

void match_host_function(sqlite3_context* context, int /*argc*/, sqlite3_value** argv) {
    const auto text = [](sqlite3_value* value) {
        const auto* data = sqlite3_value_text(value);
        const int size = sqlite3_value_bytes(value);
        return data != nullptr ? std::string_view(reinterpret_cast<const char*>(data), size)
                               : std::string_view();
    };
    const std::string_view pattern = text(argv[0]);
    const std::string_view authority = text(argv[1]);
    const std::string_view sni = text(argv[2]);

    // "host:port" and "[v6]:port" also match by their host alone.
    std::string_view authority_host = authority;
    if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        const std::string_view port = authority.substr(colon + 1);
        const bool numeric_port =
            !port.empty() &&
            std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
        const std::string_view host = authority.substr(0, colon);
        const bool bracketed = host.size() > 1 && host.front() == '[' && host.back() == ']';
        if (numeric_port && (bracketed || host.find(':') == std::string_view::npos)) {
            authority_host = host;
        }
    }
    const auto matches = [&](std::string_view candidate) {
        return !candidate.empty() && host_glob_matches(pattern, candidate);
    };
    const bool matched = matches(sni) || matches(authority) ||
                         (authority_host != authority && matches(authority_host));
    sqlite3_result_int(context, matched ? 1 : 0);
}

int bind_text(sqlite3_stmt* statement, const char* name, std::string_view value) {
    const int index = sqlite3_bind_parameter_index(statement, name);
    const char* data = value.data() != nullptr ? value.data() : "";
    return sqlite3_bind_text64(statement, index, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

int bind_integer(sqlite3_stmt* statement, const char* name, std::int64_t value) {
    return sqlite3_bind_int64(statement, sqlite3_bind_parameter_index(statement, name), value);
}

// Parses the fixed-width numeric fields of a time stamp.
class Cursor {
public:
    explicit Cursor(std::string_view text) : text_(text) {}

    bool at_end() const { return position_ == text_.size(); }
    bool accept(char c) {
        if (!at_end() && text_[position_] == c) {
            ++position_;
            return true;
        }
        return false;
    }
    bool digit_next() const {
        return !at_end() && text_[position_] >= '0' && text_[position_] <= '9';
    }
    // Exactly `count` digits.
    std::optional<int> number(int count) {
        int value = 0;
        for (int i = 0; i < count; ++i) {
            if (!digit_next()) {
                return std::nullopt;
            }
            value = value * 10 + (text_[position_++] - '0');
        }
        return value;
    }
    // A fraction of a second after the '.', in nanoseconds (up to 9 digits).
    std::optional<std::int64_t> fraction_nanos() {
        std::int64_t nanos = 0;
        int digits = 0;
        while (digit_next()) {
            if (++digits > 9) {
                return std::nullopt;
            }
            nanos = nanos * 10 + (text_[position_++] - '0');
        }
        if (digits == 0) {
            return std::nullopt;
        }
        for (; digits < 9; ++digits) {
            nanos *= 10;
        }
        return nanos;
    }

private:
    std::string_view text_;
    std::size_t position_ = 0;
};

std::optional<Clock::time_point> parse_absolute_time(std::string_view text) {
    using namespace std::chrono;
    Cursor cursor(text);
    const auto year_number = cursor.number(4);
    if (!year_number || !cursor.accept('-')) {
        return std::nullopt;
    }
    const auto month_number = cursor.number(2);
    if (!month_number || !cursor.accept('-')) {
        return std::nullopt;
    }
    const auto day_number = cursor.number(2);
    if (!day_number) {
        return std::nullopt;
    }
    // Clock counts nanoseconds in 64 bits: roughly 1678 to 2262.
    if (*year_number < 1900 || *year_number > 2200) {
        return std::nullopt;
    }
    const year_month_day date{year(*year_number), month(static_cast<unsigned>(*month_number)),
                              day(static_cast<unsigned>(*day_number))};
    if (!date.ok()) {
        return std::nullopt;
    }
    Clock::time_point when = sys_days(date);
    if (cursor.at_end()) {
        return when;
    }
    if (!cursor.accept('T') && !cursor.accept('t') && !cursor.accept(' ')) {
        return std::nullopt;
    }
    const auto hour = cursor.number(2);
    if (!hour || *hour > 23 || !cursor.accept(':')) {
        return std::nullopt;
    }
    const auto minute = cursor.number(2);
    if (!minute || *minute > 59) {
        return std::nullopt;
    }
    int second = 0;
    std::int64_t nanos = 0;
    if (cursor.accept(':')) {
        const auto seconds_field = cursor.number(2);
        if (!seconds_field || *seconds_field > 59) {
            return std::nullopt;
        }
        second = *seconds_field;
        if (cursor.accept('.') || cursor.accept(',')) {
            const auto fraction = cursor.fraction_nanos();
            if (!fraction) {
                return std::nullopt;
            }
            nanos = *fraction;
        }
    }
    when += hours(*hour) + minutes(*minute) + seconds(second) +
            duration_cast<Clock::duration>(nanoseconds(nanos));
    if (cursor.accept('Z') || cursor.accept('z')) {
        return cursor.at_end() ? std::optional(when) : std::nullopt;
    }
    // Without a zone the time is UTC; with an offset it is local time that far east of UTC.
    const bool east = cursor.accept('+');
    if (east || cursor.accept('-')) {
        const auto offset_hours = cursor.number(2);
        if (!offset_hours || *offset_hours > 23) {
            return std::nullopt;
        }
        cursor.accept(':');
        const auto offset_minutes = cursor.number(2);
        if (!offset_minutes || *offset_minutes > 59) {
            return std::nullopt;
        }
        const auto offset = hours(*offset_hours) + minutes(*offset_minutes);
        when = east ? when - offset : when + offset;
    }
    return cursor.at_end() ? std::optional(when) : std::nullopt;
}

std::optional<Clock::duration> parse_relative(std::string_view text) {
    using namespace std::chrono;
    if (text.size() < 2) {
        return std::nullopt;
    }
    std::int64_t unit_seconds = 0;
    switch (text.back()) {
        case 's':
            unit_seconds = 1;
            break;
        case 'm':
            unit_seconds = 60;
            break;
        case 'h':
            unit_seconds = 3600;
            break;
        case 'd':
            unit_seconds = 86400;
            break;
        default:
            return std::nullopt;
    }
    const std::string_view digits = text.substr(0, text.size() - 1);
    std::uint64_t count = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    if (error != std::errc() || end != digits.data() + digits.size()) {
        return std::nullopt;
    }
    // A century back is plenty, and keeps `now - duration` far from overflowing.
    constexpr std::uint64_t kMaxSeconds = 100ULL * 366 * 86400;
    if (count > kMaxSeconds / static_cast<std::uint64_t>(unit_seconds)) {
        return std::nullopt;
    }
    return duration_cast<Clock::duration>(seconds(static_cast<std::int64_t>(count) * unit_seconds));
}

}  // namespace

void FlowStore::DatabaseCloser::operator()(sqlite3* db) const {
    // _v2: closes once any statement still open is finalized, instead of failing.
    sqlite3_close_v2(db);
}

void FlowStore::StatementFinalizer::operator()(sqlite3_stmt* statement) const {
    sqlite3_finalize(statement);
}

FlowStore::FlowStore(std::filesystem::path path, Database db, Statement insert,
                     Statement insert_many)
    : path_(std::move(path)),
      db_(std::move(db)),
      insert_(std::move(insert)),
      insert_many_(std::move(insert_many)) {}

FlowStore::~FlowStore() = default;

std::string FlowStore::describe_failure(std::string_view what) const {
    return "flow store " + path_.string() + ": " + std::string(what) + ": " +
           sqlite3_errmsg(db_.get());
}

Result<FlowStore> FlowStore::open(const std::filesystem::path& path, OpenMode mode) {
    const bool writable = mode == OpenMode::read_write;
    const std::string name = "flow store " + path.string();
    std::error_code error;
    if (!writable) {
        const bool exists = std::filesystem::exists(path, error);
        if (error) {
            return make_error("cannot access " + name + ": " + error.message());
        }
        if (!exists) {
            return make_error(name + " does not exist");
        }
    } else {
        if (path.has_parent_path()) {
            std::filesystem::create_directories(path.parent_path(), error);
            if (error) {
                return make_error("cannot create the directory of " + name + ": " +
                                  error.message());
            }
        }
        // Captured traffic is private: create the file ourselves, without world access. SQLite
        // gives its -wal and -shm files the database's permissions.
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
        if (fd >= 0) {
            ::close(fd);
        }
    }

    sqlite3* raw = nullptr;
    // NOMUTEX: a store is used by one thread at a time (the writer thread, or the CLI), so the
    // per-call connection mutex of the default serialized mode (two locks per bound value) buys
    // nothing.
    const int flags = SQLITE_OPEN_NOMUTEX | (writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                                      : SQLITE_OPEN_READONLY);
    const int opened = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Database db(raw);  // a handle comes back even when opening fails, and must be closed
    if (opened != SQLITE_OK) {
        return make_error("cannot open " + name + ": " +
                          (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(opened)));
    }
    sqlite3_extended_result_codes(db.get(), 1);
    // The CLI reads while the writer commits; a checkpoint can hold a lock briefly.
    sqlite3_busy_timeout(db.get(), 5000);
    const auto exec = [&](const std::string& sql, std::string_view what) -> Result<void> {
        if (sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
            return make_error(name + ": " + std::string(what) + ": " + sqlite3_errmsg(db.get()));
        }
        return {};
    };
    const auto read_schema_version = [&]() -> Result<int> {
        sqlite3_stmt* raw_statement = nullptr;
        sqlite3_prepare_v2(db.get(), "PRAGMA user_version", -1, &raw_statement, nullptr);
        Statement statement(raw_statement);
        if (!statement || sqlite3_step(statement.get()) != SQLITE_ROW) {
            return make_error("cannot read " + name + ": " + sqlite3_errmsg(db.get()));
        }
        return sqlite3_column_int(statement.get(), 0);
    };
    const auto check_version = [&](int version) -> Result<void> {
        if (version == 0) {
            return make_error(name + " is not a tlsgate flow store (no schema)");
        }
        if (version > kSchemaVersion) {
            return make_error(name + " has schema version " + std::to_string(version) +
                              ", newer than this tlsgate understands (" +
                              std::to_string(kSchemaVersion) + ")");
        }
        return {};
    };

    if (sqlite3_create_function_v2(db.get(), "tlsgate_host_matches", 3,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                                   match_host_function, nullptr, nullptr, nullptr) != SQLITE_OK) {
        return make_error(name + ": cannot register the host matcher: " + sqlite3_errmsg(db.get()));
    }

    if (!writable) {
        const auto version = read_schema_version();
        if (!version) {
            return make_error(version.error());
        }
        if (auto checked = check_version(*version); !checked) {
            return make_error(checked.error());
        }
        if (auto set = exec("PRAGMA query_only = 1", "query_only"); !set) {
            return make_error(set.error());
        }
        return FlowStore(path, std::move(db), nullptr, nullptr);
    }

    // WAL: the CLI reads without blocking the writer. NORMAL, not OFF: a commit does not wait
    // for fsync, only a checkpoint does, so a power cut may lose the last batches but never
    // corrupts the file; OFF would only save that fsync (per checkpoint, on the writer thread)
    // and could corrupt the whole history on a power cut, too much for a log.
    if (auto set = exec("PRAGMA journal_mode = WAL", "cannot enable WAL"); !set) {
        return make_error(set.error());
    }
    if (auto set = exec("PRAGMA synchronous = NORMAL", "cannot set synchronous"); !set) {
        return make_error(set.error());
    }
    // Checkpoint every 4000 pages (16 MiB of WAL) rather than SQLite's 1000: a quarter of the
    // checkpoints and fsyncs, and index pages rewritten by many batches are copied once. A
    // checkpoint held back by a long reader can grow the WAL: it is cut back to 64 MiB after.
    if (auto set = exec("PRAGMA wal_autocheckpoint = 4000; PRAGMA journal_size_limit = 67108864",
                        "cannot set the checkpoint interval");
        !set) {
        return make_error(set.error());
    }
    // IMMEDIATE: two gateways starting on one file must not both create the schema.
    if (auto begun = exec("BEGIN IMMEDIATE", "cannot lock"); !begun) {
        return make_error(begun.error());
    }
    auto version = read_schema_version();
    Result<void> schema;
    if (!version) {
        schema = make_error(version.error());
    } else if (*version == 0) {
        schema = exec(create_schema_sql(), "cannot create the schema");
    } else {
        schema = check_version(*version);
        if (schema) {
            // Stores made before this index was found to serve no query: it only cost every
            // insert a B-tree update.
            schema = exec("DROP INDEX IF EXISTS flows_by_sni", "cannot drop an unused index");
        }
    }
    if (schema) {
        schema = exec("COMMIT", "cannot create the schema");
    }
    if (!schema) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        return make_error(schema.error());
    }

    const auto prepare_insert = [&](std::size_t rows) -> Result<Statement> {
        sqlite3_stmt* raw_insert = nullptr;
        const std::string sql = insert_sql(rows);
        if (sqlite3_prepare_v3(db.get(), sql.c_str(), static_cast<int>(sql.size()),
                               SQLITE_PREPARE_PERSISTENT, &raw_insert, nullptr) != SQLITE_OK) {
            return make_error(name + ": cannot prepare the insert: " + sqlite3_errmsg(db.get()));
        }
        return Statement(raw_insert);
    };
    auto insert_one = prepare_insert(1);
    if (!insert_one) {
        return make_error(insert_one.error());
    }
    auto insert_many = prepare_insert(kRowsPerInsert);
    if (!insert_many) {
        return make_error(insert_many.error());
    }
    return FlowStore(path, std::move(db), std::move(insert_one).value(),
                     std::move(insert_many).value());
}

Result<void> FlowStore::insert(std::span<const FlowRecord> records) {
    if (!insert_) {
        return make_error("flow store " + path_.string() + " is open read-only");
    }
    if (records.empty()) {
        return {};
    }
    sqlite3* db = db_.get();
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        return make_error(describe_failure("cannot begin a transaction"));
    }
    std::string failure;
    // The JSON texts of the rows of one statement, alive until it has run.
    std::array<RecordJson, kRowsPerInsert> json;
    while (!records.empty() && failure.empty()) {
        const bool many = records.size() >= kRowsPerInsert;
        const std::size_t rows = many ? kRowsPerInsert : 1;
        sqlite3_stmt* statement = many ? insert_many_.get() : insert_.get();
        // Every column of every row is bound each time, so no binding survives from before.
        int bound = SQLITE_OK;
        for (std::size_t row = 0; row < rows && bound == SQLITE_OK; ++row) {
            json[row].fill(records[row].exchange);
            bound = bind_record(statement, row, records[row], json[row]);
        }
        if (bound != SQLITE_OK) {
            failure = std::string("cannot bind a flow: ") + sqlite3_errstr(bound);
        } else if (sqlite3_step(statement) != SQLITE_DONE) {
            failure = describe_failure("cannot insert a flow");
        }
        sqlite3_reset(statement);
        records = records.subspan(rows);
    }
    if (failure.empty() && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        failure = describe_failure("cannot commit");
    }
    if (!failure.empty()) {
        // Leave no transaction open, so the next batch can succeed once the cause is gone.
        if (sqlite3_get_autocommit(db) == 0) {
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        }
        return make_error(failure);
    }
    return {};
}

Result<std::vector<FlowRecord>> FlowStore::query(const FlowQuery& query) const {
    // Fixed SQL fragments only; every value the user typed is a bound parameter.
    std::string sql = "SELECT " + column_names() + " FROM flows WHERE 1";
    if (query.host_pattern) {
        sql += " AND tlsgate_host_matches(:host, authority, sni)";
    }
    if (query.status) {
        sql += " AND status BETWEEN :status_lowest AND :status_highest";
    }
    if (query.since) {
        sql += " AND request_start_us >= :since";
    }
    if (query.grep) {
        sql +=
            " AND (instr(path, :grep) > 0 OR instr(authority, :grep) > 0"
            " OR instr(method, :grep) > 0"
            " OR EXISTS (SELECT 1 FROM json_tree(flows.request_headers) AS h"
            "            WHERE h.type = 'text' AND instr(h.atom, :grep) > 0)"
            " OR EXISTS (SELECT 1 FROM json_tree(flows.response_headers) AS h"
            "            WHERE h.type = 'text' AND instr(h.atom, :grep) > 0)"
            " OR instr(request_body_captured, CAST(:grep AS BLOB)) > 0"
            " OR instr(response_body_captured, CAST(:grep AS BLOB)) > 0)";
    }
    sql += query.newest_first ? " ORDER BY request_start_us DESC, id DESC"
                              : " ORDER BY request_start_us ASC, id ASC";
    sql += " LIMIT :limit";

    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK) {
        return make_error(describe_failure("cannot prepare the query"));
    }
    Statement statement(raw);
    int bound = SQLITE_OK;
    const auto bind = [&bound](int code) {
        if (bound == SQLITE_OK) {
            bound = code;
        }
    };
    if (query.host_pattern) {
        bind(bind_text(raw, ":host", *query.host_pattern));
    }
    if (query.status) {
        bind(bind_integer(raw, ":status_lowest", query.status->lowest));
        bind(bind_integer(raw, ":status_highest", query.status->highest));
    }
    if (query.since) {
        bind(bind_integer(raw, ":since", to_micros(*query.since)));
    }
    if (query.grep) {
        bind(bind_text(raw, ":grep", *query.grep));
    }
    constexpr auto kMaxLimit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    const std::int64_t limit =
        query.limit == 0 ? -1 : static_cast<std::int64_t>(std::min(query.limit, kMaxLimit));
    bind(bind_integer(raw, ":limit", limit));
    if (bound != SQLITE_OK) {
        return make_error("flow store " + path_.string() +
                          ": cannot bind the query: " + sqlite3_errstr(bound));
    }

    std::vector<FlowRecord> records;
    // The limit is a caller's number: reserve for a page, let a huge one grow as rows arrive.
    records.reserve(std::min<std::size_t>(query.limit == 0 ? 64 : query.limit, 1024));
    for (;;) {
        const int stepped = sqlite3_step(raw);
        if (stepped == SQLITE_DONE) {
            break;
        }
        if (stepped != SQLITE_ROW) {
            return make_error(describe_failure("query failed"));
        }
        auto record = read_row(raw);
        if (!record) {
            return make_error("flow store " + path_.string() + ": " + record.error());
        }
        records.push_back(std::move(record).value());
    }
    return records;
}

Result<StatusFilter> parse_status_filter(std::string_view text) {
    const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    if (text == "0") {
        return StatusFilter{0, 0};
    }
    if (text.size() == 3 && text[0] >= '1' && text[0] <= '9') {
        const int hundreds = (text[0] - '0') * 100;
        if (is_digit(text[1]) && is_digit(text[2])) {
            const int code = hundreds + (text[1] - '0') * 10 + (text[2] - '0');
            return StatusFilter{code, code};
        }
        const auto is_x = [](char c) { return c == 'x' || c == 'X'; };
        if (is_x(text[1]) && is_x(text[2])) {
            return StatusFilter{hundreds, hundreds + 99};
        }
    }
    return make_error("status filter \"" + std::string(text) +
                      "\": expected a code like 404 or a class like 4xx");
}

Result<Clock::time_point> parse_since(std::string_view text, Clock::time_point now) {
    if (const auto ago = parse_relative(text)) {
        return now - *ago;
    }
    if (const auto when = parse_absolute_time(text)) {
        return *when;
    }
    return make_error("time \"" + std::string(text) +
                      "\": expected 2026-11-22T10:00:00Z, 2026-11-22 10:00:00, 2026-11-22 or a "
                      "duration before now like 90s, 10m, 2h, 3d");
}

bool host_glob_matches(std::string_view pattern, std::string_view host) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    // Greedy with one backtrack point: the last '*' seen absorbs one more character on a
    // mismatch. Linear in practice, O(pattern * host) at worst, never recursive.
    std::size_t p = 0;
    std::size_t h = 0;
    std::size_t star = std::string_view::npos;
    std::size_t star_host = 0;
    while (h < host.size()) {
        if (p < pattern.size() &&
            (pattern[p] == '?' || (pattern[p] != '*' && lower(pattern[p]) == lower(host[h])))) {
            ++p;
            ++h;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            star_host = h;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            h = ++star_host;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') {
        ++p;
    }
    return p == pattern.size();
}

}  // namespace tlsgate::record
