#pragma once
#include "app/options.hpp"

namespace tlsgate::app {

// Runs the gateway until SIGINT/SIGTERM: creates the CA on first start, binds every listener on
// every worker, then on a signal stops accepting, lets open connections finish for the grace
// period and returns 0. Returns non-zero (after logging why) when it cannot start.
int run_gateway(RunOptions options);

}  // namespace tlsgate::app
