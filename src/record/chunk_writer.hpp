#pragma once
// Appends opaque byte chunks (pcap records, key log lines) to a file on its own thread. Workers
// hand chunks over through a queue bounded in bytes and never wait for the disk: a chunk that
// does not fit is dropped and counted, and the drop is reported at most every 10 s.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.hpp"
#include "record/append_file.hpp"

namespace tlsgate::record {

class ChunkWriter {
public:
    // `header` is written first when the file is new or empty (a pcap file header).
    static Result<std::unique_ptr<ChunkWriter>> open(const std::filesystem::path& path,
                                                     std::string what, std::string header,
                                                     std::size_t capacity_bytes, Reporter report,
                                                     int mode = 0640);
    ~ChunkWriter();

    bool submit(std::string chunk);
    void close();

    std::uint64_t written_bytes() const { return written_.load(std::memory_order_relaxed); }
    std::uint64_t dropped_chunks() const { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t write_errors() const { return file_->write_errors(); }

private:
    ChunkWriter(std::unique_ptr<AppendFile> file, std::string what, std::size_t capacity,
                Reporter report);
    void run();

    std::unique_ptr<AppendFile> file_;
    std::string what_;
    std::size_t capacity_;
    Reporter report_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::string> queue_;
    std::size_t queued_bytes_ = 0;
    bool stopping_ = false;
    std::thread writer_;
    std::atomic<std::uint64_t> written_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::chrono::steady_clock::time_point last_drop_report_{};
};

}  // namespace tlsgate::record
