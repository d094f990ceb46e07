#pragma once
// The probe's output: a stable JSON document (schema in docs/probe.md) or a table for people, and
// the exit status (0 nothing intercepted, 1 something intercepted; 2 is the command's, for usage
// and setup errors).
#include <optional>
#include <string>
#include <vector>

#include "probe/classify.hpp"

namespace tlsgate::probe {

// How the run was set up, echoed in the JSON so a saved result explains itself.
struct RunInfo {
    std::optional<std::string> connect;  // "127.0.0.1:9443"
    std::optional<std::string> proxy;    // "http://127.0.0.1:8080"
    double timeout_seconds = 10;
    int concurrency = 32;
    bool system_trust = true;
    std::vector<std::string> trust_files;
    std::vector<std::string> known_root_files;
    std::string local_ca;  // the local tlsgate CA certificate recognised, empty when none
};

struct Report {
    RunInfo run;
    std::optional<ProbeResult> control;
    std::vector<ProbeResult> results;
};

inline constexpr int kSchemaVersion = 1;

int exit_status(const Report& report);
std::string render_json(const Report& report);
std::string render_table(const Report& report);

}  // namespace tlsgate::probe
