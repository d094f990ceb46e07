#pragma once
// Which install instructions to show first: the visitor's operating system and browser family,
// guessed from the User-Agent. A guess only decides the order of the portal page's sections (all
// of them are always on the page), so a wrong or forged User-Agent costs the visitor a scroll,
// never a wrong certificate.
#include <array>
#include <string_view>

namespace tlsgate::portal {

enum class Platform {
    windows,
    macos,
    ios,  // iPhone, iPod and iPad (except iPadOS Safari, which claims to be a Mac)
    android,
    linux_debian,  // Debian, Ubuntu and their derivatives (update-ca-certificates)
    linux_fedora,  // Fedora, RHEL and their derivatives (update-ca-trust)
    linux_other,
    chromeos,
    unknown,  // no browser we recognise: curl, scripts, other systems
};

// Every value, in the order the portal lists the sections when none is detected.
inline constexpr std::array kAllPlatforms = {
    Platform::windows,     Platform::macos,        Platform::ios,
    Platform::android,     Platform::linux_debian, Platform::linux_fedora,
    Platform::linux_other, Platform::chromeos,     Platform::unknown,
};

// Pure string matching, no allocation; any bytes are accepted.
Platform detect_platform(std::string_view user_agent);

// Desktop or Android Firefox (and other Gecko browsers that say "Firefox/"), which keep their own
// certificate store instead of the system's. Firefox on iOS ("FxiOS") is WebKit with the system
// store, so it does not count.
bool is_firefox(std::string_view user_agent);

// Chrome, Chromium and the browsers built on them (Edge, Opera, Brave, Vivaldi all say
// "Chrome/"): on Linux they read their own NSS database rather than the system store.
bool is_chromium(std::string_view user_agent);

// Stable lower-case identifier for HTML ids and URLs: "windows", "linux-debian", "other", ...
std::string_view platform_id(Platform platform);
// What a person calls it: "Windows", "Debian, Ubuntu and derivatives", ...
std::string_view platform_name(Platform platform);

}  // namespace tlsgate::portal
