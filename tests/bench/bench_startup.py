#!/usr/bin/python3
"""bench_startup.py: the CLI's start-up. `husk --version` against `curl --version` in the same
run, interleaved so that both see the same machine load: the CLI is built on libcurl, so the
goal is to cost no more than the HTTP library alone (ratio <= 1.0). `true` is printed for scale:
the cost of spawning and waiting for a process that loads libc only (the floor of this method).
Each run is a posix_spawn with stdout on /dev/null and a waitpid, timed with perf_counter.
Also printed: how many shared objects each loads (ldd) and the dynamic loader's own time
(LD_DEBUG=statistics, median of 15), where most of the difference goes: `husk` loads libcurl's
dependencies plus msgpack-c, libyaml and jansson; czmq only in `husk tap` (cli/cli_tap_bus.c).

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_startup.py)
Env: BENCH_RUNS (runs per command, default 300)."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HUSK_BUILD", REPO / "build"))
RUNS = int(os.environ.get("BENCH_RUNS", "300"))


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ms(s):
    return f"{s * 1000:.2f} ms"


def spawn_once(argv, devnull):
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status = os.waitpid(pid, 0)
    t = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed: {status}")
    return t


def shared_objects(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if "=>" in line)


def loader_cycles(argv, runs=15):
    """The dynamic loader's start-up time in cycles as glibc reports it, median of RUNS."""
    env = dict(os.environ, LD_DEBUG="statistics")
    cycles = []
    for _ in range(runs):
        err = subprocess.run(argv, capture_output=True, text=True, env=env).stderr
        m = re.search(r"total startup time in dynamic loader: (\d+) cycles", err)
        cycles.append(int(m.group(1)) if m else 0)
    return pct(cycles, 50)


def main():
    husk = str(BUILD / "bin" / "husk")
    curl = shutil.which("curl")
    true = shutil.which("true")
    if not curl:
        sys.exit("curl is not installed: the baseline is `curl --version`")
    sides = {"husk --version": [husk, "--version"], "curl --version": [curl, "--version"],
             "true": [true]}
    times = {name: [] for name in sides}
    devnull = os.open(os.devnull, os.O_WRONLY)
    for argv in sides.values():  # warm the page cache
        spawn_once(argv, devnull)
    for _ in range(RUNS):
        for name, argv in sides.items():
            times[name].append(spawn_once(argv, devnull))
    os.close(devnull)

    print(f"start-up, {RUNS} runs each, interleaved:")
    for name, argv in sides.items():
        t = times[name]
        print(f"  {name:<16} p50 {ms(pct(t, 50))}  p90 {ms(pct(t, 90))}  "
              f"{shared_objects(argv[0]):2d} shared objects  "
              f"loader {loader_cycles(argv) / 1e6:5.1f} Mcycles")
    h, c = times["husk --version"], times["curl --version"]
    print(f"  ratio husk/curl  p50 {pct(h, 50) / pct(c, 50):.2f}x  p90 {pct(h, 90) / pct(c, 90):.2f}x  "
          f"(goal <= 1.00)")
    print(f"  reproduce: {husk} --version  vs  {curl} --version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
