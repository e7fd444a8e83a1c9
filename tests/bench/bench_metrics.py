#!/usr/bin/python3
"""bench_metrics.py: what reading metrics costs (issue 15). A deployment of 20 kit VMs (tcg, 128 MiB,
no workload: the agent alone), sampled by vmm-driver every vmm_driver.metrics_interval (5 s), then
100 more deployments stored: GET /deployments/{id}/metrics of the 20 instances and GET /metrics
(Prometheus, 101 deployments) are loaded by wrk over one keep-alive connection (requests one after
the other, inside the stack's namespace), and printed against GET /healthz on the same server in
the same run: latency p50 and p99, their ratios to /healthz's, the size of the answer, and the CPU
time per request of apiserver and of all daemons (from /proc: the machine's other load inflates
latency, not CPU time). Ring's
`deployment metrics` samples each instance in the request, sleeping 500 ms per instance: 10 s for
20. Nothing is asserted.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_metrics.py)
Env: BENCH_INSTANCES (default 20), BENCH_DEPLOYMENTS (default 100), BENCH_SECONDS (per endpoint, default 5)."""

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from husk_stack import BUILD, Stack  # noqa: E402

INSTANCES = int(os.environ.get("BENCH_INSTANCES", "20"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEPLOYMENTS = int(os.environ.get("BENCH_DEPLOYMENTS", "100"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))


def ms(text):
    """A wrk duration ("812.00us", "1.23ms", "2.01s") in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def daemons_cpu(stack):
    return sum(cpu_seconds(stack.daemon_pid(d)) for d in ("apiserver", "scheduler", "vmm-driver", "netd", "logd"))


def load(stack, path, auth=True):
    """wrk -t1 -c1 against path: (p50 ms, p99 ms, requests, apiserver CPU ms per request, all
    daemons' CPU ms per request). CPU time is what the machine's other load does not inflate."""
    pid = stack.daemon_pid("apiserver")
    before, before_all = cpu_seconds(pid), daemons_cpu(stack)
    headers = ["-H", f"Authorization: Bearer {stack.token}"] if auth else []
    r = stack.exec("wrk", "-t1", "-c1", f"-d{SECONDS}s", "--latency", *headers,
                   f"http://127.0.0.1:{stack.port}{path}", timeout=SECONDS + 60, check=True)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if bad:
        raise RuntimeError(f"{path}: {bad.group(1)} answers were errors")
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", r.stdout, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", r.stdout, re.M).group(1))
    count = int(re.search(r"(\d+) requests in", r.stdout).group(1))
    used, used_all = cpu_seconds(pid) - before, daemons_cpu(stack) - before_all
    return p50, p99, count, used * 1000 / max(count, 1), used_all * 1000 / max(count, 1)


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as tmp:
        stack = Stack(tmp + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        try:
            root = Path(tmp) / "root"
            shutil.copytree(stack.kit_dir / "rootfs/hello", root, symlinks=True)
            text = "\n".join(["deployments:", "  fleet:", "    name: fleet", "    kind: worker",
                              f"    replicas: {INSTANCES}", f"    image: {root}",
                              "    resources: {limits: {cpu: \"1\", memory: 128Mi}}"])
            r = stack.husk("apply", "-f", "-", input=text + "\n", timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            did = json.loads(stack.husk("deployment", "inspect", "fleet", "-o", "json").stdout)["id"]
            start = time.monotonic()

            def sampled():
                m = stack.api("GET", f"/deployments/{did}/metrics").json()
                return m if m["instance_count"] == INSTANCES else None
            stack.wait_for(sampled, timeout=900, interval=1, what=f"{INSTANCES} instances sampled")

            def ready():
                d = json.loads(stack.husk("deployment", "inspect", "fleet", "-o", "json").stdout)
                return d["ready_replicas"] == INSTANCES
            # Measured once every guest booted: a steady state, not 20 boots at once.
            stack.wait_for(ready, timeout=900, interval=2, what=f"{INSTANCES} instances ready")
            m = stack.wait_for(sampled, timeout=60, interval=1, what=f"{INSTANCES} instances sampled")
            print(f"{INSTANCES} kit VMs ready and sampled after {time.monotonic() - start:.0f} s "
                  f"(VMM RSS {m['total_memory']['usage_bytes'] / 2**20:.0f} MiB, CPU {m['total_cpu_usage_percent']:.0f}%)")
            for k in range(DEPLOYMENTS):
                r = stack.api("POST", "/deployments", json={
                    "name": f"app-{k:04d}", "namespace": f"team-{k % 7}", "image": "/srv/none", "replicas": 0,
                    "labels": {"app": f"app-{k}"}})
                assert r.status == 201, r
            body = stack.api("GET", "/metrics", auth=False).body
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            dm = stack.api("GET", f"/deployments/{did}/metrics").body

            print(f"wrk -t1 -c1 -d{SECONDS}s --latency per endpoint (one request after the other); "
                  "ratio = latency against GET /healthz in the same run")
            base50, base99, n, cpu, cpu_all = load(stack, "/healthz", auth=False)
            print(f"  {'GET /healthz (baseline)':44} p50 {base50:7.3f} ms  p99 {base99:7.3f} ms  "
                  f"1.00x / 1.00x  {n} requests; CPU/req {cpu:.3f} ms apiserver, {cpu_all:.3f} ms all daemons")
            for name, path, auth, size in (
                    (f"GET /deployments/{{id}}/metrics ({INSTANCES} inst.)", f"/deployments/{did}/metrics", True,
                     len(dm)),
                    (f"GET /metrics ({DEPLOYMENTS + 1} deployments)", "/metrics", False, len(body))):
                p50, p99, n, cpu, cpu_all = load(stack, path, auth)
                print(f"  {name:44} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  {p50 / base50:.2f}x / {p99 / base99:.2f}x  "
                      f"{n} requests, {size / 1024:.1f} KiB; CPU/req {cpu:.3f} ms apiserver, {cpu_all:.3f} ms all")
            print(f"  GET /metrics: {series} series; Ring's deployment metrics for {INSTANCES} instances: "
                  f"{INSTANCES * 500} ms (500 ms of sleep per instance)")
        finally:
            stack.down(purge=True)
    print("  reproduce: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_metrics.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
