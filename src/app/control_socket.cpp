#include "app/control_socket.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/thread_name.hpp"

namespace tlsgate::app {
namespace {

constexpr std::size_t kMaxCommand = 4096;

Result<sockaddr_un> socket_address(const std::filesystem::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string text = path.string();
    if (text.size() >= sizeof(address.sun_path)) {
        return make_error("control socket path too long: " + text);
    }
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    return address;
}

bool wait_for(int fd, short events, int timeout_ms) {
    pollfd one{fd, events, 0};
    return ::poll(&one, 1, timeout_ms) == 1 && (one.revents & events) != 0;
}

// Reads until a newline, EOF or the limit; false on timeout or error.
bool read_line(int fd, std::string& line, int timeout_ms) {
    char buffer[512];
    while (line.find('\n') == std::string::npos && line.size() < kMaxCommand) {
        if (!wait_for(fd, POLLIN, timeout_ms)) {
            return false;
        }
        const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n < 0) {
            return false;
        }
        if (n == 0) {
            break;
        }
        line.append(buffer, static_cast<std::size_t>(n));
    }
    if (const auto end = line.find('\n'); end != std::string::npos) {
        line.resize(end);
    }
    return true;
}

bool write_all(int fd, std::string_view data, int timeout_ms) {
    while (!data.empty()) {
        if (!wait_for(fd, POLLOUT, timeout_ms)) {
            return false;
        }
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

Result<std::unique_ptr<ControlSocket>> ControlSocket::open(const std::filesystem::path& path,
                                                           Handler handler) {
    auto address = socket_address(path);
    if (!address) {
        return make_error(address.error());
    }
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) {
        return make_error("control socket: " + std::string(std::strerror(errno)));
    }
    std::error_code ignored;
    std::filesystem::remove(path, ignored);  // a socket file outlives a crashed gateway
    // 0600 from the start: no window in which another user could connect.
    const mode_t previous = ::umask(0177);
    const int bound =
        ::bind(listener, reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
    ::umask(previous);
    if (bound != 0 || ::listen(listener, 8) != 0) {
        const std::string why = std::strerror(errno);
        ::close(listener);
        return make_error("control socket " + path.string() + ": " + why);
    }
    const int wakeup = ::eventfd(0, EFD_CLOEXEC);
    if (wakeup < 0) {
        ::close(listener);
        return make_error("control socket: eventfd: " + std::string(std::strerror(errno)));
    }
    return std::unique_ptr<ControlSocket>(
        new ControlSocket(path, listener, wakeup, std::move(handler)));
}

ControlSocket::ControlSocket(std::filesystem::path path, int listener, int wakeup, Handler handler)
    : path_(std::move(path)), listener_(listener), wakeup_(wakeup), handler_(std::move(handler)) {
    thread_ = std::thread([this] {
        name_this_thread("tg-control");
        serve();
    });
}

ControlSocket::~ControlSocket() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wakeup_, &one, sizeof(one));
    thread_.join();
    ::close(listener_);
    ::close(wakeup_);
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
}

void ControlSocket::serve() {
    for (;;) {
        pollfd fds[2] = {{listener_, POLLIN, 0}, {wakeup_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (fds[1].revents != 0) {
            return;
        }
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) {
            continue;
        }
        std::string command;
        if (read_line(client, command, 2000)) {
            write_all(client, handler_(command), 2000);
        }
        ::close(client);
    }
}

Result<std::string> control_request(const std::filesystem::path& path, std::string_view command,
                                    int timeout_ms) {
    auto address = socket_address(path);
    if (!address) {
        return make_error(address.error());
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return make_error(std::strerror(errno));
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0) {
        const std::string why = std::strerror(errno);
        ::close(fd);
        return make_error("cannot reach the gateway at " + path.string() + ": " + why +
                          " (is it running with this data directory?)");
    }
    std::string line(command);
    line += '\n';
    std::string answer;
    bool ok = write_all(fd, line, timeout_ms);
    char buffer[4096];
    while (ok && wait_for(fd, POLLIN, timeout_ms)) {
        const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
            break;
        }
        answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (!ok) {
        return make_error("the gateway did not take the command");
    }
    return answer;
}

}  // namespace tlsgate::app
