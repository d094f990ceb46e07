#include "app/privileges.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tlsgate::app {
namespace {

std::string why() {
    return std::strerror(errno);
}

void give_to(const std::filesystem::path& path, uid_t uid, gid_t gid) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) {
        return;
    }
    ::lchown(path.c_str(), uid, gid);
    if (std::filesystem::is_directory(path, error)) {
        for (const auto& entry : std::filesystem::recursive_directory_iterator(
                 path, std::filesystem::directory_options::skip_permission_denied, error)) {
            ::lchown(entry.path().c_str(), uid, gid);
        }
    }
}

}  // namespace

Result<void> drop_privileges(const PrivilegeDrop& drop) {
    if (drop.user.empty()) {
        return {};
    }
    if (::geteuid() != 0) {
        return make_error("user = \"" + drop.user + "\" needs tlsgate to start as root");
    }
    errno = 0;
    const passwd* account = ::getpwnam(drop.user.c_str());
    if (account == nullptr) {
        return make_error("user '" + drop.user + "' does not exist");
    }
    const uid_t uid = account->pw_uid;
    const gid_t gid = account->pw_gid;
    for (const auto& path : drop.writable) {
        give_to(path, uid, gid);
    }
    if (drop.keep_net_admin && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
        return make_error("prctl(PR_SET_KEEPCAPS): " + why());
    }
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
        return make_error("cannot switch to user '" + drop.user + "': " + why());
    }
    if (::setuid(0) == 0) {
        return make_error("still able to regain root after switching to '" + drop.user + "'");
    }
    if (drop.keep_net_admin) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        const unsigned kept = (1u << CAP_NET_ADMIN) | (1u << CAP_NET_RAW);
        data[0].effective = kept;
        data[0].permitted = kept;
        if (::syscall(SYS_capset, &header, data) != 0) {
            return make_error("capset: " + why());
        }
        ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    return {};
}

}  // namespace tlsgate::app
