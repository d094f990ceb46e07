#!/usr/bin/python3
"""What recording costs: the same keep-alive HTTPS workload through the gateway with flow recording
off (--no-flows) and on (HTTP dissection + SQLite flow records), in one run, alternating rounds.

Reports requests/s and the gateway's CPU time per request for each, and the ratios. Uses the
integration harness (nginx origin on loopback with the test PKI, curl as the client).

    make bench            # runs this after the micro benchmarks
    bench/recording_bench.py --requests 4000 --clients 4 --rounds 3
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def run_round(gw, url, requests, clients, size):
    per_client = requests // clients
    procs = []
    cpu_before = cpu_seconds(gw.proc.pid)
    started = time.monotonic()
    for _ in range(clients):
        args = [harness.CURL, "-sS", "--http1.1", "--proxy", gw.proxy, "--cacert", gw.ca_path,
                "-w", "%{http_code}\\n"]
        # one curl per client: every request on one kept-alive intercepted connection
        for i in range(per_client):
            args += [f"{url}?{i}", "-o", "/dev/null"]
        procs.append(harness.subprocess.Popen(args, stdout=harness.subprocess.PIPE,
                                              stderr=harness.subprocess.PIPE))
    ok = 0
    for p in procs:
        out, err = p.communicate(timeout=600)
        ok += out.split().count(b"200")
        if p.returncode != 0:
            raise RuntimeError(err.decode())
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(gw.proc.pid) - cpu_before
    if ok != per_client * clients:
        raise RuntimeError(f"{ok} of {per_client * clients} requests succeeded")
    return ok / elapsed, cpu / ok * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--file", default="1k.bin", choices=["1k.bin", "64k.bin"])
    options = parser.parse_args()

    w = harness.world()
    url = f"https://origin.test:{w.port('valid')}/{options.file}"
    gateways = {
        "recording off": harness.Gateway(w, workers=1, extra_args=["--no-flows"]).start(),
        "recording on": harness.Gateway(w, workers=1).start(),
    }
    results = {name: [] for name in gateways}
    try:
        for name, gw in gateways.items():  # warm up: CA, leaf cache, session caches
            run_round(gw, url, options.clients * 50, options.clients, options.file)
        for _ in range(options.rounds):
            for name, gw in gateways.items():
                results[name].append(run_round(gw, url, options.requests, options.clients,
                                               options.file))
    finally:
        for gw in gateways.values():
            gw.cleanup()

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    print(f"recording cost: {options.requests} keep-alive GETs of {options.file} per round over "
          f"{options.clients} connections, {options.rounds} rounds, 1 worker; medians")
    print(f"{'':16} {'requests/s':>12} {'CPU us/request':>16}")
    summary = {}
    for name, rounds in results.items():
        rps = median([r[0] for r in rounds])
        cpu = median([r[1] for r in rounds])
        summary[name] = (rps, cpu)
        print(f"{name:16} {rps:12.0f} {cpu:16.1f}")
    off, on = summary["recording off"], summary["recording on"]
    print(f"{'on / off':16} {on[0] / off[0]:12.3f} {on[1] / off[1]:16.3f}")


if __name__ == "__main__":
    main()
