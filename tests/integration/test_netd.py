"""test_netd.py: instance networks and published ports, end to end inside a stack's namespace.

Where a guest is needed without a VM, a "stand-in" takes the place of its TAP (netd_util.py): a
veth of the same name whose peer holds the guest address in a namespace of its own, so packets
cross exactly the host path a VM's would (DNAT, isolation rules, masquerade). The VM tests boot
real kit VMs (tcg). Every namespace here is created by the test and removed after it.
"""

import json
import os
import re
import signal
import subprocess
import uuid

import pytest

from netd_util import (GUEST_SERVER, Subscriber, guest_standin, links, netns_del, nft_ruleset, ns_popen,
                       ns_python, request, sh)

HOST_ADDR = "198.51.100.1"  # TEST-NET-2, on a dummy interface inside the stack's namespace only


def ep(stack, kind):
    return f"ipc://{stack.dir}/run/netd.{kind}"


def attach(stack, iid, ports):
    r = request(ep(stack, "requests"), "net.attach", {"instance_id": iid, "ports": ports})
    assert "result" in r, r
    return r["result"]


@pytest.fixture
def guests():
    """Namespaces for stand-in guests, removed after the test (and their servers killed)."""
    made, procs = [], []

    def make(stack, attachment, tcp=80, udp=53, bulk=9000, bulk_bytes=1 << 20):
        ns = f"hkg-{uuid.uuid4().hex[:8]}"
        made.append(ns)
        guest_standin(stack.netns, attachment, ns)
        p = ns_popen(ns, GUEST_SERVER, str(tcp), str(udp), str(bulk), str(bulk_bytes))
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return ns

    yield make
    for p in procs:
        p.kill()
        p.wait()
    for ns in made:
        netns_del(ns)


def host_side(stack):
    # A veth with both ends in the namespace stands for the host's uplink (no dummy module here).
    sh("ip", "-n", stack.netns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
    sh("ip", "-n", stack.netns, "addr", "add", f"{HOST_ADDR}/24", "dev", "up0")
    sh("ip", "-n", stack.netns, "link", "set", "up0", "up")
    sh("ip", "-n", stack.netns, "link", "set", "up0p", "up")


HTTP_GET = ("import sys, urllib.request\n"
            "print(urllib.request.urlopen('http://%s:%s/' % (sys.argv[1], sys.argv[2]), timeout=5).read().decode())")
UDP_ECHO = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n"
            "s.sendto(b'ping', (sys.argv[1], int(sys.argv[2]))); print(s.recvfrom(100)[0].decode())")
TCP_PROBE = ("import socket, sys\n"
             "try:\n"
             "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close(); print('open')\n"
             "except OSError as e:\n"
             "    print('closed', e)")


def test_published_ports_reach_the_guest(stack, guests):
    """tcp from 127.0.0.1, from a host address and from the TAP's own address; udp echo; the
    nft rules are tagged with the instance and a detach leaves nothing."""
    host_side(stack)
    iid = "0a1b2c3d4e5f"
    a = attach(stack, iid, [{"published": 8080, "target": 80},
                            {"published": 5353, "target": 53, "protocol": "udp"}])
    assert a["tap"] == f"hk{iid}" and a["prefix"] == 30
    assert (a["guest_ip"], a["host_ip"], a["mac"]) == ("10.42.17.214", "10.42.17.213", "02:53:f7:65:84:75")
    guests(stack, a)
    for addr in ("127.0.0.1", HOST_ADDR, a["host_ip"]):
        r = ns_python(stack.netns, HTTP_GET, addr, "8080")
        assert r.returncode == 0 and "hello from" in r.stdout, (addr, r.stderr[-500:])
    r = ns_python(stack.netns, UDP_ECHO, "127.0.0.1", "5353")
    assert r.stdout.strip() == "echo:ping", r.stderr[-500:]
    r = ns_python(stack.netns, UDP_ECHO, HOST_ADDR, "5353")
    assert r.stdout.strip() == "echo:ping", r.stderr[-500:]

    rules = nft_ruleset(stack.netns)
    assert rules.count(f'comment "husk:{iid}"') == 4, rules  # tcp+udp, prerouting+output
    r = request(ep(stack, "requests"), "net.detach", {"instance_id": iid})
    assert r.get("result") == {}, r
    assert f"husk:{iid}" not in nft_ruleset(stack.netns)
    assert f"hk{iid}" not in links(stack.netns)


