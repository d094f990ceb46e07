#pragma once

namespace tlsgate::app {

// The command line: `tlsgate ca init|show|export|import`, `tlsgate run`, `tlsgate version`.
int run_cli(int argc, char** argv);

}  // namespace tlsgate::app
