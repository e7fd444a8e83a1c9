#!/usr/bin/python3
"""bench_api_load.py: REST latency under hostile load. GET /deployments (a connection each, as the
CLI makes them) p50/p99 on an idle apiserver, then with 500 idle connections, 100 half-sent request
heads and 50 log followers (GET /deployments/{id}/logs?follow=true, SSE) held open at once, in one
run; printed as the loaded/idle ratio. All traffic goes to 127.0.0.1 inside the stack's namespace.
Probes that get no answer within BENCH_PROBE_TIMEOUT seconds are counted, not timed. Nothing is
asserted (test_api_load.py asserts that the API does not stall).

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_api_load.py)
Env: BENCH_PROBES (GETs per side, default 50), BENCH_PROBE_TIMEOUT (default 10)."""

import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from api_load import run_load  # noqa: E402
from husk_stack import BUILD, Stack  # noqa: E402

PROBES = int(os.environ.get("BENCH_PROBES", "50"))
PROBE_TIMEOUT = float(os.environ.get("BENCH_PROBE_TIMEOUT", "10"))


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ms(s):
    return f"{s * 1000:.2f} ms"


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as tmp:
        stack = Stack(tmp + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        try:
            stack.kill_daemon("scheduler", signal.SIGTERM)  # no VM: the deployment only has to exist
            r = stack.api("POST", "/deployments", json={"name": "quiet", "image": "/nonexistent"})
            assert r.status == 201, r
            out = run_load(stack, r.json()["id"], followers=50, half_sent=100, idle=500, probes=PROBES,
                           probe_timeout=PROBE_TIMEOUT, idle_probes=PROBES)
        finally:
            stack.down(purge=True)
    idle = [t for t in out["idle_s"] if t is not None]
    loaded = [t for t in out["loaded_s"] if t is not None]
    print(f"GET /deployments, {PROBES} per side, a connection each; load: 500 idle, 100 half-sent heads, "
          f"50 followers ({out['connected']} connected; followers answered {out['followers']})")
    print(f"  idle server (baseline)  p50 {ms(pct(idle, 50)) if idle else '-':>10}  p99 {ms(pct(idle, 99)) if idle else '-':>10}"
          f"  unanswered {len(out['idle_s']) - len(idle)}")
    print(f"  under load              p50 {ms(pct(loaded, 50)) if loaded else '-':>10}  p99 {ms(pct(loaded, 99)) if loaded else '-':>10}"
          f"  unanswered within {PROBE_TIMEOUT:g} s: {len(out['loaded_s']) - len(loaded)}")
    if idle and loaded:
        print(f"  ratio loaded/idle       p50 {pct(loaded, 50) / pct(idle, 50):.2f}x  p99 {pct(loaded, 99) / pct(idle, 99):.2f}x"
              f"  (mean {statistics.mean(loaded) / statistics.mean(idle):.2f}x)")
    print("  reproduce: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_api_load.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
