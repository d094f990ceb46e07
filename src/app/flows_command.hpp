#pragma once

namespace CLI {
class App;
}

namespace tlsgate::app {

// Registers `tlsgate flows [--db FILE] [--host PATTERN] [--status N|4xx] [--since TIME]
// [--grep TEXT] [--limit N] [--format table|json|har]`: queries recorded HTTP flows. Exit status
// 0 on success (also when nothing matched), 1 when the store cannot be read or an argument is bad.
void add_flows_command(CLI::App& app, int& status);

}  // namespace tlsgate::app
