#include "record/flow_writer.hpp"

#include <algorithm>
#include <exception>
#include <system_error>

#include "common/thread_name.hpp"

namespace tlsgate::record {
namespace {

// A full disk fails every batch and a full queue drops every flow: one line per 10 s says so.
constexpr std::chrono::seconds kReportInterval{10};

std::size_t body_size(const inspect::BodySummary& body) {
    return body.sha256.size() + body.content_type.size() + body.content_encoding.size() +
           body.captured.size();
}

std::size_t headers_size(const std::vector<inspect::HeaderField>& headers) {
    std::size_t size = 0;
    for (const auto& header : headers) {
        size += sizeof(header) + header.name.size() + header.value.size();
    }
    return size;
}

}  // namespace

FlowSink::~FlowSink() = default;

SqliteFlowSink::SqliteFlowSink(FlowStore store)
    : store_(std::move(store)), name_("sqlite " + store_.path().string()) {}

Result<std::unique_ptr<FlowSink>> SqliteFlowSink::open(const std::filesystem::path& path) {
    auto store = FlowStore::open(path, OpenMode::read_write);
    if (!store) {
        return make_error(store.error());
    }
    return std::unique_ptr<FlowSink>(std::make_unique<SqliteFlowSink>(std::move(store).value()));
}

Result<void> SqliteFlowSink::write(std::span<const FlowRecord> batch) {
    return store_.insert(batch);
}

std::size_t approximate_size(const FlowRecord& record) {
    const auto& exchange = record.exchange;
    std::size_t size = sizeof(FlowRecord) + record.client_address.size() +
                       record.server_address.size() + record.sni.size() +
                       record.client_tls_version.size() + record.upstream_tls_version.size() +
                       record.alpn.size();
    size += exchange.protocol.size() + exchange.method.size() + exchange.scheme.size() +
            exchange.authority.size() + exchange.path.size() + exchange.reason.size() +
            exchange.error.size();
    size += exchange.informational.size() * sizeof(int);
    size += headers_size(exchange.request_headers) + headers_size(exchange.response_headers);
    size += body_size(exchange.request_body) + body_size(exchange.response_body);
    if (exchange.websocket) {
        constexpr std::size_t kMapNode = 48;
        size += sizeof(inspect::WebSocketSummary) + exchange.websocket->error.size() +
                kMapNode * (exchange.websocket->client_opcodes.size() +
                            exchange.websocket->server_opcodes.size());
    }
    return size;
}

Result<std::unique_ptr<FlowWriter>> FlowWriter::start(std::vector<std::unique_ptr<FlowSink>> sinks,
                                                      Options options, Reporter report) {
    if (sinks.empty()) {
        return make_error("flow writer: no flow sinks");
    }
    if (std::any_of(sinks.begin(), sinks.end(), [](const auto& sink) { return !sink; })) {
        return make_error("flow writer: a flow sink is missing");
    }
    if (options.queue_capacity == 0 || options.max_batch == 0 || options.queue_byte_capacity == 0) {
        return make_error("flow writer: queue capacity and batch size must be at least 1");
    }
    std::unique_ptr<FlowWriter> writer(
        new FlowWriter(std::move(sinks), options, std::move(report)));
    try {
        writer->writer_ = std::thread([raw = writer.get()] {
            name_this_thread("tg-flow-writer");
            raw->run();
        });
    } catch (const std::system_error& error) {
        return make_error(std::string("flow writer: cannot start the writer thread: ") +
                          error.what());
    }
    return writer;
}

FlowWriter::FlowWriter(std::vector<std::unique_ptr<FlowSink>> sinks, Options options,
                       Reporter report)
    : options_(options), report_(std::move(report)) {
    sinks_.reserve(sinks.size());
    for (auto& sink : sinks) {
        sinks_.push_back(SinkState{std::move(sink)});
    }
}

FlowWriter::~FlowWriter() {
    close();
}

void FlowWriter::Queue::push(FlowRecord&& record, std::size_t bytes) {
    if (size_ == slots_.size()) {
        std::vector<Slot> grown(std::max<std::size_t>(16, 2 * slots_.size()));
        for (std::size_t i = 0; i < size_; ++i) {
            grown[i] = std::move(slots_[(head_ + i) % slots_.size()]);
        }
        slots_ = std::move(grown);
        head_ = 0;
    }
    Slot& slot = slots_[(head_ + size_) % slots_.size()];
    slot.record = std::move(record);
    slot.bytes = bytes;
    ++size_;
}

std::size_t FlowWriter::Queue::move_front_to(std::size_t count, std::vector<FlowRecord>& out) {
    count = std::min(count, size_);
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
        Slot& slot = slots_[head_];
        out.push_back(std::move(slot.record));
        bytes += slot.bytes;
        head_ = (head_ + 1) % slots_.size();
    }
    size_ -= count;
    if (size_ == 0) {
        head_ = 0;
    }
    return bytes;
}

