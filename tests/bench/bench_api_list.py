#!/usr/bin/python3
"""bench_api_list.py: what the read API costs as deployments grow (issue 19). With 100 and then
1000 deployments stored, each read endpoint is loaded by wrk (2 threads, 8 keep-alive
connections, a few seconds, inside the stack's namespace) and printed against GET /healthz on
the same server in the same run: requests/s, the ratio to /healthz, and apiserver's own CPU time
per request (from /proc, which the machine's other load does not inflate the way it does
requests/s). Nothing is asserted.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_api_list.py)
Env: BENCH_SIZES (default "100,1000"), BENCH_SECONDS (per endpoint, default 3)."""

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from husk_stack import BUILD, Stack  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000").split(",")]
SECONDS = int(os.environ.get("BENCH_SECONDS", "3"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def load(stack, path, pid):
    """wrk against path: (requests/s, apiserver CPU ms per request)."""
    before = cpu_seconds(pid)
    r = stack.exec("wrk", "-t2", "-c8", f"-d{SECONDS}s", "-H", f"Authorization: Bearer {stack.token}",
                   f"http://127.0.0.1:{stack.port}{path}", timeout=SECONDS + 60, check=True)
    used = cpu_seconds(pid) - before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    count = int(re.search(r"(\d+) requests in", r.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if bad:
        raise RuntimeError(f"{path}: {bad.group(1)} answers were errors")
    return rate, used * 1000 / max(count, 1)


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as tmp:
        stack = Stack(tmp + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        try:
            stack.kill_daemon("scheduler", signal.SIGTERM)  # records only: no VM is started
            pid = stack.daemon_pid("apiserver")
            made, first = 0, None
            print(f"wrk -t2 -c8 -d{SECONDS}s per endpoint; ratio = requests/s against GET /healthz in the same run")
            for size in SIZES:
                while made < size:
                    r = stack.api("POST", "/deployments", json={
                        "name": f"app-{made:04d}", "namespace": f"team-{made % 7}", "image": "/srv/none",
                        "replicas": 0, "labels": {"app": f"app-{made}", "tier": "web"},
                        "command": ["/bin/sh", "-c", "exec httpd -f -p 8080"],
                        "environment": {"GREETING": "hello from husk", "MODE": "production"},
                        "health_checks": [{"type": "tcp", "port": 8080}]})
                    assert r.status == 201, r
                    first = first or r.json()["id"]
                    made += 1
                body = stack.api("GET", "/deployments").text
                print(f"-- {size} deployments (GET /deployments answers {len(body) / 1024:.0f} KiB)")
                base, base_cpu = load(stack, "/healthz", pid)
                print(f"  {'GET /healthz (baseline)':34} {base:9.0f} req/s  1.00x  {base_cpu:6.3f} ms CPU/req")
                for name, path in (("GET /deployments", "/deployments"),
                                   ("GET /deployments/{id}", f"/deployments/{first}"),
                                   ("GET /deployments/{id}/events", f"/deployments/{first}/events"),
                                   ("GET /deployments/{id}/logs?tail=100", f"/deployments/{first}/logs?tail=100")):
                    rate, cpu = load(stack, path, pid)
                    print(f"  {name:34} {rate:9.0f} req/s  {rate / base:.3f}x  {cpu:6.3f} ms CPU/req")
        finally:
            stack.down(purge=True)
    print("  reproduce: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_api_list.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