def test_siblings_cannot_reach_each_other(stack, guests):
    a = attach(stack, "aaaaaaaaaaaa", [{"published": 8081, "target": 80}])
    b = attach(stack, "bbbbbbbbbbbb", [{"published": 8082, "target": 80}])
    ga, gb = guests(stack, a), guests(stack, b)
    # The host reaches both guests directly.
    assert ns_python(stack.netns, TCP_PROBE, b["guest_ip"], "80").stdout.startswith("open")
    assert ns_python(stack.netns, TCP_PROBE, a["guest_ip"], "80").stdout.startswith("open")
    # Guest to guest: dropped in both directions (forwarding between /30s).
    assert ns_python(ga, TCP_PROBE, b["guest_ip"], "80").stdout.startswith("closed")
    assert ns_python(gb, TCP_PROBE, a["guest_ip"], "80").stdout.startswith("closed")


def test_attach_refuses_taken_port_and_publishes_the_failure(stack):
    sub = Subscriber(ep(stack, "events"), "net.")
    holder = ns_popen(stack.netns, "import socket,threading; s=socket.socket(); s.bind(('0.0.0.0', 8090)); "
                      "s.listen(); print('ready', flush=True); threading.Event().wait()")
    try:
        assert holder.stdout.readline().strip() == "ready"
        # The slow joiner's handshake: the same refusal for another deployment creates nothing.
        def refused():
            r = request(ep(stack, "requests"), "net.attach", {"instance_id": "eeeeeeeeeeee", "deployment_id": "handshake",
                                                              "ports": [{"published": 8090, "target": 80}]})
            assert r["error"]["code"] == "port_allocation_failed", r
        sub.handshake(refused, lambda t, b: t == "net.port_allocation_failed" and b.get("deployment_id") == "handshake")
        r = request(ep(stack, "requests"), "net.attach",
                    {"instance_id": "cccccccccccc", "deployment_id": "d-1", "ports": [{"published": 8090, "target": 80}]})
        assert r["error"]["code"] == "port_allocation_failed", r
        assert r["error"]["message"].startswith("PortAllocationFailed: ports[0].published"), r
        assert "hkcccccccccccc" not in links(stack.netns)  # nothing was created
        seen = stack.wait_for(lambda: [b for t, b in sub.poll() if t == "net.port_allocation_failed"], timeout=5)
        assert seen[0]["reason"] == "PortAllocationFailed" and seen[0]["deployment_id"] == "d-1"
    finally:
        holder.kill()
        holder.wait()
        sub.close()


def test_sigkill_netd_during_transfer_then_readopt_and_detach(stack, guests):
    """nft forwarding is kernel state: a transfer through a published port survives netd's
    SIGKILL; the restarted netd re-adopts the TAP and ports; a detach then removes them."""
    iid = "dddddddddddd"
    size = 300 << 20
    a = attach(stack, iid, [{"published": 9000, "target": 9000}])
    guests(stack, a, bulk_bytes=size)
    reader = ns_popen(stack.netns, (
        "import socket, sys, time\n"
        "s = socket.create_connection(('127.0.0.1', 9000), timeout=30)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)\n"
        "n = len(s.recv(1 << 16)); print('started', flush=True)\n"
        "while True:\n"
        "    d = s.recv(1 << 16)\n"
        "    if not d: break\n"
        "    n += len(d); time.sleep(0.0005)\n"
        "print(n, flush=True)\n"))
    assert reader.stdout.readline().strip() == "started"  # data flows: the transfer is under way
    stack.kill_daemon("netd", signal.SIGKILL)
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0 and int(out.split()[-1]) == size, (out, err[-500:])

    # The stand-in is no instance of vmm-driver's: with vmm-driver away, netd keeps what it
    # finds (it never guesses a live VM's network away); test_orphans_reaped covers the other case.
    stack.kill_daemon("vmm-driver", signal.SIGKILL)
    stack.start_daemon("netd")
    stack.start_daemon("vmm-driver")
    listed = request(ep(stack, "requests"), "net.list", {})["result"]
    assert [(x["instance_id"], x["tap"], x["ports"][0]["published"]) for x in listed] == [(iid, f"hk{iid}", 9000)]
    assert "adopted TAP" in stack.log("netd")
    r = ns_python(stack.netns, "import socket; s=socket.create_connection(('127.0.0.1', 9000), timeout=5); "
                  "print(len(s.recv(100)))")
    assert r.returncode == 0, r.stderr[-500:]

    assert request(ep(stack, "requests"), "net.detach", {"instance_id": iid}).get("result") == {}
    assert f"husk:{iid}" not in nft_ruleset(stack.netns)
    assert f"hk{iid}" not in links(stack.netns)


