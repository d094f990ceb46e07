#pragma once
// `tlsgate passthrough list|clear`: the hosts auto passthrough learned, asked of the running
// gateway through its control socket; and the gateway's side of those commands.
#include <string>
#include <string_view>

#include "policy/auto_passthrough.hpp"

namespace CLI {
class App;
}

namespace tlsgate::app {

// Registers `tlsgate passthrough list [--data-dir DIR] [--format table|json]` and
// `tlsgate passthrough clear [HOST] [--data-dir DIR]`. Exit status 0 on success, 1 when the
// gateway cannot be reached.
void add_passthrough_command(CLI::App& app, int& status);

// The gateway's answer to a control command ("passthrough list", "passthrough clear [HOST]"):
// one JSON object. `learned` is null when auto passthrough is off.
std::string answer_passthrough_command(std::string_view command, policy::AutoPassthrough* learned);

}  // namespace tlsgate::app
