"""test_metrics.py: metrics end to end (issue 15): vmm-driver's sampler, netd's TAP counters, the
agent's guest view, GET /deployments/{id}/metrics, `husk deployment metrics`, GET /metrics read by
promtool and scraped by a real Prometheus (Debian's), every daemon's health.

Everything runs inside the stack's network namespace: the guest's traffic, Prometheus and its
HTTP API. The sampler runs every second here (vmm_driver.metrics_interval, set by a SIGHUP
reload as an operator would)."""

import json
import re
import shutil
import signal
import subprocess
import time

import pytest

from husk_stack import DAEMONS, netns_socket, require, stack_tool

BIG = 300 * 1024  # bytes of the file the guest serves: what its TAP must count


def apply(stack, name, image, command, replicas=1):
    text = "\n".join(["deployments:", f"  {name}:", f"    name: {name}", "    kind: worker",
                      f"    replicas: {replicas}", f"    image: {image}",
                      "    resources: {limits: {cpu: \"1\", memory: 128Mi}}", f"    command: {json.dumps(command)}"])
    r = stack.husk("apply", "-f", "-", input=text + "\n", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def set_metrics_interval(stack, value):
    """vmm_driver.metrics_interval in the stack's config, applied by SIGHUP (no restart)."""
    text = stack.config_path.read_text()
    text = re.sub(r"\n  metrics_interval: .*\n", "\n", text)
    text = text.replace("\nvmm_driver:\n", f"\nvmm_driver:\n  metrics_interval: {value}\n", 1)
    stack.config_path.write_text(text)
    stack.tool("kill", "--signal", "HUP", "vmm-driver")


def metrics(stack, deployment_id):
    r = stack.api("GET", f"/deployments/{deployment_id}/metrics")
    assert r.status == 200, r
    return r.json()


def fetch(stack, address, path):
    """GET http://address/path from inside the namespace (over the guest's TAP): the body."""
    s = netns_socket(stack.netns)
    s.settimeout(10)
    try:
        s.connect((address, 80))
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    return data.split(b"\r\n\r\n", 1)[-1]


def exposition(stack, **kw):
    r = stack.api("GET", "/metrics", **kw)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return r.text


def sample(text, name, **labels):
    """The value of the series name{labels...} in an exposition (labels: a subset), or None."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def promtool_check(text):
    """`promtool check metrics` on the exposition: (ok, what it said)."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return r.returncode == 0, r.stdout + r.stderr


def free_port(stack):
    s = netns_socket(stack.netns)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def prom_get(stack, port, path):
    """GET path of the test's Prometheus (inside the namespace): (status, body)."""
    s = netns_socket(stack.netns)
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def prometheus(tmp_path):
    """start(stack, token=None) -> the port of a Prometheus scraping the stack's GET /metrics every
    second, with its own config, data dir and port, inside the stack's namespace; stopped after."""
    require(shutil.which("prometheus") and shutil.which("promtool"),
            "Debian's prometheus package is not installed (deploy/install-deps.sh installs it)")
    procs = []

    def start(stack, token=None):
        port = free_port(stack)
        auth = f"\n    authorization: {{type: Bearer, credentials: {json.dumps(token)}}}" if token else ""
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: husk
    metrics_path: /metrics{auth}
    static_configs: [{{targets: ["127.0.0.1:{stack.port}"]}}]
""")
        log = open(tmp_path / "prometheus.log", "w")
        p = subprocess.Popen([stack_tool.ip_binary(), "netns", "exec", stack.netns, "prometheus",
                              f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                              f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        procs.append((p, log))
        stack.wait_for(lambda: p.poll() is None and prom_get(stack, port, "/-/ready")[0] == 200, timeout=60,
                       interval=0.2, what="Prometheus ready")
        return port

    yield start
    for p, log in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def prom_query(stack, port, query):
    """The instant vector of a PromQL query: [(labels, value)]."""
    from urllib.parse import quote

    status, body = prom_get(stack, port, "/api/v1/query?query=" + quote(query))
    assert status == 200, body
    out = json.loads(body)
    assert out["status"] == "success", out
    return [(r["metric"], float(r["value"][1])) for r in out["data"]["result"]]


def test_deployment_metrics_tap_guest_and_prometheus(stack, tmp_path, prometheus):
    """A kit VM's deployment: nonzero CPU seconds and RSS, instance_count 1, the guest's own view
    (husk-agent's stats), TAP counters that move with traffic to the guest, the CLI's table and
    JSON, and GET /metrics valid for promtool and scraped by Prometheus, which then answers a
    query for the deployment's series."""
    set_metrics_interval(stack, "1s")
    root = tmp_path / "root"
    shutil.copytree(stack.kit_dir / "rootfs/hello", root, symlinks=True)
    apply(stack, "web", root, ["/bin/sh", "-c",
                               f"dd if=/dev/zero of=/tmp/big bs=1024 count={BIG // 1024} 2>/dev/null; "
                               "exec httpd -f -p 80 -h /tmp"])
    d = stack.wait_for(lambda: (x := inspect(stack, "web")) and x["status"] == "running" and x["ready_replicas"] >= 1
                       and x, timeout=180, what="web running")
    did, iid, address = d["id"], d["instances"][0]["instance_id"], d["instances"][0]["address"]

    def sampled():
        m = metrics(stack, did)
        i = m["instances"][0] if m["instances"] else None
        return m if (m["instance_count"] == 1 and m["total_cpu_seconds"] > 0 and m["total_memory"]["usage_bytes"] > 0
                     and i and i["guest"] and i["network"]["rx_packets"] > 0) else None
    m = stack.wait_for(sampled, timeout=60, interval=0.5, what="a sample with CPU, RSS, network and the guest's view")
    i = m["instances"][0]
    assert m["deployment_name"] == "web" and m["namespace"] == "default" and m["runtime"] == "qemu", m
    assert m["restart_count"] == 0 and m["replicas"] == 1, m
    assert i["instance_id"] == iid and i["restart_count"] == 0, i
    assert i["memory"]["limit_bytes"] == 128 * 1024 * 1024, i
    assert i["pids"]["current"] >= 1 and i["threads"] == i["pids"]["current"], i
    assert 0 < i["cpu_seconds"] and i["cpu_usage_percent"] >= 0, i
    # QEMU's RSS: at least some MiB, and not more than the guest's RAM plus QEMU itself.
    assert 4 * 1024 * 1024 < i["memory"]["usage_bytes"] < 1024 * 1024 * 1024, i
    # The guest's own view: the kit guest's 128 MiB, less the kernel's share.
    g = i["guest"]
    assert 64 * 1024 * 1024 < g["memory_total_bytes"] <= 128 * 1024 * 1024, g
    assert g["memory_used_bytes"] + g["memory_available_bytes"] == g["memory_total_bytes"], g
    assert "note" not in i["disk_io"], i  # root reads /proc/<qemu>/io
    assert m["total_cpu_seconds"] == pytest.approx(i["cpu_seconds"]), m

    # Host to guest over the TAP: the guest sends the file (its tx), receives the request (its rx).
    before = i["network"]
    body = stack.wait_for(lambda: fetch(stack, address, "/big"), timeout=60, interval=0.5,
                          what="the guest's httpd serving /big")
    assert len(body) == BIG

    def moved():
        n = metrics(stack, did)["instances"][0]["network"]
        return n if n["tx_bytes"] >= before["tx_bytes"] + BIG and n["rx_packets"] > before["rx_packets"] else None
    n = stack.wait_for(moved, timeout=15, interval=0.5, what="the TAP counters to count the guest's 300 KiB")
    # Segmentation offload makes packets of several KiB: at least a few dozen of them.
    assert n["tx_packets"] >= before["tx_packets"] + 10, (before, n)
    # Swapped (host tx = guest rx): the guest sent far more than it received.
    assert n["tx_bytes"] - before["tx_bytes"] > 10 * (n["rx_bytes"] - before["rx_bytes"]), (before, n)

    # The CLI: a table, and the same object as JSON.
    r = stack.husk("deployment", "metrics", "web")
    assert r.returncode == 0, r.stderr
    assert "web (default): 1 instance(s), 0 restart(s)" in r.stdout and iid in r.stdout, r.stdout
    assert "CPU" in r.stdout and "MiB" in r.stdout, r.stdout
    r = stack.husk("deployment", "metrics", "web", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["instances"][0]["instance_id"] == iid, r.stdout + r.stderr
    # --watch redraws: two JSON lines a second apart, until interrupted.
    p = subprocess.Popen([stack_tool.ip_binary(), "netns", "exec", stack.netns, "husk", "deployment", "metrics", "web",
                          "--watch=1", "-o", "json"], env=stack.exec_env(), stdout=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline(), p.stdout.readline()]
        assert all(json.loads(x)["instance_count"] == 1 for x in lines), lines
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0

    # GET /metrics: public by default, valid for promtool, with the deployment's series.
    text = exposition(stack, auth=False)
    ok, said = promtool_check(text)
    assert ok, said
    labels = dict(deployment="web", namespace="default", runtime="qemu")
    assert sample(text, "husk_deployment_instances", **labels) == 1, text
    assert sample(text, "husk_deployment_cpu_seconds_total", **labels) > 0
    assert sample(text, "husk_deployment_memory_usage_bytes", **labels) > 4 * 1024 * 1024
    assert sample(text, "husk_deployment_network_tx_bytes_total", **labels) >= BIG
    assert sample(text, "husk_deployment_restarts_total", **labels) == 0
    assert sample(text, "husk_deployments", namespace="default", status="running") == 1
    for daemon in DAEMONS:
        assert sample(text, "husk_daemon_up", daemon=daemon) == 1, daemon
        assert sample(text, "husk_daemon_start_time_seconds", daemon=daemon) > time.time() - 3600, daemon
    assert sample(text, "husk_bus_requests_total", daemon="netd", method="net.stats") > 0
    assert sample(text, "husk_bus_request_duration_seconds_count", daemon="netd", method="net.stats") > 0
    assert sample(text, "husk_bus_request_duration_seconds_bucket", daemon="netd", method="net.stats", le="+Inf") > 0
    assert sample(text, "husk_bus_requests_total", daemon="vmm-driver", method="instance.create") >= 1
    # A method never asked: its counters at 0, and no histogram of zeros.
    assert sample(text, "husk_bus_requests_total", daemon="netd", method="net.detach") == 0
    assert sample(text, "husk_bus_request_duration_seconds_count", daemon="netd", method="net.detach") is None
    assert sample(text, "husk_scheduler_pass_duration_seconds_count", daemon="scheduler") > 0
    assert sample(text, "husk_logd_lines_stored_total", daemon="logd") > 0

    # A real Prometheus scrapes it and answers for the running deployment's series.
    port = prometheus(stack)

    def scraped():
        got = prom_query(stack, port, 'husk_deployment_instances{deployment="web",namespace="default"}')
        return got if got and got[0][1] == 1 else None
    got = stack.wait_for(scraped, timeout=60, interval=0.5, what="Prometheus to have scraped husk")
    assert got[0][0]["runtime"] == "qemu" and got[0][0]["job"] == "husk", got
    up = prom_query(stack, port, 'up{job="husk"}')
    assert up and up[0][1] == 1, up
    assert prom_query(stack, port, 'husk_daemon_up{daemon="vmm-driver"}')[0][1] == 1


def test_daemon_health_and_metrics_auth(stack):
    """Without any VM: every daemon up with its start time; a daemon that is down says 0 within the
    scrape; apiserver.metrics_auth makes GET /metrics need deployments:read."""
    text = exposition(stack, auth=False)
    ok, said = promtool_check(text)
    assert ok, said
    started = {d: sample(text, "husk_daemon_start_time_seconds", daemon=d) for d in DAEMONS}
    assert all(v and abs(v - time.time()) < 600 for v in started.values()), started
    assert sample(text, "husk_daemon_info", daemon="apiserver") == 1

    stack.kill_daemon("netd", sig=signal.SIGKILL)
    t0 = time.monotonic()
    text = exposition(stack, auth=False)
    assert time.monotonic() - t0 < 5
    assert sample(text, "husk_daemon_up", daemon="netd") == 0, text
    assert sample(text, "husk_daemon_up", daemon="logd") == 1
    stack.start_daemon("netd")
    stack.wait_for(lambda: sample(exposition(stack, auth=False), "husk_daemon_up", daemon="netd") == 1, timeout=30,
                   what="netd up again in /metrics")
    # Restarted: a later start time.
    assert sample(exposition(stack, auth=False), "husk_daemon_start_time_seconds", daemon="netd") > started["netd"]

    # Token-protected when the config says so (a restart of apiserver applies it).
    text = stack.config_path.read_text().replace("\napiserver:\n", "\napiserver:\n  metrics_auth: true\n", 1)
    stack.config_path.write_text(text)
    stack.restart_daemon("apiserver")
    stack.wait_for(lambda: stack.api("GET", "/healthz", auth=False).status == 200, timeout=30, what="apiserver back")
    stack.login_admin()
    r = stack.api("GET", "/metrics", auth=False)
    assert r.status == 401, r
    assert exposition(stack).startswith("# HELP")