def test_replacement_takes_the_deployments_port_over(stack):
    """A new generation starts while the old instance still serves: the host port moves to the
    newest instance of the same deployment; another deployment still cannot take it."""
    def att(iid, dep):
        return request(ep(stack, "requests"), "net.attach",
                       {"instance_id": iid, "deployment_id": dep, "ports": [{"published": 8085, "target": 80}]})

    old = att("111111111111", "dep-a")["result"]
    new = att("222222222222", "dep-a")["result"]
    rules = nft_ruleset(stack.netns)
    assert f"dnat ip to {new['guest_ip']}:80" in rules and f"dnat ip to {old['guest_ip']}:80" not in rules, rules
    listed = {x["instance_id"]: x["ports"] for x in request(ep(stack, "requests"), "net.list", {})["result"]}
    assert listed["111111111111"] == [] and listed["222222222222"][0]["published"] == 8085
    r = att("333333333333", "dep-b")
    assert r["error"]["code"] == "port_allocation_failed", r
    # The old instance goes: the port stays with the new one.
    assert request(ep(stack, "requests"), "net.detach", {"instance_id": "111111111111"}).get("result") == {}
    assert f"dnat ip to {new['guest_ip']}:80" in nft_ruleset(stack.netns)


def test_orphans_reaped_when_netd_restarts(stack):
    """An instance removed while netd was down (its detach and instance.removed unheard): the
    restarted netd asks vmm-driver and removes what vmm-driver no longer has."""
    iid = "ffffffffffff"
    attach(stack, iid, [{"published": 8070, "target": 80}])
    stack.kill_daemon("netd", signal.SIGKILL)
    assert f"hk{iid}" in links(stack.netns) and f"husk:{iid}" in nft_ruleset(stack.netns)
    stack.start_daemon("netd")
    assert request(ep(stack, "requests"), "net.list", {})["result"] == []
    assert f"hk{iid}" not in links(stack.netns)
    assert f"husk:{iid}" not in nft_ruleset(stack.netns)


# ---- through the API, with real VMs ------------------------------------------------------------

def manifest(stack, name, ports, replicas=1, command=None):
    m = {"name": name, "runtime": "qemu", "replicas": replicas, "image": f"{stack.kit_dir}/rootfs/hello",
         "resources": {"limits": {"cpu": "1", "memory": "128Mi"}}, "ports": ports}
    if command:
        m["command"] = command
    return m


