"""test_oci_net.py: a container whose spec names a network namespace holding a veth (made here, as a
CNI plugin would) is reachable at the veth's address: a ping and a TCP connection from the peer end,
in a namespace of its own. With husk-oci the VM's NIC stands in for the veth (TAP + tc redirects);
runc, the baseline, runs the same bundle in the same kind of namespace."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from husk_stack import BUILD, require, wait_for

RUNC = "/usr/sbin/runc"
ADDR, PEER = "10.199.77.2", "10.199.77.1"  # only ever inside the test's two namespaces


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def net(netns_available):
    """Two namespaces joined by a veth pair: the container's end (ADDR/24, default route via the
    peer) and the peer's (PEER/24)."""
    tag = f"{os.getpid() % 100000}"
    c, p = f"hoc-{tag}", f"hop-{tag}"
    ip("netns", "add", c)
    ip("netns", "add", p)
    try:
        ip("link", "add", f"hoc{tag}", "type", "veth", "peer", "name", f"hop{tag}")
        ip("link", "set", f"hoc{tag}", "netns", c, "name", "eth0")
        ip("link", "set", f"hop{tag}", "netns", p, "name", "eth0")
        ip("-n", c, "addr", "add", f"{ADDR}/24", "dev", "eth0")
        ip("-n", p, "addr", "add", f"{PEER}/24", "dev", "eth0")
        for ns in (c, p):
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", c, "route", "add", "default", "via", PEER)
        yield c, p
    finally:
        ip("netns", "delete", c, check=False)
        ip("netns", "delete", p, check=False)


@pytest.fixture
def bundle():
    require(os.access(RUNC, os.X_OK), f"{RUNC} is not installed (deploy/install-deps.sh)")
    d = Path(tempfile.mkdtemp(prefix="/tmp/hn-"))
    try:
        for sub in ("bin", "dev", "proc", "sys", "tmp", "etc", "root"):
            (d / "rootfs" / sub).mkdir(parents=True)
        shutil.copy2("/bin/busybox", d / "rootfs" / "bin" / "busybox")
        for a in ("sh", "nc", "echo", "sleep"):
            os.symlink("busybox", d / "rootfs" / "bin" / a)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def answers(peer_ns):
    ping = subprocess.run(["ip", "netns", "exec", peer_ns, "/bin/busybox", "ping", "-c", "1", "-W", "1", ADDR], capture_output=True)
    if ping.returncode != 0:
        return None
    tcp = subprocess.run(["ip", "netns", "exec", peer_ns, "/bin/busybox", "nc", "-w", "2", ADDR, "8080"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
    return tcp.stdout.strip() or None


@pytest.mark.parametrize("rt", ["runc", "husk"])
def test_container_answers_at_the_veths_address(net, bundle, rt):
    c, p = net
    oci = [str(BUILD / "bin" / "husk-oci"), "--kernel", str(BUILD / "kit" / "vmlinux"), "--initrd",
           str(BUILD / "kit" / "initrd.gz"), "--accel", "tcg"] if rt == "husk" else [RUNC]
    oci += ["--root", str(bundle / "root")]
    subprocess.run(oci + ["spec"], cwd=bundle, check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "while :; do echo hello-from-$(hostname) | nc -l -p 8080; done"]
    cfg["root"]["readonly"] = False
    cfg["hostname"] = rt
    cfg["linux"]["namespaces"] = [n if n["type"] != "network" else {"type": "network", "path": f"/var/run/netns/{c}"}
                                  for n in cfg["linux"]["namespaces"]]
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = f"net-{rt}"
    # The container's stdio is create's: files, not pipes this test would wait on.
    with open(bundle / "create.err", "w+") as err:
        r = subprocess.run(oci + ["create", "--bundle", str(bundle), cid], stdout=subprocess.DEVNULL, stderr=err,
                           stdin=subprocess.DEVNULL, timeout=180)
        err.seek(0)
        why = err.read()
    try:
        assert r.returncode == 0, why
        assert subprocess.run(oci + ["start", cid], capture_output=True).returncode == 0
        got = wait_for(lambda: answers(p), timeout=120, interval=0.5, what=f"{rt}: ping and TCP at {ADDR}")
        assert got == f"hello-from-{rt}"
    finally:
        subprocess.run(oci + ["delete", "--force", cid], capture_output=True, timeout=60)
    assert not list((bundle / "root").iterdir())
    # husk-oci took its TAP and redirects away: the namespace is as the test made it.
    links = ip("-n", c, "-o", "link").stdout
    assert "husktap" not in links, links
