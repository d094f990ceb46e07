#pragma once
// Flow records as JSON lines with Zeek http.log field names (flow_json.hpp), appended to a file.
#include <filesystem>
#include <memory>
#include <string>

#include "record/append_file.hpp"
#include "record/flow_writer.hpp"

namespace tlsgate::record {

class JsonLinesFlowSink final : public FlowSink {
public:
    static Result<std::unique_ptr<FlowSink>> open(const std::filesystem::path& path);

    Result<void> write(std::span<const FlowRecord> batch) override;
    std::string_view name() const override { return name_; }

private:
    explicit JsonLinesFlowSink(std::unique_ptr<AppendFile> file);

    std::unique_ptr<AppendFile> file_;
    std::string name_;
};

}  // namespace tlsgate::record