def deployment(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_api_refuses_ports_with_replicas_and_a_taken_port(stack):
    r = stack.api("POST", "/deployments", json=manifest(stack, "two", [{"published": 8080, "target": 80}], replicas=2))
    assert r.status == 422 and "replicas" in r.text, r
    r = stack.api("POST", "/deployments", json=manifest(stack, "first", [{"published": 8080, "target": 80}]))
    assert r.status in (200, 201), r
    r = stack.api("POST", "/deployments", json=manifest(stack, "second", [{"published": 8080, "target": 80}]))
    assert r.status == 409 and "ports[0].published" in r.text and "default/first" in r.text, r

    # The first one runs a VM on its TAP, with its port published; delete leaves nothing.
    d = stack.wait_for(lambda: (lambda x: x if x and x["status"] == "running" else None)(deployment(stack, "first")),
                       timeout=120, what="first running")
    iid = d["instances"][0]["instance_id"]
    assert f"hk{iid}" in links(stack.netns)
    assert f'comment "husk:{iid}"' in nft_ruleset(stack.netns)
    cmdline = " ".join(open(f"/proc/{d['instances'][0]['pid']}/cmdline").read().split("\0"))
    assert f"ifname=hk{iid}" in cmdline and "husk.ip=10.42." in cmdline
    assert stack.husk("deployment", "delete", "first").returncode == 0
    stack.wait_for(lambda: deployment(stack, "first") is None, timeout=60, what="first purged")
    stack.wait_for(lambda: "hk" not in links(stack.netns).replace("husk", ""), timeout=15, what="no TAP left")
    assert not re.search(r"husk:[0-9a-f]{12}", nft_ruleset(stack.netns))  # only the base rules stay


@pytest.mark.long
def test_port_conflict_backs_off_to_crash_loop(stack):
    holder = ns_popen(stack.netns, "import socket,threading; s=socket.socket(); s.bind(('0.0.0.0', 8099)); "
                      "s.listen(); print('ready', flush=True); threading.Event().wait()")
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = stack.api("POST", "/deployments", json=manifest(stack, "clash", [{"published": 8099, "target": 80}]))
        assert r.status in (200, 201), r
        did = r.json()["id"]
        stack.wait_for(lambda: deployment(stack, "clash")["status"] == "crash_loop_back_off", timeout=150,
                       what="crash_loop_back_off")
        assert not stack.qemu_pids()  # the VM was never started
        ev = stack.api("GET", f"/deployments/{did}/events?limit=200").json()
        items = ev["items"] if isinstance(ev, dict) else ev
        assert any(e["reason"] == "PortAllocationFailed" and "ports[0].published" in e["message"] for e in items), ev
    finally:
        holder.kill()
        holder.wait()


def test_http_in_a_vm_through_its_published_port(stack):
    """busybox httpd in a kit VM: reachable from 127.0.0.1 and the host side of the namespace."""
    host_side(stack)
    r = stack.api("POST", "/deployments", json=manifest(
        stack, "web", [{"published": 8080, "target": 80}],
        command=["/bin/sh", "-c", "echo hello-from-the-vm > /tmp/index.html && exec httpd -f -p 80 -h /tmp"]))
    assert r.status in (200, 201), r
    stack.wait_for(lambda: deployment(stack, "web")["status"] == "running", timeout=120, what="web running")

    def fetch(addr):
        r = ns_python(stack.netns, HTTP_GET, addr, "8080", timeout=20)
        return r.returncode == 0 and "hello-from-the-vm" in r.stdout

    stack.wait_for(lambda: fetch("127.0.0.1"), timeout=60, what="HTTP through 127.0.0.1:8080")
    assert fetch(HOST_ADDR)


def test_proxy_forwarder_tcp_and_udp(tmp_path):
    """forwarder: proxy (what auto falls back to without nftables): the same published ports,
    served by netd's epoll/splice thread, tcp and udp, from 127.0.0.1 and the TAP address."""
    from husk_stack import BUILD
    from netd_util import netns_add

    host, guest = f"hkp-h{os.getpid()}", f"hkp-g{os.getpid()}"
    (tmp_path / "state").mkdir()
    (tmp_path / "run").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/state\nruntime_dir: {tmp_path}/run\nnetd:\n  forwarder: proxy\n")
    log = open(tmp_path / "netd.log", "wb")
    netns_add(host)
    netd = subprocess.Popen(["ip", "netns", "exec", host, str(BUILD / "bin" / "husk-netd"), "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = None
    try:
        endpoint = f"ipc://{tmp_path}/run/netd.requests"
        from husk_stack import wait_for
        wait_for(lambda: "ready" in (tmp_path / "netd.log").read_text(), timeout=10, what="netd ready")
        assert "forwarder proxy" in (tmp_path / "netd.log").read_text()
        r = request(endpoint, "net.attach", {"instance_id": "eeeeeeeeeeee", "ports": [
            {"published": 8080, "target": 80}, {"published": 5353, "target": 53, "protocol": "udp"}]})
        a = r["result"]
        assert "dnat ip to" not in nft_ruleset(host)  # isolation only: the proxy forwards
        guest_standin(host, a, guest)
        server = ns_popen(guest, GUEST_SERVER, "80", "53", "9000", "1000")
        assert server.stdout.readline().strip() == "ready"
        for addr in ("127.0.0.1", a["host_ip"]):
            r = ns_python(host, HTTP_GET, addr, "8080")
            assert r.returncode == 0 and "hello from" in r.stdout, (addr, r.stderr[-500:])
        for _ in range(2):  # the second datagram reuses the client's session
            r = ns_python(host, UDP_ECHO, "127.0.0.1", "5353")
            assert r.stdout.strip() == "echo:ping", r.stderr[-500:]
        # A guest reaches published ports through the proxy, as through DNAT in nft mode, and
        # nothing else on the host (no answer at all, not even a refusal); no route_localnet.
        assert ns_python(guest, TCP_PROBE, a["host_ip"], "8080").stdout.startswith("open")
        r = ns_python(guest, TCP_PROBE, a["host_ip"], "8081")
        assert r.stdout.startswith("closed timed out"), r.stdout
        assert "husk:guest-to-host" in nft_ruleset(host)
        assert sh("ip", "netns", "exec", host, "sysctl", "-n", f"net.ipv4.conf.{a['tap']}.route_localnet").stdout.strip() == "0"
        assert request(endpoint, "net.detach", {"instance_id": "eeeeeeeeeeee"}).get("result") == {}
        assert ns_python(host, TCP_PROBE, "127.0.0.1", "8080").stdout.startswith("closed")
    finally:
        if server:
            server.kill()
            server.wait()
        netd.terminate()
        netd.wait(timeout=10)
        netns_del(guest)
        netns_del(host)


def test_outbound_nat_switch(tmp_path):
    """netd.outbound_nat: off (default), a guest cannot open connections beyond the host; on,
    it can, masqueraded behind the host's address. "Beyond" is one more namespace, wired to the
    host namespace by a veth: nothing leaves the namespaces this test made."""
    from husk_stack import BUILD, wait_for
    from netd_util import netns_add

    tag = os.getpid()
    host, guest, outside = f"hko-h{tag}", f"hko-g{tag}", f"hko-o{tag}"
    procs = []

    def start_netd(nat):
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"state_dir: {tmp_path}/state\nruntime_dir: {tmp_path}/run\n"
                       f"netd:\n  outbound_nat: {'true' if nat else 'false'}\n")
        log = tmp_path / "netd.log"
        before = log.read_text().count(" ready (") if log.exists() else 0
        p = subprocess.Popen(["ip", "netns", "exec", host, str(BUILD / "bin" / "husk-netd"), "--config", str(cfg)],
                             stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: log.read_text().count(" ready (") > before, timeout=10, what="netd ready")
        return p

    (tmp_path / "state").mkdir()
    (tmp_path / "run").mkdir()
    try:
        netns_add(host)
        netns_add(outside)
        sh("ip", "-n", host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", outside)
        sh("ip", "-n", host, "addr", "add", "198.51.100.1/24", "dev", "up0")
        sh("ip", "-n", host, "link", "set", "up0", "up")
        sh("ip", "-n", outside, "addr", "add", "198.51.100.2/24", "dev", "eth0")
        sh("ip", "-n", outside, "link", "set", "eth0", "up")
        # The outside knows no route to the guests: only a masqueraded connection gets an answer.
        server = ns_popen(outside, GUEST_SERVER, "80", "53", "9000", "10")
        procs.append(server)
        assert server.stdout.readline().strip() == "ready"

        netd = start_netd(False)
        procs.append(netd)
        a = request(f"ipc://{tmp_path}/run/netd.requests", "net.attach", {"instance_id": "abcabcabcabc"})["result"]
        guest_standin(host, a, guest)
        assert ns_python(guest, TCP_PROBE, "198.51.100.2", "80").stdout.startswith("closed")

        netd.terminate()
        netd.wait(timeout=10)
        netd = start_netd(True)
        procs.append(netd)
        assert "husk:outbound" in nft_ruleset(host)
        r = ns_python(guest, HTTP_GET, "198.51.100.2", "80")
        assert r.returncode == 0 and "to 198.51.100.1" in r.stdout, (r.stdout, r.stderr[-300:])
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for ns in (guest, outside, host):
            netns_del(ns)


def test_vm_transfer_survives_netd_sigkill_and_delete_cleans_up(stack):
    """The issue's scenario with a real VM: a long download from the guest through its published
    port on 127.0.0.1; netd is killed with SIGKILL in the middle; the download completes; the
    restarted netd re-adopts the VM's network; deleting the deployment leaves no TAP and no rule."""
    size = 48 << 20
    r = stack.api("POST", "/deployments", json=manifest(
        stack, "bulk", [{"published": 9000, "target": 9000}],
        command=["/bin/sh", "-c", f"while true; do dd if=/dev/zero bs=65536 count={size >> 16} 2>/dev/null "
                                  "| nc -l -p 9000; done"]))
    assert r.status in (200, 201), r
    d = stack.wait_for(lambda: (lambda x: x if x and x["status"] == "running" else None)(deployment(stack, "bulk")),
                       timeout=120, what="bulk running")
    iid = d["instances"][0]["instance_id"]
    reader = ns_popen(stack.netns, (
        "import socket, sys, time\n"
        "deadline = time.monotonic() + 60\n"
        "while True:\n"
        "    try:\n"
        "        s = socket.create_connection(('127.0.0.1', 9000), timeout=60); break\n"
        "    except OSError:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.2)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)\n"
        "first = s.recv(65536); n = len(first); print('started', flush=True)\n"
        "while True:\n"
        "    d = s.recv(65536)\n"
        "    if not d: break\n"
        "    n += len(d); time.sleep(0.002)\n"
        "print(n, flush=True)\n"))
    assert reader.stdout.readline().strip() == "started"
    stack.kill_daemon("netd", signal.SIGKILL)
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0 and int(out.split()[-1]) == size, (out, err[-500:])

    stack.start_daemon("netd")
    listed = request(ep(stack, "requests"), "net.list", {})["result"]
    assert [(x["instance_id"], x["ports"][0]["published"]) for x in listed] == [(iid, 9000)]
    assert stack.husk("deployment", "delete", "bulk").returncode == 0
    stack.wait_for(lambda: deployment(stack, "bulk") is None, timeout=60, what="bulk purged")
    stack.wait_for(lambda: f"hk{iid}" not in links(stack.netns), timeout=15, what="TAP gone")
    assert f"husk:{iid}" not in nft_ruleset(stack.netns)
    assert request(ep(stack, "requests"), "net.list", {})["result"] == []


def test_vms_cannot_reach_each_other(stack):
    """Two real VMs: a job in the second pings its own gateway (the host end of its /30: it
    completes) and the first VM's address (dropped between /30s: the job fails)."""
    r = stack.api("POST", "/deployments", json=manifest(
        stack, "target", [], command=["/bin/sh", "-c", "exec sleep 1000"]))
    assert r.status in (200, 201), r
    stack.wait_for(lambda: (deployment(stack, "target") or {}).get("status") == "running", timeout=120,
                   what="target running")
    (a,) = request(ep(stack, "requests"), "net.list", {})["result"]

    def job(name, addr):
        m = manifest(stack, name, [], command=["/bin/sh", "-c", f"exec ping -c 2 -W 2 {addr}"])
        if addr is None:  # its own gateway, as netd gave it on the kernel command line
            m["command"] = ["/bin/sh", "-c", "gw=$(sed -n 's/.*husk[.]gw=\\([0-9.]*\\).*/\\1/p' /proc/cmdline); "
                                             "exec ping -c 2 -W 2 $gw"]
        m["kind"] = "job"
        r = stack.api("POST", "/deployments", json=m)
        assert r.status in (200, 201), r
        return stack.wait_for(lambda: (lambda d: d["status"] if d and d["status"] in ("completed", "failed") else None)(
            deployment(stack, name)), timeout=150, what=f"job {name} done")

    assert job("to-gateway", None) == "completed"
    assert job("to-sibling", a["guest_ip"]) == "failed"


# ---- a warm-pool clone's TAP, taken over by net.attach ---------------------------------------------

# What QEMU does with -netdev tap,ifname=<argv[1]>,script=no for a pool clone: a TAP it creates
# itself (not persistent, down, no address) and holds. Prints the ifindex; then for each line on
# stdin writes one Ethernet frame (behind a zero virtio-net header) and prints the outcome.
TAP_HOLDER = r'''
import fcntl, os, socket, struct, sys
TUNSETIFF, IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x400454CA, 0x0002, 0x1000, 0x4000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", sys.argv[1].encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
print(socket.if_nametoindex(sys.argv[1]), flush=True)
frame = bytes(10) + b"\xff" * 6 + bytes.fromhex("02aabbccddee") + b"\x08\x06" + bytes(28)
for line in sys.stdin:
    try:
        print("wrote", os.write(fd, frame), flush=True)
    except OSError as e:
        print("error", e.errno, flush=True)
'''


def link_info(ns, name):
    """ip's JSON of one link in ns (with its addresses), or None when it does not exist."""
    r = sh("ip", "-n", ns, "-j", "addr", "show", "dev", name, check=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


class PoolTaps:
    """TAP holders standing in for pool clones' QEMUs, inside one namespace; killed at the end."""

    def __init__(self, ns):
        self.ns, self.procs = ns, {}

    def make(self, name):
        p = ns_popen(self.ns, TAP_HOLDER, name, stdin=subprocess.PIPE)
        self.procs[name] = p
        line = p.stdout.readline().strip()
        assert line.isdigit(), (line, p.stderr.read() if p.poll() is not None else "")
        return int(line)

    def write(self, name):
        p = self.procs[name]
        p.stdin.write("frame\n")
        p.stdin.flush()
        return p.stdout.readline().strip()

    def exit(self, name):
        p = self.procs.pop(name)
        p.kill()
        p.wait()

    def close(self):
        for name in list(self.procs):
            self.exit(name)


def test_attach_takes_a_pool_clones_tap_over(tmp_path, netns_available):
    """net.attach with `tap`: the pool clone's TAP (as QEMU made it) becomes hk<instance_id>,
    renamed, not created: same ifindex, up with the host address, its holder's fd still works.
    Anything else named as `tap` is refused as invalid and changes nothing. Detach, a netd
    restart and the TAP going with its QEMU behave as for any TAP."""
    from husk_stack import BUILD, wait_for
    from netd_util import netns_add

    host = f"hkt-h{os.getpid()}"
    endpoint = f"ipc://{tmp_path}/run/netd.requests"
    (tmp_path / "state").mkdir()
    (tmp_path / "run").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/state\nruntime_dir: {tmp_path}/run\n")
    log = tmp_path / "netd.log"
    netd, taps = None, PoolTaps(host)

    def start_netd():
        before = log.read_text().count(" ready (") if log.exists() else 0
        p = subprocess.Popen(["ip", "netns", "exec", host, str(BUILD / "bin" / "husk-netd"), "--config", str(cfg)],
                             stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: log.read_text().count(" ready (") > before, timeout=10, what="netd ready")
        return p

    def stop_netd(p):
        p.terminate()
        p.wait(timeout=10)

    def attach_tap(iid, tap, ports=()):
        return request(endpoint, "net.attach", {"instance_id": iid, "ports": list(ports), "tap": tap})

    try:
        netns_add(host)
        netd = start_netd()

        # Refused, each before anything is created: no attachment, no hk<id>, the device untouched.
        iid = "0123456789ab"
        taps.make("hkp00000000000a")
        sh("ip", "-n", host, "link", "set", "hkp00000000000a", "up")
        sh("ip", "-n", host, "link", "add", "hkp00000000000b", "type", "veth", "peer", "name", "hkv00000000000b")
        sh("ip", "-n", host, "tuntap", "add", "dev", "hkp00000000000c", "mode", "tun")
        bad = {
            "tap0123456789ab": "must be hkp followed by 12 lowercase hex digits",
            "hk0123456789ab": "must be hkp followed by 12 lowercase hex digits",
            "hkp0123456789AB": "must be hkp followed by 12 lowercase hex digits",
            "hkp0123456789abc": "must be a string of at most 15 bytes",
            "hkp999999999999": "no network device hkp999999999999",
            "hkp00000000000a": "hkp00000000000a is up",
            "hkp00000000000b": "hkp00000000000b is not a TAP device",
            "hkp00000000000c": "hkp00000000000c is not a TAP device",
        }
        before = links(host)
        for tap, why in bad.items():
            r = attach_tap(iid, tap, [{"published": 8080, "target": 80}])
            assert r.get("error", {}).get("code") == "invalid", (tap, r)
            assert r["error"]["message"].startswith("tap: ") and why in r["error"]["message"], (tap, r)
        assert request(endpoint, "net.list", {})["result"] == []
        assert f"hk{iid}" not in links(host) and f"husk:{iid}" not in nft_ruleset(host)
        assert [ln.split(":")[1] for ln in links(host).splitlines()] == \
            [ln.split(":")[1] for ln in before.splitlines()]  # every device as it was
        # The port was never reserved: an attach without a tap gets it.
        assert "result" in attach_tap("abcdefabcdef", None, [{"published": 8080, "target": 80}])
        assert request(endpoint, "net.detach", {"instance_id": "abcdefabcdef"}).get("result") == {}

        # Taken over: renamed (same ifindex), addressed, up, no hkp left.
        pool = "hkp5a5a5a5a5a5a"
        index = taps.make(pool)
        assert "UP" not in link_info(host, pool)["flags"]
        r = attach_tap(iid, pool, [{"published": 8080, "target": 80}])
        a = r.get("result")
        assert a and a["tap"] == f"hk{iid}" and a["instance_id"] == iid, r
        info = link_info(host, f"hk{iid}")
        assert info["ifindex"] == index and "UP" in info["flags"], info
        assert [(x["local"], x["prefixlen"]) for x in info["addr_info"] if x["family"] == "inet"] == \
            [(a["host_ip"], 30)], info
        assert link_info(host, pool) is None and pool not in links(host)
        # Its port on 127.0.0.1 needs route_localnet, as on any TAP (iid2 below: off).
        assert sh("ip", "netns", "exec", host, "sysctl", "-n",
                  f"net.ipv4.conf.hk{iid}.route_localnet").stdout.strip() == "1"
        assert f'comment "husk:{iid}"' in nft_ruleset(host)
        assert taps.write(pool).startswith("wrote "), "the holder's fd no longer works"
        # A retried attach (the first answer lost) answers the same, though hkp... is gone.
        assert attach_tap(iid, pool, [{"published": 8080, "target": 80}]).get("result") == a
        assert "pool TAP hkp5a5a5a5a5a5a taken over as hk0123456789ab" in log.read_text()

        # Detach removes it while the holder keeps its fd.
        assert request(endpoint, "net.detach", {"instance_id": iid}).get("result") == {}
        assert f"hk{iid}" not in links(host) and f"husk:{iid}" not in nft_ruleset(host)
        assert taps.procs[pool].poll() is None

        # A netd restart adopts a taken-over TAP; when its QEMU exits the TAP goes, and detach
        # is then no error.
        iid2, pool2 = "222222222222", "hkp222222222222"
        index = taps.make(pool2)
        sh("ip", "netns", "exec", host, "sysctl", "-qw", f"net.ipv4.conf.{pool2}.route_localnet=1")
        assert attach_tap(iid2, pool2).get("result", {}).get("tap") == f"hk{iid2}"
        # No port: route_localnet off, whatever the TAP had.
        assert sh("ip", "netns", "exec", host, "sysctl", "-n",
                  f"net.ipv4.conf.hk{iid2}.route_localnet").stdout.strip() == "0"
        stop_netd(netd)
        netd = start_netd()
        assert [x["instance_id"] for x in request(endpoint, "net.list", {})["result"]] == [iid2]
        assert link_info(host, f"hk{iid2}")["ifindex"] == index
        taps.exit(pool2)
        wait_for(lambda: link_info(host, f"hk{iid2}") is None, timeout=10, what="the TAP gone with its holder")
        assert request(endpoint, "net.detach", {"instance_id": iid2}).get("result") == {}
        assert request(endpoint, "net.list", {})["result"] == []

        # Its QEMU gone while netd was down: the restarted netd forgets the entry of its state file.
        iid3, pool3 = "333333333333", "hkp333333333333"
        taps.make(pool3)
        assert attach_tap(iid3, pool3, [{"published": 8083, "target": 80}]).get("result", {}).get("tap") == f"hk{iid3}"
        stop_netd(netd)
        taps.exit(pool3)
        wait_for(lambda: link_info(host, f"hk{iid3}") is None, timeout=10, what="the TAP gone with its holder")
        netd = start_netd()
        assert request(endpoint, "net.list", {})["result"] == []
        assert f"Instance {iid3}: in the state file but its TAP is gone" in log.read_text()
        assert f"husk:{iid3}" not in nft_ruleset(host)
    finally:
        taps.close()
        if netd:
            netd.kill()
            netd.wait()
        netns_del(host)
