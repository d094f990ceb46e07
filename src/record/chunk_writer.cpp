#include "record/chunk_writer.hpp"

#include "common/thread_name.hpp"

namespace tlsgate::record {

Result<std::unique_ptr<ChunkWriter>> ChunkWriter::open(const std::filesystem::path& path,
                                                       std::string what, std::string header,
                                                       std::size_t capacity_bytes, Reporter report,
                                                       int mode) {
    auto file = AppendFile::open(path, what, mode);
    if (!file) {
        return make_error(file.error());
    }
    if (!header.empty() && (*file)->empty() && !(*file)->write_all(header, report)) {
        return make_error("cannot write the " + what + " header to " + path.string());
    }
    return std::unique_ptr<ChunkWriter>(
        new ChunkWriter(std::move(*file), std::move(what), capacity_bytes, std::move(report)));
}

ChunkWriter::ChunkWriter(std::unique_ptr<AppendFile> file, std::string what, std::size_t capacity,
                         Reporter report)
    : file_(std::move(file)),
      what_(std::move(what)),
      capacity_(capacity),
      report_(std::move(report)) {
    writer_ = std::thread([this] {
        std::string name = "tg-" + what_;
        std::replace(name.begin(), name.end(), ' ', '-');
        name_this_thread(name);
        run();
    });
}

ChunkWriter::~ChunkWriter() {
    close();
}

bool ChunkWriter::submit(std::string chunk) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queued_bytes_ + chunk.size() > capacity_) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            const auto now = std::chrono::steady_clock::now();
            if (report_ && now - last_drop_report_ > std::chrono::seconds(10)) {
                last_drop_report_ = now;
                report_(what_ + ": writer queue full, dropping data (" +
                        std::to_string(dropped_.load()) + " chunks so far); traffic is unaffected");
            }
            return false;
        }
        queued_bytes_ += chunk.size();
        queue_.push_back(std::move(chunk));
    }
    wake_.notify_one();
    return true;
}

void ChunkWriter::close() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (writer_.joinable()) {
        writer_.join();
    }
}

void ChunkWriter::run() {
    std::deque<std::string> batch;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() && stopping_) {
                return;
            }
            batch.swap(queue_);
            queued_bytes_ = 0;
        }
        std::string text;
        for (const auto& chunk : batch) {
            text += chunk;
        }
        if (file_->write_all(text, report_)) {
            written_.fetch_add(text.size(), std::memory_order_relaxed);
        }
        batch.clear();
    }
}

}  // namespace tlsgate::record
