#include "portal/platform.hpp"

#include <algorithm>
#include <cctype>
#include <initializer_list>

namespace tlsgate::portal {

namespace {

bool contains_ignoring_case(std::string_view haystack, std::string_view needle) {
    const auto found = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                                   [](char a, char b) {
                                       return std::tolower(static_cast<unsigned char>(a)) ==
                                              std::tolower(static_cast<unsigned char>(b));
                                   });
    return found != haystack.end();
}

bool contains_any(std::string_view haystack, std::initializer_list<std::string_view> needles) {
    return std::any_of(needles.begin(), needles.end(), [&](std::string_view needle) {
        return contains_ignoring_case(haystack, needle);
    });
}

}  // namespace

Platform detect_platform(std::string_view user_agent) {
    // Order matters: ChromeOS and Android both run a Linux kernel and may say so, and every iOS
    // browser claims to be "like Mac OS X".
    if (contains_any(user_agent, {"CrOS"})) {
        return Platform::chromeos;
    }
    if (contains_any(user_agent, {"Android"})) {
        return Platform::android;
    }
    if (contains_any(user_agent, {"iPhone", "iPad", "iPod"})) {
        return Platform::ios;
    }
    if (contains_any(user_agent, {"Windows"})) {
        return Platform::windows;
    }
    if (contains_any(user_agent, {"Macintosh", "Mac OS X"})) {
        return Platform::macos;
    }
    if (contains_any(user_agent, {"Linux", "X11"})) {
        // Only a few browsers name the distribution (Firefox as packaged by Ubuntu and Fedora
        // does); Chrome says just "X11; Linux x86_64".
        if (contains_any(user_agent, {"Ubuntu", "Debian", "Mint", "Raspbian", "Kali", "Pop!_OS"})) {
            return Platform::linux_debian;
        }
        if (contains_any(user_agent,
                         {"Fedora", "Red Hat", "RHEL", "CentOS", "Rocky", "AlmaLinux"})) {
            return Platform::linux_fedora;
        }
        return Platform::linux_other;
    }
    return Platform::unknown;
}

bool is_firefox(std::string_view user_agent) {
    return contains_ignoring_case(user_agent, "Firefox/");
}

bool is_chromium(std::string_view user_agent) {
    return contains_any(user_agent, {"Chrome/", "Chromium/"});
}

std::string_view platform_id(Platform platform) {
    switch (platform) {
        case Platform::windows:
            return "windows";
        case Platform::macos:
            return "macos";
        case Platform::ios:
            return "ios";
        case Platform::android:
            return "android";
        case Platform::linux_debian:
            return "linux-debian";
        case Platform::linux_fedora:
            return "linux-fedora";
        case Platform::linux_other:
            return "linux-other";
        case Platform::chromeos:
            return "chromeos";
        case Platform::unknown:
            break;
    }
    return "other";
}

std::string_view platform_name(Platform platform) {
    switch (platform) {
        case Platform::windows:
            return "Windows";
        case Platform::macos:
            return "macOS";
        case Platform::ios:
            return "iPhone and iPad";
        case Platform::android:
            return "Android";
        case Platform::linux_debian:
            return "Debian, Ubuntu and derivatives";
        case Platform::linux_fedora:
            return "Fedora, RHEL and derivatives";
        case Platform::linux_other:
            return "Other Linux distributions";
        case Platform::chromeos:
            return "ChromeOS";
        case Platform::unknown:
            break;
    }
    return "Other systems and tools";
}

}  // namespace tlsgate::portal
