#pragma once
// A file the record stage appends to from its own writer thread. A failed write (a full disk) is
// counted and reported at most every 10 s, never thrown: records are lost, traffic is not.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace tlsgate::record {

using Reporter = std::function<void(const std::string& message)>;

class AppendFile {
public:
    // Opens (appends to) `path`, creating its directory. `what` names it in reports.
    static Result<std::unique_ptr<AppendFile>> open(const std::filesystem::path& path,
                                                    std::string what, int mode = 0640);
    ~AppendFile();
    AppendFile(const AppendFile&) = delete;
    AppendFile& operator=(const AppendFile&) = delete;

    bool empty() const;  // nothing written yet (a new file needs its header)
    // Writes all of `bytes` or none of them (what a failed write left of them is cut off
    // again, so a record never runs into the next one), and reports why not; true on success.
    bool write_all(std::string_view bytes, const Reporter& report);
    std::uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }
    const std::filesystem::path& path() const { return path_; }

private:
    AppendFile(int fd, std::filesystem::path path, std::string what)
        : fd_(fd), path_(std::move(path)), what_(std::move(what)) {}

    int fd_;
    std::filesystem::path path_;
    std::string what_;
    std::atomic<std::uint64_t> write_errors_{0};
    std::chrono::steady_clock::time_point last_error_report_{};
};

}  // namespace tlsgate::record
