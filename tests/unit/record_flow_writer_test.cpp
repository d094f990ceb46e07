#include "record/flow_writer.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <stdexcept>

namespace tlsgate::record {
namespace {

using namespace std::chrono_literals;

class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ =
            std::filesystem::temp_directory_path() /
            ("tlsgate-flow-writer-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
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

// Collects what the writer reports (on its own thread).
class Reports {
public:
    FlowWriter::Reporter reporter() {
        return [this](const std::string& message) {
            std::lock_guard lock(mutex_);
            messages_.push_back(message);
        };
    }
    std::vector<std::string> containing(std::string_view text) const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> found;
        for (const auto& message : messages_) {
            if (message.find(text) != std::string::npos) {
                found.push_back(message);
            }
        }
        return found;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> messages_;
};

FlowRecord numbered(std::uint64_t n) {
    FlowRecord record;
    record.connection_id = n;
    record.exchange.sequence = n;
    record.exchange.request_start = Clock::time_point(std::chrono::seconds(1'800'000'000 + n));
    record.exchange.authority = "app.example.test";
    record.exchange.path = "/item/" + std::to_string(n);
    record.exchange.status = 200;
    record.exchange.request_headers = {{"Host", "app.example.test"}};
    return record;
}

std::vector<FlowRecord> stored_flows(const std::filesystem::path& path) {
    auto store = FlowStore::open(path, OpenMode::read_only);
    EXPECT_TRUE(store) << store.error();
    if (!store) {
        return {};
    }
    FlowQuery everything;
    everything.limit = 0;
    auto flows = store->query(everything);
    EXPECT_TRUE(flows) << flows.error();
    return flows ? std::move(flows).value() : std::vector<FlowRecord>{};
}

std::unique_ptr<FlowSink> sqlite_sink(const std::filesystem::path& path) {
    auto sink = SqliteFlowSink::open(path);
    EXPECT_TRUE(sink) << sink.error();
    return sink ? std::move(sink).value() : nullptr;
}

std::vector<std::unique_ptr<FlowSink>> sinks_of(std::unique_ptr<FlowSink> first,
                                                std::unique_ptr<FlowSink> second = nullptr) {
    std::vector<std::unique_ptr<FlowSink>> sinks;
    sinks.push_back(std::move(first));
    if (second) {
        sinks.push_back(std::move(second));
    }
    return sinks;
}

// A sink that always fails, like one on a full disk.
class FailingSink : public FlowSink {
public:
    Result<void> write(std::span<const FlowRecord>) override {
        ++calls;
        return make_error("No space left on device");
    }
    std::string_view name() const override { return "failing-test-sink"; }
    std::atomic<int> calls{0};
};

class ThrowingSink : public FlowSink {
public:
    Result<void> write(std::span<const FlowRecord>) override {
        throw std::runtime_error("sink bug");
    }
    std::string_view name() const override { return "throwing-test-sink"; }
};

// Remembers the batches it got; can hold the writer inside write() until released.
class RecordingSink : public FlowSink {
public:
    Result<void> write(std::span<const FlowRecord> batch) override {
        std::unique_lock lock(mutex_);
        batches_.emplace_back(batch.begin(), batch.end());
        entered_.notify_all();
        released_.wait(lock, [this] { return !hold_; });
        return {};
    }
    std::string_view name() const override { return "recording-test-sink"; }

    void hold() {
        std::lock_guard lock(mutex_);
        hold_ = true;
    }
    void release() {
        {
            std::lock_guard lock(mutex_);
            hold_ = false;
        }
        released_.notify_all();
    }
    void wait_for_first_batch() {
        std::unique_lock lock(mutex_);
        entered_.wait(lock, [this] { return !batches_.empty(); });
    }
    std::vector<std::vector<FlowRecord>> batches() {
        std::lock_guard lock(mutex_);
        return batches_;
    }

private:
    std::mutex mutex_;
    std::condition_variable entered_;
    std::condition_variable released_;
    bool hold_ = false;
    std::vector<std::vector<FlowRecord>> batches_;
};

TEST(FlowWriter, RecordsArriveInTheStoreAfterClose) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    Reports reports;
    auto writer = FlowWriter::start(sinks_of(sqlite_sink(path)), {}, reports.reporter());
    ASSERT_TRUE(writer) << writer.error();
    constexpr std::uint64_t kCount = 1500;
    for (std::uint64_t n = 0; n < kCount; ++n) {
        ASSERT_TRUE((*writer)->submit(numbered(n)));
    }
    (*writer)->close();
    (*writer)->close();  // idempotent
    EXPECT_EQ((*writer)->written(), kCount);
    EXPECT_EQ((*writer)->dropped(), 0u);
    EXPECT_EQ((*writer)->write_errors(), 0u);
    EXPECT_FALSE((*writer)->submit(numbered(kCount)));  // closed: dropped, not queued
    EXPECT_EQ((*writer)->dropped(), 1u);

    const auto flows = stored_flows(path);
    ASSERT_EQ(flows.size(), kCount);
    for (std::uint64_t n = 0; n < kCount; ++n) {
        ASSERT_EQ(flows[n].connection_id, n);
        ASSERT_EQ(flows[n].exchange.path, "/item/" + std::to_string(n));
    }
}

TEST(FlowWriter, DestructorFlushesToo) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    {
        auto writer = FlowWriter::start(sinks_of(sqlite_sink(path)), {}, nullptr);
        ASSERT_TRUE(writer) << writer.error();
        for (std::uint64_t n = 0; n < 10; ++n) {
            ASSERT_TRUE((*writer)->submit(numbered(n)));
        }
    }
    EXPECT_EQ(stored_flows(path).size(), 10u);
}

TEST(FlowWriter, BatchesKeepOrderAndRespectMaxBatch) {
    auto recording = std::make_unique<RecordingSink>();
    RecordingSink* sink = recording.get();
    FlowWriter::Options options;
    options.max_batch = 8;
    auto writer = FlowWriter::start(sinks_of(std::move(recording)), options, nullptr);
    ASSERT_TRUE(writer) << writer.error();
    for (std::uint64_t n = 0; n < 100; ++n) {
        ASSERT_TRUE((*writer)->submit(numbered(n)));
    }
    (*writer)->close();
    std::uint64_t next = 0;
    for (const auto& batch : sink->batches()) {
        EXPECT_GE(batch.size(), 1u);
        EXPECT_LE(batch.size(), 8u);
        for (const auto& flow : batch) {
            EXPECT_EQ(flow.connection_id, next++);
        }
    }
    EXPECT_EQ(next, 100u);
}

TEST(FlowWriter, ASlowWriterDropsAndCountsButSubmitNeverWaitsForIt) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    Reports reports;
    FlowWriter::Options options;
    options.queue_capacity = 16;
    options.max_batch = 4;
    options.max_batch_delay = 1ms;
    options.slow_down_per_batch = 50ms;  // 10,000 flows would take 125 s to write
    auto writer = FlowWriter::start(sinks_of(sqlite_sink(path)), options, reports.reporter());
    ASSERT_TRUE(writer) << writer.error();

    constexpr std::uint64_t kCount = 10'000;
    std::uint64_t accepted = 0;
    const auto started = std::chrono::steady_clock::now();
    for (std::uint64_t n = 0; n < kCount; ++n) {
        accepted += (*writer)->submit(numbered(n)) ? 1 : 0;
    }
    const auto submitting = std::chrono::steady_clock::now() - started;
    // A generous bound: far below the 125 s a blocking submit would take, far above the few
    // milliseconds it takes (even under sanitizers on a loaded machine).
    EXPECT_LT(submitting, 10s);
    EXPECT_GT((*writer)->dropped(), 0u);
    EXPECT_EQ(accepted + (*writer)->dropped(), kCount);

    (*writer)->close();
    EXPECT_EQ((*writer)->written(), accepted);
    EXPECT_EQ((*writer)->write_errors(), 0u);
    EXPECT_EQ(stored_flows(path).size(), accepted);

    // Reported rate-limited (right away, then once at close in a test this short), and the
    // reports add up to every drop.
    const auto drop_reports = reports.containing("dropped");
    ASSERT_GE(drop_reports.size(), 1u);
    EXPECT_LE(drop_reports.size(), 3u);
    std::uint64_t reported = 0;
    constexpr std::string_view kPrefix = "flow writer: ";
    for (const auto& message : drop_reports) {
        ASSERT_EQ(message.rfind(kPrefix, 0), 0u) << message;
        std::uint64_t count = 0;
        const char* digits = message.data() + kPrefix.size();
        const auto [end, error] = std::from_chars(digits, message.data() + message.size(), count);
        ASSERT_EQ(error, std::errc()) << message;
        EXPECT_TRUE(std::string_view(end, message.data() + message.size() - end)
                        .starts_with(" flow(s) dropped "))
            << message;
        reported += count;
    }
    EXPECT_EQ(reported, (*writer)->dropped());
}

TEST(FlowWriter, TheQueueAlsoStopsAtItsByteCapacity) {
    auto recording = std::make_unique<RecordingSink>();
    RecordingSink* sink = recording.get();
    sink->hold();
    FlowWriter::Options options;
    options.max_batch_delay = 0ms;
    FlowRecord big = numbered(1);
    big.exchange.response_body.captured = std::string(4096, 'x');
    options.queue_byte_capacity = 2 * approximate_size(big) + 100;
    auto writer = FlowWriter::start(sinks_of(std::move(recording)), options, nullptr);
    ASSERT_TRUE(writer) << writer.error();

    ASSERT_TRUE((*writer)->submit(numbered(0)));
    sink->wait_for_first_batch();  // the writer holds flow 0 and the queue is empty
    EXPECT_TRUE((*writer)->submit(FlowRecord(big)));
    EXPECT_TRUE((*writer)->submit(FlowRecord(big)));
    EXPECT_FALSE((*writer)->submit(FlowRecord(big)));
    EXPECT_EQ((*writer)->dropped(), 1u);
    sink->release();
    (*writer)->close();
    EXPECT_EQ((*writer)->written(), 3u);
}

TEST(FlowWriter, ABatchTakesWhatFitsInOrderAndCountsTheRest) {
    auto recording = std::make_unique<RecordingSink>();
    RecordingSink* sink = recording.get();
    sink->hold();
    FlowWriter::Options options;
    options.queue_capacity = 3;
    options.max_batch_delay = 0ms;
    auto writer = FlowWriter::start(sinks_of(std::move(recording)), options, nullptr);
    ASSERT_TRUE(writer) << writer.error();
    ASSERT_TRUE((*writer)->submit(numbered(0)));
    sink->wait_for_first_batch();  // the writer holds flow 0 and the queue is empty

    std::vector<FlowRecord> batch;
    for (std::uint64_t n = 1; n <= 5; ++n) {
        batch.push_back(numbered(n));
    }
    EXPECT_EQ((*writer)->submit(batch), 3u);
    EXPECT_TRUE(batch.empty());
    EXPECT_EQ((*writer)->dropped(), 2u);
    sink->release();
    (*writer)->close();
    EXPECT_EQ((*writer)->written(), 4u);
    std::vector<std::uint64_t> order;
    for (const auto& written : sink->batches()) {
        for (const auto& flow : written) {
            order.push_back(flow.exchange.sequence);
        }
    }
    EXPECT_EQ(order, (std::vector<std::uint64_t>{0, 1, 2, 3}));
}

TEST(FlowWriter, AFailingSinkDoesNotStopTheOthers) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    Reports reports;
    auto failing = std::make_unique<FailingSink>();
    FailingSink* failing_sink = failing.get();
    FlowWriter::Options options;
    options.max_batch = 10;
    auto writer = FlowWriter::start(sinks_of(std::move(failing), sqlite_sink(path)), options,
                                    reports.reporter());
    ASSERT_TRUE(writer) << writer.error();
    constexpr std::uint64_t kCount = 100;
    for (std::uint64_t n = 0; n < kCount; ++n) {
        ASSERT_TRUE((*writer)->submit(numbered(n)));
    }
    (*writer)->close();

