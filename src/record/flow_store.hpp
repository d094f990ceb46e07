#pragma once
// The SQLite flow store: one row per recorded HTTP exchange. The flow writer thread owns a
// read-write store and appends batches; `tlsgate flows` opens another read-only and queries it
// while the gateway keeps writing (WAL lets readers and the writer run side by side).
//
// Scalars get a column each so they can be filtered and indexed; header lists, 1xx statuses and
// the WebSocket summary are JSON text (readable with SQLite's JSON functions); captured bodies
// are BLOBs, NULL when nothing was captured. Times are integer microseconds since the epoch, so
// a record reads back exactly when its times have microsecond precision (finer is truncated).
// Header names and values that are not valid UTF-8 cannot be JSON text: their invalid bytes are
// stored as U+FFFD. Everything else reads back byte for byte.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "record/flow_record.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace tlsgate::record {

using Clock = inspect::Clock;

enum class OpenMode {
    read_write,  // creates the file, its directory and the schema when missing
    read_only,   // the file must exist and hold a flow store
};

// Final status codes from `lowest` to `highest`, both included.
struct StatusFilter {
    int lowest = 0;
    int highest = 0;
    friend bool operator==(const StatusFilter&, const StatusFilter&) = default;
};

struct FlowQuery {
    // Shell-style glob over the SNI, the authority, or the authority without its port;
    // case-insensitive. '*' is any run of characters (dots included), '?' is one character,
    // everything else is literal. "*.example.test" matches "api.example.test:8443".
    std::optional<std::string> host_pattern;
    std::optional<StatusFilter> status;
    std::optional<Clock::time_point> since;  // request started at or after
    // Case-sensitive substring of the path, authority, method, a request or response header name
    // or value, or a captured body (as captured: still content-encoded).
    std::optional<std::string> grep;
    std::size_t limit = 100;  // 0: no limit
    bool newest_first = false;
};

class FlowStore {
public:
    static constexpr int kSchemaVersion = 1;

    static Result<FlowStore> open(const std::filesystem::path& path, OpenMode mode);

    FlowStore(FlowStore&&) noexcept = default;
    FlowStore& operator=(FlowStore&&) noexcept = default;
    ~FlowStore();

    // All or nothing: one transaction. Only on a read_write store.
    Result<void> insert(std::span<const FlowRecord> records);
    // Matching records ordered by request start (then insertion order).
    Result<std::vector<FlowRecord>> query(const FlowQuery& query) const;

    const std::filesystem::path& path() const { return path_; }

private:
    struct DatabaseCloser {
        void operator()(sqlite3* db) const;
    };
    struct StatementFinalizer {
        void operator()(sqlite3_stmt* statement) const;
    };
    using Database = std::unique_ptr<sqlite3, DatabaseCloser>;
    using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

    FlowStore(std::filesystem::path path, Database db, Statement insert, Statement insert_many);
    std::string describe_failure(std::string_view what) const;

    std::filesystem::path path_;
    Database db_;            // declared before the statements: they are finalized first
    Statement insert_;       // one row; null when read-only
    Statement insert_many_;  // several rows at once; null when read-only
};

// "404" (one code; "0" selects exchanges that got no response) or "4xx" (a class).
Result<StatusFilter> parse_status_filter(std::string_view text);

// "2026-11-22T10:00:00Z", "2026-11-22 10:00:00" (UTC, optional fraction of a second), "2026-11-22"
// (midnight UTC), or a duration before `now`: "90s", "10m", "2h", "3d".
Result<Clock::time_point> parse_since(std::string_view text, Clock::time_point now);

// Case-insensitive (ASCII) glob with '*' and '?' over the whole of `host`.
bool host_glob_matches(std::string_view pattern, std::string_view host);

}  // namespace tlsgate::record
