#pragma once
#include <functional>

#include "app/options.hpp"

namespace tlsgate::app {

// Runs the gateway until SIGINT/SIGTERM: creates the CA on first start, binds every listener on
// every worker, then on a signal stops accepting, lets open connections finish for the grace
// period and returns 0. Returns non-zero (after logging why) when it cannot start. On SIGHUP it
// calls `read_options` (the config file and flags again) and applies the new policy and timeouts.
int run_gateway(RunOptions options, std::function<Result<RunOptions>()> read_options = {});

// What `tlsgate check-config` and a reload validate: the config parses and the policy compiles.
Result<std::string> check_options(RunOptions options);

}  // namespace tlsgate::app
