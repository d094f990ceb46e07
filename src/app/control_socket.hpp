#pragma once
// A Unix socket (mode 0600, in the data directory) through which `tlsgate passthrough` talks to
// the running gateway: one command line in, one answer out, then close. Served by a thread of
// its own, off the workers' loops: it is for the operator, a few requests a day.
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.hpp"

namespace tlsgate::app {

class ControlSocket {
public:
    using Handler = std::function<std::string(std::string_view command)>;

    // Binds `path` (replacing a stale socket file left by a crash) and starts serving.
    static Result<std::unique_ptr<ControlSocket>> open(const std::filesystem::path& path,
                                                       Handler handler);
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

private:
    ControlSocket(std::filesystem::path path, int listener, int wakeup, Handler handler);
    void serve();

    std::filesystem::path path_;
    int listener_;
    int wakeup_;  // an eventfd that ends serve()
    Handler handler_;
    std::thread thread_;
};

// The client side: sends `command`, returns the answer. `timeout_ms` bounds each step.
Result<std::string> control_request(const std::filesystem::path& path, std::string_view command,
                                    int timeout_ms = 5000);

inline constexpr const char* kControlSocketFile = "control.sock";

}  // namespace tlsgate::app
