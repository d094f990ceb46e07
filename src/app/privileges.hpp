#pragma once
// Dropping root after the listeners are bound: the gateway then runs as an unprivileged user,
// keeping only the capabilities a transparent mode still needs at run time (TPROXY with
// spoof_source opens IP_TRANSPARENT upstream sockets: CAP_NET_ADMIN and CAP_NET_RAW).
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace tlsgate::app {

struct PrivilegeDrop {
    std::string user;
    bool keep_net_admin = false;
    // Files and directories the gateway writes after the drop (data dir, logs): given to the user.
    std::vector<std::filesystem::path> writable;
};

// Call before any worker thread starts (capabilities are per thread; threads started later
// inherit the reduced set). A no-op with an empty user; an error when not root.
Result<void> drop_privileges(const PrivilegeDrop& drop);

}  // namespace tlsgate::app