    EXPECT_EQ((*writer)->written(), kCount);  // the SQLite sink stored them all
    EXPECT_GE(failing_sink->calls.load(), 10);
    EXPECT_EQ((*writer)->write_errors(), static_cast<std::uint64_t>(failing_sink->calls.load()));
    EXPECT_EQ(stored_flows(path).size(), kCount);

    const auto failure_reports = reports.containing("failing-test-sink");
    ASSERT_GE(failure_reports.size(), 1u);
    EXPECT_LE(failure_reports.size(), 2u);  // rate-limited: first failure, then the summary
    EXPECT_NE(failure_reports.front().find("No space left on device"), std::string::npos);
    EXPECT_TRUE(reports.containing("sqlite").empty());
}

TEST(FlowWriter, AThrowingSinkCountsAsAFailedWrite) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    Reports reports;
    auto writer = FlowWriter::start(sinks_of(std::make_unique<ThrowingSink>(), sqlite_sink(path)),
                                    {}, reports.reporter());
    ASSERT_TRUE(writer) << writer.error();
    ASSERT_TRUE((*writer)->submit(numbered(1)));
    (*writer)->close();
    EXPECT_EQ((*writer)->written(), 1u);
    EXPECT_GE((*writer)->write_errors(), 1u);
    EXPECT_FALSE(reports.containing("sink bug").empty());
}

