#include "record/jsonl_flow_sink.hpp"

#include "record/flow_json.hpp"

namespace tlsgate::record {

Result<std::unique_ptr<FlowSink>> JsonLinesFlowSink::open(const std::filesystem::path& path) {
    auto file = AppendFile::open(path, "flow log");
    if (!file) {
        return make_error(file.error());
    }
    return std::unique_ptr<FlowSink>(new JsonLinesFlowSink(std::move(*file)));
}

JsonLinesFlowSink::JsonLinesFlowSink(std::unique_ptr<AppendFile> file)
    : file_(std::move(file)), name_("jsonl " + file_->path().string()) {}

Result<void> JsonLinesFlowSink::write(std::span<const FlowRecord> batch) {
    std::string text;
    for (const auto& flow : batch) {
        text += flow_to_json_line(flow);
    }
    // The writer reports sink failures itself (rate-limited), so no reporter here.
    if (!file_->write_all(text, nullptr)) {
        return make_error("write failed on " + file_->path().string());
    }
    return {};
}

}  // namespace tlsgate::record
