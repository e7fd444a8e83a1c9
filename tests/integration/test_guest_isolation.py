"""test_guest_isolation.py: a guest reaches nothing on the host but the return path of connections
the host opened (issue 10): not the API on loopback, not a host service on 0.0.0.0, not the
gateway's other ports, not with a loopback source or destination, over IPv4 or IPv6, while
published ports keep working from the host, 127.0.0.1 included.

The host side is the stack's namespace; a "host service" is a listener this test starts there
and that records every connection and datagram it gets, so a leak is seen on both ends. The bus
is on ipc:// in every stack (checked below): no guest can reach a unix socket, and were it on
tcp:// it would be one more host service, which the listener stands for.
"""

import json
import re
import uuid

import pytest

from netd_util import guest_standin, netns_del, ns_popen, ns_python, request, sh
from test_netd import HOST_ADDR, HTTP_GET, attach, deployment, ep, guests, host_side, manifest  # noqa: F401

TCP_PORT, UDP_PORT = 7411, 7412  # the host service

# A host service on every address (IPv4 and IPv6, dual stack): one line per connection or datagram.
HOST_SERVICE = r'''
import socket, sys, threading
tcp, udp = int(sys.argv[1]), int(sys.argv[2])
def serve_tcp():
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(("::", tcp)); s.listen(64)
    while True:
        c, a = s.accept()
        print("tcp", a[0], flush=True)
        try:
            c.sendall(b"husk-host-service\n")
        finally:
            c.close()
def serve_udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(("::", udp))
    while True:
        d, a = s.recvfrom(1000)
        print("udp", a[0], d.decode(errors="replace").strip(), flush=True)
for f in (serve_tcp, serve_udp):
    threading.Thread(target=f, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''


@pytest.fixture
def host_service(stack):
    p = ns_popen(stack.netns, HOST_SERVICE, str(TCP_PORT), str(UDP_PORT))
    assert p.stdout.readline().strip() == "ready"
    yield p
    p.kill()


def seen_by(p):
    """What the host service got (it is killed first: its lines are all out)."""
    p.kill()
    out, _ = p.communicate(timeout=10)
    return [line for line in out.splitlines() if line.strip()]


def assert_bus_on_ipc(stack):
    text = stack.config_path.read_text()
    endpoints = re.findall(r"(?:events|requests): *['\"]?([a-z]+)://", text)
    assert endpoints and set(endpoints) == {"ipc"}, text


def route_localnet(stack, tap):
    return sh("ip", "netns", "exec", stack.netns, "cat", f"/proc/sys/net/ipv4/conf/{tap}/route_localnet").stdout.strip()


# ---- a stand-in guest (a namespace behind a veth in the TAP's place): fast and exact -----------

# Inside the guest: connect to each target (v4 or v6 link-local), say open, refused or timeout.
GUEST_PROBE = r'''
import json, socket, sys
out = {}
for name, host, port in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam); s.settimeout(2)
    try:
        addr = socket.getaddrinfo(host, port, fam, socket.SOCK_STREAM)[0][4]
        s.connect(addr); out[name] = "open"
    except ConnectionRefusedError:
        out[name] = "refused"
    except socket.timeout:
        out[name] = "timeout"
    except OSError as e:
        out[name] = "error %s" % e
    finally:
        s.close()
