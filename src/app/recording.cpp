#include "app/recording.hpp"

#include <spdlog/spdlog.h>

#include "record/jsonl_flow_sink.hpp"
#include "record/pcap.hpp"

namespace tlsgate::app {
namespace {

void warn(const std::string& message) {
    spdlog::warn("{}", message);
}

constexpr std::size_t kChunkQueueBytes = 64 * 1024 * 1024;

}  // namespace

Result<std::unique_ptr<Recorders>> Recorders::start(const RecordOptions& options) {
    auto recorders = std::make_unique<Recorders>();
    recorders->options_ = options;
    std::vector<std::unique_ptr<record::FlowSink>> sinks;
    for (const auto& name : options.sinks) {
        auto sink = name == "sqlite" ? record::SqliteFlowSink::open(options.db)
                                     : record::JsonLinesFlowSink::open(options.jsonl);
        if (!sink) {
            return make_error("flow records: " + sink.error());
        }
        sinks.push_back(std::move(*sink));
    }
    if (!sinks.empty()) {
        record::FlowWriterOptions writer_options;
        writer_options.queue_capacity = options.queue_capacity;
        writer_options.slow_down_per_batch = std::chrono::milliseconds(options.writer_delay_ms);
        auto writer = record::FlowWriter::start(std::move(sinks), writer_options, warn);
        if (!writer) {
            return make_error("flow records: " + writer.error());
        }
        recorders->flows_ = std::move(*writer);
    }
    if (!options.pcap.empty()) {
        auto pcap = record::ChunkWriter::open(options.pcap, "pcap", record::pcap_file_header(),
                                              kChunkQueueBytes, warn, 0600);
        if (!pcap) {
            return make_error(pcap.error());
        }
        recorders->pcap_ = std::move(*pcap);
    }
    if (!options.key_log.empty()) {
        // Whoever reads this file reads the traffic: owner only.
        auto key_log =
            record::ChunkWriter::open(options.key_log, "key log", "", kChunkQueueBytes, warn, 0600);
        if (!key_log) {
            return make_error(key_log.error());
        }
        recorders->key_log_ = std::move(*key_log);
        spdlog::warn("key log {} is on: it holds the secrets to decrypt every connection",
                     options.key_log.string());
    }
    return recorders;
}

Recorders::~Recorders() {
    close();
}

relay::Recording Recorders::recording() const {
    relay::Recording recording;
    recording.flows = flows_.get();
    recording.pcap = pcap_.get();
    recording.dissector.capture_bodies = options_.capture_bodies;
    recording.dissector.body_capture_limit = options_.body_capture_limit;
    recording.dissector.redacted_headers = options_.redact_headers;
    recording.dissector.scheme = "https";
    recording.plain_dissector = recording.dissector;
    recording.plain_dissector.scheme = "http";
    return recording;
}

void Recorders::write_line(std::string_view line) {
    std::string text(line);
    text += '\n';
    key_log_->submit(std::move(text));
}

void Recorders::close() {
    if (flows_)
        flows_->close();
    if (pcap_)
        pcap_->close();
    if (key_log_)
        key_log_->close();
}

std::string Recorders::describe() const {
    std::string text;
    for (const auto& sink : options_.sinks) {
        text += (text.empty() ? "" : ", ") +
                (sink == "sqlite" ? options_.db.string() : options_.jsonl.string());
    }
    if (text.empty())
        text = "off";
    if (pcap_)
        text += "; pcap " + options_.pcap.string();
    if (key_log_)
        text += "; key log " + options_.key_log.string();
    return text;
}

}  // namespace tlsgate::app
