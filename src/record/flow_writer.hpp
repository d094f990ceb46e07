#pragma once
// Hands recorded flows from the workers to the flow sinks (SQLite, later JSON lines) on one
// writer thread. Workers never wait for a disk: submit() only queues, and when the queue is full
// the flow is dropped and counted. Flows are written in batches (one SQLite transaction each),
// so a busy gateway costs one commit per batch, not one per flow. A failing sink (a full disk)
// costs its own records only: the other sinks still get every batch. Drops and failures are
// counted and reported through the Reporter, at most once per 10 s each, never thrown.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.hpp"
#include "record/flow_record.hpp"
#include "record/flow_store.hpp"

namespace tlsgate::record {

// Where flows end up. write() runs on the writer thread only, one batch at a time.
class FlowSink {
public:
    virtual ~FlowSink();
    virtual Result<void> write(std::span<const FlowRecord> batch) = 0;
    virtual std::string_view name() const = 0;  // for reports: "sqlite /var/lib/tlsgate/flows.db"
};

class SqliteFlowSink : public FlowSink {
public:
    // Opens (creating if needed) the store at `path` for writing.
    static Result<std::unique_ptr<FlowSink>> open(const std::filesystem::path& path);
    explicit SqliteFlowSink(FlowStore store);

    // One transaction: a batch is stored whole or not at all.
    Result<void> write(std::span<const FlowRecord> batch) override;
    std::string_view name() const override { return name_; }

private:
    FlowStore store_;
    std::string name_;
};

struct FlowWriterOptions {
    std::size_t queue_capacity = 10000;  // flows
    // Captured bodies make flows large: the queue also stops at this many (estimated) bytes.
    std::size_t queue_byte_capacity = 256 * 1024 * 1024;
    std::size_t max_batch = 512;
    // A batch collects flows for this long after its first one, unless max_batch arrive first:
    // a busy gateway costs one commit per delay (or per max_batch flows), not one per flow.
    std::chrono::milliseconds max_batch_delay{100};
    // Test hook: sleep this long after each batch to simulate a slow disk.
    std::chrono::milliseconds slow_down_per_batch{0};
};

class FlowWriter {
public:
    using Options = FlowWriterOptions;
    using Reporter = std::function<void(const std::string& message)>;

    // Starts the writer thread. `report` (may be empty) is called on that thread.
    static Result<std::unique_ptr<FlowWriter>> start(std::vector<std::unique_ptr<FlowSink>> sinks,
                                                     Options options, Reporter report);
    ~FlowWriter();
    FlowWriter(const FlowWriter&) = delete;
    FlowWriter& operator=(const FlowWriter&) = delete;

    // Never blocks on I/O; false (and counted in dropped()) when the queue is full or closed.
    bool submit(FlowRecord&& record);
    // The same for many at once, under one lock and with at most one wake-up of the writer (how
    // workers hand over, see relay::RecordOutbox). Takes what fits, in order; returns how many
    // were queued (the others are counted as dropped). `records` is left empty.
    std::size_t submit(std::vector<FlowRecord>& records);
    // Writes everything queued, then stops the writer thread. Idempotent; every caller returns
    // once the writer has stopped. Not from the Reporter (that runs on the writer thread).
    void close();

    // Flows stored by at least one sink.
    std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }
    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    // Failed sink writes: one per batch per failing sink.
    std::uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

private:
    // The queue: a FIFO in reused slots. A std::deque allocated a node per flow (a FlowRecord is
    // larger than its node) on the worker and freed it on the writer; slots are allocated when
    // the queue grows past its largest size so far, then reused.
    class Queue {
    public:
        bool empty() const { return size_ == 0; }
        std::size_t size() const { return size_; }
        void push(FlowRecord&& record, std::size_t bytes);
        // Moves the first `count` flows (at most size()) to the end of `out`; returns their
        // approximate_size() total.
        std::size_t move_front_to(std::size_t count, std::vector<FlowRecord>& out);
        void swap(Queue& other) noexcept;

    private:
        struct Slot {
            FlowRecord record;
            std::size_t bytes = 0;
        };
        std::vector<Slot> slots_;
        std::size_t head_ = 0;
        std::size_t size_ = 0;
    };

    struct SinkState {
        std::unique_ptr<FlowSink> sink;
        std::uint64_t failures_unreported = 0;
        std::uint64_t flows_lost_unreported = 0;
        std::string last_error;
        std::optional<std::chrono::steady_clock::time_point> last_report;
    };

    FlowWriter(std::vector<std::unique_ptr<FlowSink>> sinks, Options options, Reporter report);
    void run();
    void write_batch(std::span<const FlowRecord> batch);
    void report_sink_failure(SinkState& state, bool final_report);
    void report_drops(bool final_report);
    void report(const std::string& message) noexcept;

    std::vector<SinkState> sinks_;
    Options options_;
    Reporter report_;

    std::mutex mutex_;
    std::condition_variable wake_;
    Queue queue_;
    std::size_t queued_bytes_ = 0;
    bool stopping_ = false;
    // What the writer waits for, so submit() wakes it only when that arrives: the first flow
    // when idle, a full batch when collecting. Any other wake would cost a futex call and a
    // context switch per flow for nothing.
    bool writer_idle_ = false;
    bool writer_collecting_ = false;

    std::mutex join_mutex_;  // close() from several threads: one joins, the others wait for it
    std::thread writer_;

    std::atomic<std::uint64_t> written_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> write_errors_{0};

    // Writer thread only.
    std::uint64_t drops_reported_ = 0;
    std::optional<std::chrono::steady_clock::time_point> last_drop_report_;
};

// Roughly the heap a queued flow holds; what queue_byte_capacity counts.
std::size_t approximate_size(const FlowRecord& record);

}  // namespace tlsgate::record