TEST(FlowWriter, StartRejectsNoSinksAndZeroCapacities) {
    EXPECT_FALSE(FlowWriter::start({}, {}, nullptr));
    FlowWriter::Options zero_queue;
    zero_queue.queue_capacity = 0;
    EXPECT_FALSE(
        FlowWriter::start(sinks_of(std::make_unique<RecordingSink>()), zero_queue, nullptr));
    FlowWriter::Options zero_batch;
    zero_batch.max_batch = 0;
    EXPECT_FALSE(
        FlowWriter::start(sinks_of(std::make_unique<RecordingSink>()), zero_batch, nullptr));
}

TEST(SqliteFlowSink, NamesItsFileAndReportsOpenErrors) {
    TempDir dir;
    const auto path = dir.path() / "flows.db";
    auto sink = SqliteFlowSink::open(path);
    ASSERT_TRUE(sink) << sink.error();
    EXPECT_EQ((*sink)->name(), "sqlite " + path.string());

    const auto blocker = dir.path() / "file";
    std::filesystem::create_directories(dir.path());
    { std::ofstream(blocker) << "x"; }
    const auto bad = SqliteFlowSink::open(blocker / "flows.db");  // a file where a dir must be
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("flows.db"), std::string::npos) << bad.error();
}

}  // namespace
}  // namespace tlsgate::record
