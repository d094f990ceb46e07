#include "record/append_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tlsgate::record {

Result<std::unique_ptr<AppendFile>> AppendFile::open(const std::filesystem::path& path,
                                                     std::string what, int mode) {
    std::error_code error;
    if (path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path(), error);
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode);
    if (fd < 0) {
        return make_error("cannot open " + what + " " + path.string() + ": " +
                          std::strerror(errno));
    }
    return std::unique_ptr<AppendFile>(new AppendFile(fd, path, std::move(what)));
}

AppendFile::~AppendFile() {
    ::close(fd_);
}

bool AppendFile::empty() const {
    struct stat status {};
    return ::fstat(fd_, &status) == 0 && status.st_size == 0;
}

bool AppendFile::write_all(std::string_view bytes, const Reporter& report) {
    std::size_t offset = 0;
    while (offset < bytes.size()) {
        const ssize_t n = ::write(fd_, bytes.data() + offset, bytes.size() - offset);
        if (n > 0) {
            offset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        const int write_error = errno;
        // A disk that filled up mid-write keeps a piece of a line (or of a pcap record); the
        // next write would continue it with another record and leave neither readable.
        struct stat status {};
        if (offset > 0 && ::fstat(fd_, &status) == 0 &&
            status.st_size >= static_cast<off_t>(offset)) {
            static_cast<void>(::ftruncate(fd_, status.st_size - static_cast<off_t>(offset)));
        }
        write_errors_.fetch_add(1, std::memory_order_relaxed);
        const auto now = std::chrono::steady_clock::now();
        // A full disk fails every write: say so at most every 10 s.
        if (report && now - last_error_report_ > std::chrono::seconds(10)) {
            last_error_report_ = now;
            report(what_ + " " + path_.string() + ": write failed (" + std::strerror(write_error) +
                   "); records are being lost, traffic is not");
        }
        return false;
    }
    return true;
}

}  // namespace tlsgate::record