# Datagrams from a loopback source and to loopback: nothing can tell the guest, the host service can.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.2", 0)); u.sendto(b"from-loopback", (sys.argv[2], int(sys.argv[3])))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.sendto(b"to-loopback", ("127.0.0.1", int(sys.argv[3])))
print(json.dumps(out))
'''


@pytest.mark.long
def test_standin_guest_cannot_reach_the_host(stack, host_service, guests):
    """A stand-in guest whose link has route_localnet on (as a TAP with ports on 127.0.0.1
    has) routes 127.0.0.0/8 to its gateway, sends from a loopback source and tries the host
    over IPv6 link-local: every attempt is dropped unanswered. What stays: a sibling's published
    port through the gateway (as from anywhere), echo to its own gateway, and the host reaching
    the guest through its published port on 127.0.0.1, a host address and the TAP address."""
    host_side(stack)
    a = attach(stack, "9a9a9a9a9a9a", [{"published": 8080, "target": 80}])
    guests(stack, attach(stack, "9b9b9b9b9b9b", [{"published": 8090, "target": 80}]))
    guest = f"hkg-{uuid.uuid4().hex[:8]}"
    server = None
    try:
        guest_standin(stack.netns, a, guest)
        assert route_localnet(stack, a["tap"]) == "1"
        gw = a["host_ip"]
        # The guest's loopback goes to its gateway, and it may send from a loopback source.
        sh("ip", "-n", guest, "addr", "del", "127.0.0.1/8", "dev", "lo")
        sh("ip", "-n", guest, "route", "add", "127.0.0.0/8", "via", gw, "dev", "eth0")
        sh("ip", "-n", guest, "addr", "add", "127.0.0.2/32", "dev", "eth0")
        for dev in ("all", "eth0"):
            sh("ip", "netns", "exec", guest, "sysctl", "-qw", f"net.ipv4.conf.{dev}.route_localnet=1")
        # IPv6 link-local on both ends, once duplicate address detection is over.
        def link_local(ns, dev):
            out = sh("ip", "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link").stdout
            return "tentative" not in out and re.search(r"inet6 (fe80::[0-9a-f:]+)/", out)
        tap_ll = stack.wait_for(lambda: link_local(stack.netns, a["tap"]), timeout=10, what="TAP link-local")
        stack.wait_for(lambda: link_local(guest, "eth0"), timeout=10, what="guest link-local")
        targets = [("api-loopback", "127.0.0.1", stack.port), ("service-loopback", "127.0.0.1", TCP_PORT),
                   ("service-gateway", gw, TCP_PORT), ("service-host-address", HOST_ADDR, TCP_PORT),
                   ("gateway-api-port", gw, stack.port), ("gateway-port-22", gw, 22),
                   ("service-ipv6-link-local", f"{tap_ll.group(1)}%eth0", TCP_PORT),
                   # Only the guard catches this one: DNAT would take it to the sibling.
                   ("sibling-published-loopback", "127.0.0.1", 8090),
                   ("sibling-published-gateway", gw, 8090)]
        r = ns_python(guest, GUEST_PROBE, json.dumps(targets), gw, str(UDP_PORT))
        assert r.returncode == 0, r.stderr[-800:]
        got = json.loads(r.stdout)
        assert got == {name: "open" if name == "sibling-published-gateway" else "timeout" for name, _, _ in targets}, got
        # Echo to its own gateway is the one thing a guest may start, to no other host address.
        def ping(addr):
            r = sh("ip", "netns", "exec", guest, str(stack.kit_dir / "rootfs/hello/bin/busybox"), "ping", "-c", "1",
                   "-W", "2", addr, check=False)
            assert "packets received" in r.stdout, r.stdout + r.stderr
            return "1 packets received" in r.stdout
        assert ping(gw) and not ping(HOST_ADDR)

        # The way back of what the host opens still works: its published port, from everywhere.
        server = ns_popen(guest, "import http.server as h; h.HTTPServer(('0.0.0.0', 80), h.SimpleHTTPRequestHandler)"
                          ".serve_forever()", cwd="/")
        for addr in ("127.0.0.1", HOST_ADDR, gw):
            stack.wait_for(lambda: ns_python(stack.netns, HTTP_GET, addr, "8080").returncode == 0, timeout=10,
                           what=f"published port on {addr}")
        assert seen_by(host_service) == []
    finally:
        if server:
            server.kill()
            server.wait()
        netns_del(guest)


def test_route_localnet_only_where_loopback_ports_need_it(stack):
    """route_localnet is on only for a TAP with a port published on 127.0.0.1 (explicitly or
    as one of every local address); a replacement that takes such a port over gets it, and the
    instance it took it from keeps it for the connections it still serves."""
    host_side(stack)
    none = attach(stack, "100000000001", [])
    other = attach(stack, "100000000002", [{"published": 8081, "target": 80, "host_ip": HOST_ADDR}])
    every = attach(stack, "100000000003", [{"published": 8082, "target": 80}])
    lo = attach(stack, "100000000004", [{"published": 8083, "target": 80, "host_ip": "127.0.0.1"}])
    assert [route_localnet(stack, x["tap"]) for x in (none, other, every, lo)] == ["0", "0", "1", "1"]

    def att(iid):
        return request(ep(stack, "requests"), "net.attach", {"instance_id": iid, "deployment_id": "dep-lo",
                                                             "ports": [{"published": 8084, "target": 80}]})["result"]
    old = att("200000000001")
    assert route_localnet(stack, old["tap"]) == "1"
    new = att("200000000002")
    assert (route_localnet(stack, old["tap"]), route_localnet(stack, new["tap"])) == ("1", "1")
    assert request(ep(stack, "requests"), "net.detach", {"instance_id": "200000000001"}).get("result") == {}
    assert route_localnet(stack, new["tap"]) == "1"


# ---- a real VM ---------------------------------------------------------------------------------

def guest_script(api_port):
    """busybox sh in the guest: the attacks, one PROBE line each, then serve its published port."""
    return f"""
gw=$(sed -n 's/.*husk[.]gw=\\([0-9.]*\\).*/\\1/p' /proc/cmdline)
probe() {{  # name host port: open, refused or timeout
    name=$1; shift
    out=$(printf 'GET /deployments HTTP/1.0\\r\\n\\r\\n' | nc -w 3 "$@" 2>&1); rc=$?
    first=$(echo "$out" | head -n 1)
    case "$first" in
    "nc: "*refused*) r=refused ;;
    "nc: timed out"*) r=timeout ;;
    *) if [ $rc = 0 ]; then r=open; else r=error; fi ;;
    esac
    echo "PROBE $name $r $first"
}}
ping -c 1 -W 5 $gw >/dev/null 2>&1 && echo "PROBE ping-gateway answered" || echo "PROBE ping-gateway silent"
# Loopback goes to the gateway; loopback sources and answers from loopback are allowed here.
ip addr del 127.0.0.1/8 dev lo
ip route add 127.0.0.0/8 via $gw dev eth0
ip addr add 127.0.0.2/32 dev eth0
echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
probe api-loopback 127.0.0.1 {api_port}
probe service-loopback 127.0.0.1 {TCP_PORT}
probe service-gateway $gw {TCP_PORT}
probe service-host-address {HOST_ADDR} {TCP_PORT}
probe gateway-api-port $gw {api_port}
probe gateway-port-22 $gw 22
# Datagrams (busybox's tftp is its one udp client: the request names the "file"), the last one
# from a loopback source.
timeout 2 tftp -g -l /tmp/x -r udp-gateway $gw {UDP_PORT}
timeout 2 tftp -g -l /tmp/x -r to-loopback 127.0.0.1 {UDP_PORT}
ip route add $gw/32 dev eth0 src 127.0.0.2
timeout 2 tftp -g -l /tmp/x -r from-loopback $gw {UDP_PORT}
ip route del $gw/32 dev eth0 src 127.0.0.2
echo PROBES-DONE
echo hello-from-the-vm > /tmp/index.html
exec httpd -f -p 80 -h /tmp
"""


@pytest.mark.long
def test_vm_cannot_reach_the_host(stack, host_service):
    """A real kit VM attacks the host: the API on loopback (its own loopback removed, 127/8
    routed to its gateway), a host service on 0.0.0.0 through the gateway and a host address,
    the gateway's other ports (no answer at all, not even a refusal), datagrams from a loopback
    source and to loopback. None gets through. Its published port still answers the host on
    127.0.0.1, a host address and the TAP address; its gateway still answers ping."""
    host_side(stack)
    assert_bus_on_ipc(stack)
    r = stack.api("POST", "/deployments", json=manifest(
        stack, "attacker", [{"published": 8080, "target": 80}], command=["/bin/sh", "-c", guest_script(stack.port)]))
    assert r.status in (200, 201), r
    d = stack.wait_for(lambda: (lambda x: x if x and x["status"] == "running" and x["instances"] else None)(
        deployment(stack, "attacker")), timeout=120, what="attacker running")
    iid = d["instances"][0]["instance_id"]
    log = stack.instances_dir / iid / "console.log"
    stack.wait_for(lambda: "PROBES-DONE" in log.read_text(errors="replace"), timeout=120, what="the guest's probes")
    probes = dict(re.findall(r"PROBE (\S+) (\S+)", log.read_text(errors="replace")))
    assert probes == {"ping-gateway": "answered", "api-loopback": "timeout", "service-loopback": "timeout",
                      "service-gateway": "timeout", "service-host-address": "timeout",
                      "gateway-api-port": "timeout", "gateway-port-22": "timeout"}, probes

    (a,) = request(ep(stack, "requests"), "net.list", {})["result"]

    def fetch(addr):
        r = ns_python(stack.netns, HTTP_GET, addr, "8080", timeout=20)
        return r.returncode == 0 and "hello-from-the-vm" in r.stdout

    for addr in ("127.0.0.1", HOST_ADDR, a["host_ip"]):
        stack.wait_for(lambda: fetch(addr), timeout=60, what=f"HTTP through {addr}:8080")
    assert seen_by(host_service) == []
