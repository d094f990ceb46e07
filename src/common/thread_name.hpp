#pragma once
// Names the calling thread as `top -H`, perf and bench/lock_census.py show it ("tg-worker-0").
// Linux keeps at most 15 characters.
#include <pthread.h>

#include <string>

namespace tlsgate {

inline void name_this_thread(const std::string& name) {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace tlsgate
