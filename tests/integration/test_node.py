"""test_node.py: GET /node and `husk node get`: the host as apiserver sees it, vmm-driver's
runtimes and VMs, every daemon's version and uptime (daemon.info); a daemon that is down is
shown as such and the answer still comes."""

import json
import os
import signal
import socket
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()
DAEMONS = ["apiserver", "scheduler", "vmm-driver", "netd", "logd"]


def node(stack):
    r = stack.api("GET", "/node")
    assert r.status == 200, r
    return r.json()


def test_node_tells_host_runtimes_vms_and_daemons(stack):
    n = node(stack)
    assert n["hostname"] == socket.gethostname()
    assert n["kernel"] == os.uname().release and n["architecture"] == os.uname().machine
    assert n["cpus"] == os.cpu_count()
    mem = n["memory"]
    assert 0 < mem["available_bytes"] <= mem["total_bytes"] and mem["admitted_bytes"] == 0, mem
    assert n["disk"]["path"] == str(stack.state_dir) and 0 < n["disk"]["available_bytes"] <= n["disk"]["total_bytes"]
    assert n["vms_running"] == 0
    assert n["templates"] == [], n  # templates are off
    rts = {r["name"]: r for r in n["runtimes"]}
    assert set(rts) == {"qemu", "cloud-hypervisor"}, rts
    q = rts["qemu"]
    assert q["enabled"] and q["implemented"] and q["problem"] is None, q
    assert Path(q["binary"]).name == "qemu-system-x86_64" and q["version"].startswith("QEMU emulator version"), q
    assert q["accel"] in ("kvm", "tcg")
    assert not rts["cloud-hypervisor"]["enabled"] and rts["cloud-hypervisor"]["problem"] == "not enabled in the config"
    assert [d["name"] for d in n["daemons"]] == DAEMONS
    for d in n["daemons"]:
        assert d["reachable"] and d["version"] == VERSION and d["pid"] == stack.daemon_pid(d["name"]), d
        assert d["host"] == socket.gethostname() and 0 <= d["uptime_seconds"] < 3600, d

    # One VM: counted, and its memory admitted.
    r = stack.husk("apply", "-f", "-", input=f"""deployments:
  one:
    name: one
    replicas: 1
    image: {stack.kit_dir}/rootfs/hello
    resources: {{limits: {{cpu: "1", memory: 160Mi}}}}
""")
    assert r.returncode == 0, r.stderr
    n = stack.wait_for(lambda: (lambda x: x if x["vms_running"] == 1 else None)(node(stack)), timeout=60,
                       what="one VM running")
    assert n["memory"]["admitted_bytes"] == 160 * 1024 * 1024, n["memory"]

    r = stack.husk("node", "get")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"Hostname:   {socket.gethostname()}" in out and "VMs:        1 running" in out, out
    assert "160.0 MiB admitted to VMs" in out, out
    for name in DAEMONS:
        assert any(line.split()[:3] == [name, "up", VERSION] for line in out.splitlines()), out
    assert any(line.split()[:2] == ["qemu", "yes"] for line in out.splitlines()), out
    r = stack.husk("node", "get", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["vms_running"] == 1, r


def test_node_answers_with_a_daemon_down(stack):
    stack.kill_daemon("netd", sig=signal.SIGSTOP, wait=False)  # alive, but answers nothing
    try:
        t0 = time.monotonic()
        n = node(stack)
        took = time.monotonic() - t0
    finally:
        stack.kill_daemon("netd", sig=signal.SIGCONT, wait=False)
    netd = [d for d in n["daemons"] if d["name"] == "netd"][0]
    assert netd == {"name": "netd", "reachable": False, "error": "did not answer within 1000 ms"}, netd
    assert all(d["reachable"] for d in n["daemons"] if d["name"] != "netd")
    assert took < 5, f"GET /node took {took:.1f} s with one daemon down"

    stack.kill_daemon("vmm-driver")
    n = node(stack)
    assert n["runtimes"] is None and n["vms_running"] is None and n["memory"]["admitted_bytes"] is None, n
    assert n["templates"] is None and n["templates_error"].startswith("husk-vmm-driver "), n
    assert n["runtimes_error"].startswith("husk-vmm-driver "), n
    r = stack.husk("node", "get")
    assert r.returncode == 0 and "Runtimes:   unknown (husk-vmm-driver" in r.stdout, r.stdout
    assert "Templates:  unknown (husk-vmm-driver" in r.stdout, r.stdout
    assert any(line.split()[:2] == ["vmm-driver", "unreachable:"] for line in r.stdout.splitlines()), r.stdout


def test_node_needs_a_token_for_every_namespace(stack):
    husk = stack.bin_dir / "husk"
    r = stack.exec(husk, "token", "create", "ns", "--scope", "deployments:read", "--namespace", "prod")
    assert r.returncode == 0, r.stderr
    bound = r.stdout.strip()
    r = stack.api("GET", "/node", headers={"Authorization": f"Bearer {bound}"})
    assert r.status == 403 and "namespaces" in r.json()["detail"], r
    r = stack.exec(husk, "token", "create", "all", "--scope", "deployments:read")
    r = stack.api("GET", "/node", headers={"Authorization": f"Bearer {r.stdout.strip()}"})
    assert r.status == 200, r
    assert stack.api("GET", "/node", auth=False).status == 401
