#!/usr/bin/python3
"""What recording costs: the same keep-alive HTTPS workload through the gateway with flow recording
off (--no-flows) and on (HTTP dissection + SQLite flow records), in one run, alternating rounds.

Reports requests/s and the gateway's CPU time per request for each, and the ratios. Uses the
integration harness (nginx origin on loopback with the test PKI) and bench/load/keepalive_load as
the client (curl spent more CPU than the gateway it measured).

    make bench            # runs this after the micro benchmarks
    bench/recording_bench.py --seconds 5 --connections 4 --rounds 5
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


LOAD = os.environ.get("TLSGATE_KEEPALIVE_LOAD",
                      os.path.join(os.path.dirname(harness.BIN), "keepalive_load"))


def pin(pid, cpu):
    """All threads of `pid` onto one CPU (taskset -a)."""
    harness.subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                           stdout=harness.subprocess.DEVNULL)


def pin_threads(pid, cpu, name_prefix):
    """The threads of `pid` whose name starts with `name_prefix` onto one CPU."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().startswith(name_prefix):
                os.sched_setaffinity(int(tid), {cpu})


def run_round(gw, w, path, connections, seconds, client_cpu):
    """One timed round: requests/s and the gateway's CPU microseconds per request."""
    cpu_before = cpu_seconds(gw.proc.pid)
    out = harness.subprocess.run(
        ["taskset", "-c", str(client_cpu), LOAD, harness.LOOPBACK, str(gw.port), "origin.test",
         str(w.port("valid")), path, gw.ca_path, str(connections), str(seconds)],
        check=True, capture_output=True, text=True, timeout=seconds + 60).stdout.split()
    cpu = cpu_seconds(gw.proc.pid) - cpu_before
    requests, elapsed = int(out[1]), float(out[3])
    return requests / elapsed, cpu / requests * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="length of one round")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--file", default="1k.bin", choices=["1k.bin", "64k.bin"])
    options = parser.parse_args()
    if not os.access(LOAD, os.X_OK):
        sys.exit(f"{LOAD} not found: build the keepalive_load target (make build)")

    w = harness.world()
    path = f"/{options.file}"
    # The gateway gets a core to itself (its worker and its flow writer share it, as they would
    # on a loaded machine); client and origin share the other. Then requests/s is what one core
    # of gateway delivers, and the other processes' noise stays off that core.
    gateway_cpu, client_cpu = (1, 0) if os.cpu_count() > 1 else (0, 0)
    pin(w.nginx.proc.pid, client_cpu)
    # "writer apart": the same recording gateway with its flow writer thread moved to the other
    # core, as on a machine with a core to spare; then requests/s shows what recording costs the
    # worker itself, and CPU per request still counts the writer.
    gateways = {
        "recording off": harness.Gateway(w, workers=1, extra_args=["--no-flows"]).start(),
        "recording on": harness.Gateway(w, workers=1).start(),
        "writer apart": harness.Gateway(w, workers=1).start(),
    }
    results = {name: [] for name in gateways}
    try:
        for name, gw in gateways.items():  # warm up: CA, leaf cache, session caches
            pin(gw.proc.pid, gateway_cpu)
            if name == "writer apart":
                pin_threads(gw.proc.pid, client_cpu, "tg-flow-writer")
            run_round(gw, w, path, options.connections, 1, client_cpu)
        for _ in range(options.rounds):
            for name, gw in gateways.items():
                results[name].append(run_round(gw, w, path, options.connections, options.seconds,
                                               client_cpu))
    finally:
        for gw in gateways.values():
            gw.cleanup()

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    print(f"recording cost: keep-alive GETs of {options.file} over {options.connections} "
          f"connections, {options.rounds} rounds of {options.seconds:g} s, 1 worker on its own "
          f"core; medians")
    # The spread of each configuration's rounds says how far to trust the ratios: on a shared
    # machine another job can slow some rounds of one configuration and not the other's.
    print(f"{'':26} {'requests/s':>12} {'CPU us/request':>16}   spread of rounds (max/min)")
    summary = {}
    for name, rounds in results.items():
        rps = median([r[0] for r in rounds])
        cpu = median([r[1] for r in rounds])
        summary[name] = (rps, cpu)
        spread_rps = max(r[0] for r in rounds) / min(r[0] for r in rounds)
        spread_cpu = max(r[1] for r in rounds) / min(r[1] for r in rounds)
        print(f"{name:26} {rps:12.0f} {cpu:16.1f}   {spread_rps:.2f} / {spread_cpu:.2f}")
    off = summary["recording off"]
    for name in ("recording on", "writer apart"):
        on = summary[name]
        print(f"{name + ' / off':26} {on[0] / off[0]:12.3f} {on[1] / off[1]:16.3f}")


if __name__ == "__main__":
    main()
