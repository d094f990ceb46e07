#pragma once
// Writes one JSON line per connection on its own thread. Workers hand records over through a
// bounded queue and never wait for the disk: when the queue is full the record is dropped and
// counted. Write failures (a full disk) are counted and reported, never thrown at the data plane.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.hpp"
#include "record/append_file.hpp"
#include "record/connection_record.hpp"

namespace tlsgate::record {

std::string to_json_line(const ConnectionRecord& record);

class ConnectionLog {
public:
    // Opens (appends to) `path`, creating its directory. `report` receives problems to log.
    static Result<std::unique_ptr<ConnectionLog>> open(const std::filesystem::path& path,
                                                       std::size_t queue_capacity, Reporter report);
    ~ConnectionLog();

    // Never blocks on I/O; false (and counted) when the queue is full.
    bool submit(ConnectionRecord record);
    // Many at once, under one lock and with one wake-up of the writer: what fits is queued, in
    // order, the rest counted as dropped. Returns how many were queued; `records` is left empty.
    std::size_t submit(std::vector<ConnectionRecord>& records);
    // Writes everything queued so far and stops the writer thread.
    void close();

    std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }
    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t write_errors() const { return file_->write_errors(); }

private:
    ConnectionLog(std::unique_ptr<AppendFile> file, std::size_t capacity, Reporter report);
    void run();

    std::unique_ptr<AppendFile> file_;
    std::size_t capacity_;
    Reporter report_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<ConnectionRecord> queue_;
    bool stopping_ = false;
    std::thread writer_;
    std::atomic<std::uint64_t> written_{0};
    std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace tlsgate::record
