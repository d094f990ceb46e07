#pragma once

namespace CLI {
class App;
}

namespace tlsgate::app {

// Registers `tlsgate probe [HOST[:PORT]...] [--list FILE] [--connect IP:PORT] [--proxy URL]
// [--control NAME] [--trust FILE] [--no-system-trust] [--known-roots FILE] [--ca-dir DIR]
// [--timeout S] [--concurrency N] [--format table|json]` (docs/probe.md). When it runs, its
// exit status lands in `status`: 0 nothing intercepted, 1 something intercepted, 2 usage or setup
// error.
void add_probe_command(CLI::App& app, int& status);

}  // namespace tlsgate::app
