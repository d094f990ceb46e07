#include "relay/record_outbox.hpp"

#include "record/flow_writer.hpp"

namespace tlsgate::relay {

void RecordOutbox::use_timer(asio::steady_timer* timer) {
    if (timer_ != nullptr && timer == nullptr) {
        timer_->cancel();
    }
    timer_ = timer;
    timer_armed_ = false;
}

void RecordOutbox::add(record::ConnectionRecord&& record) {
    if (connection_log_ == nullptr) {
        return;
    }
    connections_.push_back(std::move(record));
    added(connections_.size());
}

void RecordOutbox::add(record::FlowRecord&& flow) {
    if (flows_ == nullptr) {
        return;
    }
    flows_pending_.push_back(std::move(flow));
    added(flows_pending_.size());
}

void RecordOutbox::added(std::size_t pending) {
    if (pending >= kBatch) {
        flush();
        return;
    }
    if (timer_ == nullptr || timer_armed_) {
        return;
    }
    timer_armed_ = true;
    timer_->expires_after(kDelay);
    timer_->async_wait([this](const std::error_code& error) {
        if (error) {
            return;  // cancelled: use_timer(nullptr) disarmed it
        }
        timer_armed_ = false;
        flush();
    });
}

void RecordOutbox::flush() {
    if (!connections_.empty()) {
        connection_log_->submit(connections_);
    }
    if (!flows_pending_.empty()) {
        const std::size_t offered = flows_pending_.size();
        const std::size_t queued = flows_->submit(flows_pending_);
        counters_.flows_recorded.add(queued);
        counters_.flows_dropped.add(offered - queued);
    }
}

}  // namespace tlsgate::relay
