#pragma once
// Starts and stops what records intercepted traffic beyond the connection log: the flow writer
// (SQLite and/or JSON lines), the pcap file and the key log.
#include <memory>

#include "app/options.hpp"
#include "record/chunk_writer.hpp"
#include "record/flow_writer.hpp"
#include "relay/worker_context.hpp"
#include "tls/key_log.hpp"

namespace tlsgate::app {

class Recorders final : public tls::KeyLogSink {
public:
    static Result<std::unique_ptr<Recorders>> start(const RecordOptions& options);
    ~Recorders() override;

    // What the workers see (null writers for what is off).
    relay::Recording recording() const;
    tls::KeyLogSink* key_log_sink() { return key_log_ ? this : nullptr; }
    void write_line(std::string_view line) override;
    // Flushes and stops every writer; the counters stay readable.
    void close();

    const record::FlowWriter* flows() const { return flows_.get(); }
    const record::ChunkWriter* pcap() const { return pcap_.get(); }
    std::string describe() const;  // for the start banner

private:
    RecordOptions options_;
    std::unique_ptr<record::FlowWriter> flows_;
    std::unique_ptr<record::ChunkWriter> pcap_;
    std::unique_ptr<record::ChunkWriter> key_log_;
};

}  // namespace tlsgate::app
