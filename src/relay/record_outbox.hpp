#pragma once
// Where a worker leaves its connection and flow records. The writers' queues are shared by every
// worker, so a worker collects its records for a moment and hands them over in one batch: one
// lock and at most one writer wake-up per batch, not per connection or exchange. That keeps the
// hot path free of locks shared between workers (bench/lock_census.py shows it) and saves a
// futex wake per connection. Touched only by its worker's thread.
#include <asio/steady_timer.hpp>

#include <chrono>
#include <vector>

#include "record/connection_log.hpp"
#include "record/flow_record.hpp"
#include "relay/counters.hpp"

namespace tlsgate::record {
class FlowWriter;
}

namespace tlsgate::relay {

class RecordOutbox {
public:
    // A batch goes when it reaches kBatch records or kDelay after its first one.
    static constexpr std::size_t kBatch = 64;
    static constexpr std::chrono::milliseconds kDelay{20};

    RecordOutbox(record::ConnectionLog* connection_log, record::FlowWriter* flows,
                 Counters& counters)
        : connection_log_(connection_log), flows_(flows), counters_(counters) {}
    // Hands over what is left: records from connections closed while the worker shut down.
    ~RecordOutbox() { flush(); }
    RecordOutbox(const RecordOutbox&) = delete;
    RecordOutbox& operator=(const RecordOutbox&) = delete;

    // The worker's timer that sends a batch kDelay after its first record; nullptr once the
    // worker's event loop is gone (records then wait for flush()).
    void use_timer(asio::steady_timer* timer);

    void add(record::ConnectionRecord&& record);
    void add(record::FlowRecord&& flow);
    void flush();

private:
    void added(std::size_t pending);

    record::ConnectionLog* connection_log_;
    record::FlowWriter* flows_;
    Counters& counters_;
    asio::steady_timer* timer_ = nullptr;
    bool timer_armed_ = false;
    std::vector<record::ConnectionRecord> connections_;
    std::vector<record::FlowRecord> flows_pending_;
};

}  // namespace tlsgate::relay
