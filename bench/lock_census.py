#!/usr/bin/python3
"""Which locks do the gateway's threads share? Runs tlsgate with two workers under the
bench/lock_census shim (LD_PRELOAD), drives new intercepted connections and keep-alive requests
through both workers, stops it, and lists every pthread mutex and rwlock that two or more threads
took: how often, by which threads, and from where. A lock taken by two tg-worker threads is one
the hot path shares between workers.

    make lock-census          # builds the shim and runs this
    bench/lock_census.py [--no-flows] [--connections 400] [--requests 2000]
"""

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402


def symbolize(frame):
    """'tlsgate+0x1234' -> the function (addr2line); library names and symbols stay as they are."""
    name, _, offset = frame.partition("+0x")
    if not offset or not os.path.basename(harness.BIN) == name:
        return frame
    r = subprocess.run(["addr2line", "-f", "-C", "-e", harness.BIN, hex(int(offset, 16) - 1)],
                       capture_output=True, text=True)
    function = r.stdout.splitlines()[0] if r.stdout else frame
    return function.split("(")[0]


def drive(gw, w, connections, requests, clients=4):
    url = f"https://origin.test:{w.port('valid')}/1k.bin"
    base = [harness.CURL, "-sS", "--http1.1", "--proxy", gw.proxy, "--cacert", gw.ca_path,
            "-o", "/dev/null", "-w", "%{http_code}\\n"]
    procs = []
    for _ in range(clients):
        # one new intercepted connection per request
        args = list(base) + ["-H", "Connection: close"]
        for i in range(connections // clients):
            args += [f"{url}?c{i}", "-o", "/dev/null"]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        # keep-alive requests on one connection
        args = list(base)
        for i in range(requests // clients):
            args += [f"{url}?k{i}", "-o", "/dev/null"]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    ok = 0
    for p in procs:
        out, err = p.communicate(timeout=600)
        ok += out.split().count(b"200")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-flows", action="store_true")
    parser.add_argument("--width", type=int, default=200, help="characters of stack per lock")
    parser.add_argument("--shim", default=os.path.join(os.path.dirname(harness.BIN),
                                                       "lock_census.so"))
    options = parser.parse_args()

    w = harness.world()
    out = tempfile.NamedTemporaryFile(prefix="lock-census-", suffix=".tsv", delete=False).name
    gw = harness.Gateway(w, workers=2, extra_args=["--no-flows"] if options.no_flows else [])
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "LOCK_CENSUS_OUT")}
    os.environ.update(LD_PRELOAD=options.shim, LOCK_CENSUS_OUT=out)
    try:
        gw.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        ok = drive(gw, w, options.connections, options.requests)
    finally:
        gw.cleanup()
    with open(out) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    os.unlink(out)

    print(f"lock census: {ok} requests through 2 workers ({options.connections} new connections, "
          f"{options.requests} keep-alive), recording {'off' if options.no_flows else 'on'}")
    print("locks taken by two or more threads (count, kind, threads, first taken in):")
    shared_by_workers = 0
    for count, kind, threads, frames in sorted(rows, key=lambda r: -int(r[0])):
        workers = sum(1 for t in threads.split(",") if t.startswith("tg-worker"))
        mark = "WORKERS" if workers >= 2 else "       "
        shared_by_workers += workers >= 2
        where = " < ".join(symbolize(f) for f in frames.split("<") if f)[:options.width]
        print(f"{mark} {int(count):9d} {kind:6} {threads:40} {where}")
    print(f"{shared_by_workers} lock(s) taken by more than one worker")


if __name__ == "__main__":
    main()
