#pragma once

namespace CLI {
class App;
}

namespace tlsgate::app {

// Registers `tlsgate run` (options from embedded defaults, --config FILE, then flags; README).
// When it runs, the gateway's exit status lands in `status`.
void add_run_command(CLI::App& app, int& status);
// `tlsgate check-config --config FILE`: exit 0 when the config and its policy load.
void add_check_config_command(CLI::App& app, int& status);

}  // namespace tlsgate::app
