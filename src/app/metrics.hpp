#pragma once
// /metrics: the Prometheus text of the whole gateway, summed over the workers' counters (read
// with relaxed loads from the thread that serves the request; no worker waits for it).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "record/chunk_writer.hpp"
#include "record/connection_log.hpp"
#include "record/flow_writer.hpp"
#include "relay/worker_context.hpp"

namespace tlsgate::app {

struct MetricsSources {
    const std::vector<std::unique_ptr<relay::WorkerContext>>* workers = nullptr;
    const record::ConnectionLog* connection_log = nullptr;
    const record::FlowWriter* flows = nullptr;
    const record::ChunkWriter* pcap = nullptr;
    const std::atomic<std::uint64_t>* reloads_ok = nullptr;
    const std::atomic<std::uint64_t>* reloads_failed = nullptr;
};

std::string render_metrics(const MetricsSources& sources);

}  // namespace tlsgate::app
