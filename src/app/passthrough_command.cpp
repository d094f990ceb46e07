#include "app/passthrough_command.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <memory>

#include "app/control_socket.hpp"
#include "app/options.hpp"
#include "pki/ca.hpp"

namespace tlsgate::app {
namespace {

using Clock = policy::AutoPassthrough::Clock;

std::string utc(Clock::time_point when) {
    return pki::format_time_utc(Clock::to_time_t(when));
}

struct PassthroughFlags {
    std::string data_dir;
    std::string format = "table";
    std::string host;
};

std::filesystem::path control_path(const PassthroughFlags& flags) {
    const std::filesystem::path dir =
        flags.data_dir.empty() ? default_data_dir() : std::filesystem::path(flags.data_dir);
    return dir / kControlSocketFile;
}

int print_list(const nlohmann::json& answer, const std::string& format) {
    if (format == "json") {
        std::printf("%s\n", answer.dump(2).c_str());
        return 0;
    }
    if (!answer.value("enabled", false)) {
        std::printf("auto passthrough is off (set [auto_passthrough] enabled = true)\n");
        return 0;
    }
    const auto& entries = answer["entries"];
    std::printf("auto passthrough: %d refusals within %d s exempt a host for %d s; %zu entries\n",
                answer.value("failures", 0), answer.value("window", 0), answer.value("duration", 0),
                entries.size());
    if (entries.empty()) {
        return 0;
    }
    std::printf("%-40s %-10s %-21s %s\n", "HOST", "REFUSALS", "FIRST REFUSAL",
                "PASSED THROUGH UNTIL");
    for (const auto& entry : entries) {
        const std::string until = entry["passthrough_until"].is_null()
                                      ? "(learning)"
                                      : entry["passthrough_until"].get<std::string>();
        std::printf("%-40s %-10d %-21s %s\n", entry.value("host", "").c_str(),
                    entry.value("rejections", 0), entry.value("first_rejection", "").c_str(),
                    until.c_str());
    }
    return 0;
}

int request(const PassthroughFlags& flags, const std::string& command, bool list) {
    auto answer = control_request(control_path(flags), command);
    if (!answer) {
        std::fprintf(stderr, "tlsgate: %s\n", answer.error().c_str());
        return 1;
    }
    const auto parsed = nlohmann::json::parse(*answer, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
        std::fprintf(stderr, "tlsgate: unexpected answer from the gateway: %s\n",
                     answer->substr(0, 200).c_str());
        return 1;
    }
    if (parsed.contains("error")) {
        std::fprintf(stderr, "tlsgate: %s\n", parsed["error"].get<std::string>().c_str());
        return 1;
    }
    if (list) {
        return print_list(parsed, flags.format);
    }
    std::printf("cleared %d entr%s\n", parsed.value("cleared", 0),
                parsed.value("cleared", 0) == 1 ? "y" : "ies");
    return 0;
}

}  // namespace

std::string answer_passthrough_command(std::string_view command, policy::AutoPassthrough* learned) {
    nlohmann::json answer = nlohmann::json::object();
    constexpr std::string_view kList = "passthrough list";
    constexpr std::string_view kClear = "passthrough clear";
    if (command == kList) {
        answer["enabled"] = learned != nullptr;
        answer["entries"] = nlohmann::json::array();
        if (learned != nullptr) {
            const auto& settings = learned->settings();
            answer["failures"] = settings.failures;
            answer["window"] = settings.window.count();
            answer["duration"] = settings.duration.count();
            for (const auto& entry : learned->entries()) {
                nlohmann::json item = {{"host", entry.host},
                                       {"rejections", entry.rejections},
                                       {"first_rejection", utc(entry.first_rejection)},
                                       {"passthrough_until", nullptr}};
                if (entry.passthrough_until != Clock::time_point{}) {
                    item["passthrough_until"] = utc(entry.passthrough_until);
                }
                answer["entries"].push_back(std::move(item));
            }
        }
    } else if (command.substr(0, kClear.size()) == kClear &&
               (command.size() == kClear.size() || command[kClear.size()] == ' ')) {
        std::string host(command.substr(std::min(command.size(), kClear.size() + 1)));
        answer["cleared"] = learned != nullptr ? learned->clear(host) : 0;
    } else {
        answer["error"] = "unknown command (passthrough list, passthrough clear [HOST])";
    }
    return answer.dump();
}

void add_passthrough_command(CLI::App& app, int& status) {
    auto flags = std::make_shared<PassthroughFlags>();
    auto* passthrough = app.add_subcommand(
        "passthrough", "Show or clear the hosts auto passthrough learned (running gateway)");
    passthrough->require_subcommand(1);
    auto* list = passthrough->add_subcommand("list", "Hosts passed through or being counted");
    list->add_option("--data-dir", flags->data_dir,
                     "The gateway's data directory (default: ~/.local/share/tlsgate)");
    list->add_option("--format", flags->format, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
    list->callback([flags, &status] { status = request(*flags, "passthrough list", true); });
    auto* clear = passthrough->add_subcommand("clear", "Forget one learned host, or all");
    clear->add_option("host", flags->host, "The host to forget (default: all)");
    clear->add_option("--data-dir", flags->data_dir,
                      "The gateway's data directory (default: ~/.local/share/tlsgate)");
    clear->callback([flags, &status] {
        const std::string command =
            flags->host.empty() ? "passthrough clear" : "passthrough clear " + flags->host;
        status = request(*flags, command, false);
    });
}

}  // namespace tlsgate::app