void FlowWriter::Queue::swap(Queue& other) noexcept {
    slots_.swap(other.slots_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
}

std::size_t FlowWriter::submit(std::vector<FlowRecord>& records) {
    std::size_t queued = 0;
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        for (FlowRecord& record : records) {
            const std::size_t size = approximate_size(record);
            if (stopping_ || queue_.size() >= options_.queue_capacity ||
                size > options_.queue_byte_capacity - queued_bytes_) {
                break;
            }
            queue_.push(std::move(record), size);
            queued_bytes_ += size;
            ++queued;
            wake = wake || (writer_idle_ && queue_.size() == 1) ||
                   (writer_collecting_ && queue_.size() == options_.max_batch);
        }
    }
    dropped_.fetch_add(records.size() - queued, std::memory_order_relaxed);
    records.clear();
    if (wake) {
        wake_.notify_one();
    }
    return queued;
}

bool FlowWriter::submit(FlowRecord&& record) {
    const std::size_t size = approximate_size(record);
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() >= options_.queue_capacity ||
            size > options_.queue_byte_capacity - queued_bytes_) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        queue_.push(std::move(record), size);
        queued_bytes_ += size;
        wake = (writer_idle_ && queue_.size() == 1) ||
               (writer_collecting_ && queue_.size() == options_.max_batch);
    }
    if (wake) {
        wake_.notify_one();
    }
    return true;
}

void FlowWriter::close() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    std::lock_guard join_lock(join_mutex_);
    if (writer_.joinable()) {
        writer_.join();
    }
}

void FlowWriter::run() {
    std::vector<FlowRecord> batch;
    batch.reserve(std::min<std::size_t>(options_.max_batch, 4096));
    // The writer's half of a double buffer: a batch that is the whole queue is taken by swapping
    // the queue with this (empty) one, so submit() never waits behind flows being moved.
    Queue taken;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            const auto has_work = [this] { return stopping_ || !queue_.empty(); };
            if (!has_work()) {
                writer_idle_ = true;
                if (dropped_.load(std::memory_order_relaxed) != drops_reported_) {
                    // Drops not yet reported: wake in time to report them even if no flow comes.
                    wake_.wait_for(lock, kReportInterval, has_work);
                } else {
                    wake_.wait(lock, has_work);
                }
                writer_idle_ = false;
            }
            if (stopping_ && queue_.empty()) {
                break;
            }
            if (!stopping_ && !queue_.empty() && queue_.size() < options_.max_batch) {
                writer_collecting_ = true;
                wake_.wait_for(lock, options_.max_batch_delay,
                               [this] { return stopping_ || queue_.size() >= options_.max_batch; });
                writer_collecting_ = false;
            }
            if (queue_.size() <= options_.max_batch) {
                queue_.swap(taken);
                queued_bytes_ = 0;
            } else {
                // A backlog: take one batch, the rest stays queued (and counted).
                queued_bytes_ -= queue_.move_front_to(options_.max_batch, batch);
            }
        }
        taken.move_front_to(taken.size(), batch);
        if (!batch.empty()) {
            write_batch(batch);
            batch.clear();
            if (options_.slow_down_per_batch.count() > 0) {
                std::this_thread::sleep_for(options_.slow_down_per_batch);
            }
        }
        report_drops(false);
    }
    report_drops(true);
    for (auto& state : sinks_) {
        report_sink_failure(state, true);
    }
}

void FlowWriter::write_batch(std::span<const FlowRecord> batch) {
    bool stored = false;
    for (auto& state : sinks_) {
        Result<void> written;
        // A sink is code we call on our thread: an exception must cost a batch, not the process.
        try {
            written = state.sink->write(batch);
        } catch (const std::exception& error) {
            written = make_error(std::string("exception: ") + error.what());
        } catch (...) {
            written = make_error("unknown exception");
        }
        if (written) {
            stored = true;
            continue;
        }
        write_errors_.fetch_add(1, std::memory_order_relaxed);
        ++state.failures_unreported;
        state.flows_lost_unreported += batch.size();
        state.last_error = written.error();
        report_sink_failure(state, false);
    }
    if (stored) {
        written_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
}

void FlowWriter::report_sink_failure(SinkState& state, bool final_report) {
    if (state.failures_unreported == 0) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!final_report && state.last_report && now - *state.last_report < kReportInterval) {
        return;
    }
    report("flow sink " + std::string(state.sink->name()) + ": write failed (" + state.last_error +
           "); " + std::to_string(state.failures_unreported) + " batch(es), " +
           std::to_string(state.flows_lost_unreported) +
           " flow(s) lost by this sink since the last report; traffic is not affected");
    state.failures_unreported = 0;
    state.flows_lost_unreported = 0;
    state.last_report = now;
}

void FlowWriter::report_drops(bool final_report) {
    const std::uint64_t dropped = dropped_.load(std::memory_order_relaxed);
    if (dropped == drops_reported_) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!final_report && last_drop_report_ && now - *last_drop_report_ < kReportInterval) {
        return;
    }
    report("flow writer: " + std::to_string(dropped - drops_reported_) +
           " flow(s) dropped since the last report because the queue was full (" +
           std::to_string(options_.queue_capacity) +
           " flows); the sinks are slower than the traffic, which is not affected");
    drops_reported_ = dropped;
    last_drop_report_ = now;
}

void FlowWriter::report(const std::string& message) noexcept {
    if (!report_) {
        return;
    }
    try {
        report_(message);
    } catch (...) {
        // A reporter that throws must not end the writer thread (std::terminate).
    }
}

}  // namespace tlsgate::record
