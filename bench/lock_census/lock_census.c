// LD_PRELOAD shim for bench/lock_census.py: notes which threads take each pthread mutex and
// rwlock, and at exit lists the locks that more than one thread took, with the code that first
// took them. It answers "does anything in the hot path take a lock shared between workers?" for
// our code and for the libraries (OpenSSL, SQLite, libstdc++) alike. Lock-free itself: a fixed
// open-addressing table of lock addresses with atomic slots; threads get a bit each.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define SLOTS 65536
#define MAX_THREADS 64
#define FRAMES 24

struct slot {
    _Atomic(uintptr_t) lock;
    _Atomic(uint64_t) threads;  // bit per thread index
    _Atomic(uint64_t) count;
    _Atomic(int) kind;           // 1 mutex, 2 rdlock, 3 wrlock
    void* frames[FRAMES];
    _Atomic(int) frames_ready;
};

static struct slot table[SLOTS];
static char thread_names[MAX_THREADS][16];
static _Atomic(int) next_thread;
static __thread int thread_index = -1;
static __thread int inside;  // backtrace() may take locks: do not record those

static int (*real_mutex_lock)(pthread_mutex_t*);
static int (*real_rdlock)(pthread_rwlock_t*);
static int (*real_wrlock)(pthread_rwlock_t*);

static int my_thread(void) {
    if (thread_index < 0) {
        thread_index = atomic_fetch_add(&next_thread, 1);
        if (thread_index < MAX_THREADS) {
            prctl(PR_GET_NAME, thread_names[thread_index], 0, 0, 0);
        }
    }
    return thread_index;
}

static void note(const void* lock, int kind) {
    if (inside) {
        return;
    }
    inside = 1;
    const int me = my_thread();
    uintptr_t key = (uintptr_t)lock;
    size_t at = (key >> 3) * 11400714819323198485ull % SLOTS;
    for (size_t probe = 0; probe < SLOTS; ++probe, at = (at + 1) % SLOTS) {
        uintptr_t expected = 0;
        struct slot* s = &table[at];
        if (atomic_load(&s->lock) == key ||
            atomic_compare_exchange_strong(&s->lock, &expected, key) || expected == key) {
            atomic_fetch_add(&s->count, 1);
            // The stack of the first worker to take it: what the hot path did to get here (the
            // main thread takes most of these first, while starting up).
            int unclaimed = 0;
            if (me < MAX_THREADS && strncmp(thread_names[me], "tg-worker", 9) == 0 &&
                atomic_load(&s->frames_ready) == 0 &&
                atomic_compare_exchange_strong(&s->frames_ready, &unclaimed, 2)) {
                atomic_store(&s->kind, kind);
                backtrace(s->frames, FRAMES);
                atomic_store(&s->frames_ready, 1);
            }
            if (me < MAX_THREADS) {
                atomic_fetch_or(&s->threads, 1ull << me);
            }
            break;
        }
    }
    inside = 0;
}

int pthread_mutex_lock(pthread_mutex_t* mutex) {
    if (!real_mutex_lock) {
        real_mutex_lock = dlsym(RTLD_NEXT, "pthread_mutex_lock");
    }
    note(mutex, 1);
    return real_mutex_lock(mutex);
}

int pthread_rwlock_rdlock(pthread_rwlock_t* lock) {
    if (!real_rdlock) {
        real_rdlock = dlsym(RTLD_NEXT, "pthread_rwlock_rdlock");
    }
    note(lock, 2);
    return real_rdlock(lock);
}

int pthread_rwlock_wrlock(pthread_rwlock_t* lock) {
    if (!real_wrlock) {
        real_wrlock = dlsym(RTLD_NEXT, "pthread_rwlock_wrlock");
    }
    note(lock, 3);
    return real_wrlock(lock);
}

// One line per lock taken by two or more threads: count, kind, thread names, first taker's stack.
__attribute__((destructor)) static void report(void) {
    inside = 1;
    const char* path = getenv("LOCK_CENSUS_OUT");
    FILE* out = path ? fopen(path, "w") : stderr;
    if (!out) {
        return;
    }
    static const char* kinds[] = {"?", "mutex", "rdlock", "wrlock"};
    for (size_t i = 0; i < SLOTS; ++i) {
        struct slot* s = &table[i];
        const uint64_t threads = atomic_load(&s->threads);
        if (!s->lock || __builtin_popcountll(threads) < 2) {
            continue;
        }
        fprintf(out, "%llu\t%s\t", (unsigned long long)atomic_load(&s->count),
                kinds[atomic_load(&s->kind) & 3]);
        const char* separator = "";
        for (int t = 0; t < MAX_THREADS; ++t) {
            if (threads & (1ull << t)) {
                fprintf(out, "%s%s", separator, thread_names[t][0] ? thread_names[t] : "?");
                separator = ",";
            }
        }
        fputc('\t', out);
        if (atomic_load(&s->frames_ready) == 1) {
            for (int f = 1; f < FRAMES; ++f) {
                Dl_info info;
                if (!s->frames[f] || !dladdr(s->frames[f], &info)) {
                    continue;
                }
                if (info.dli_sname) {
                    fprintf(out, "%s<", info.dli_sname);
                } else if (info.dli_fname) {
                    const char* base = strrchr(info.dli_fname, '/');
                    fprintf(out, "%s+%#lx<", base ? base + 1 : info.dli_fname,
                            (unsigned long)((char*)s->frames[f] - (char*)info.dli_fbase));
                }
            }
        }
        fputc('\n', out);
    }
    if (out != stderr) {
        fclose(out);
    }
}
