"""netd_util.py: speak to husk-netd over the bus (SCHEMA.md alone) and stand in for a guest.

A "guest stand-in" replaces the TAP netd made for an instance by a veth pair of the same name
whose peer lives in a namespace of its own holding the guest address: the path a packet takes
through the host (DNAT, isolation, masquerade) is exactly the one to a VM, and a process in that
namespace plays the guest. Everything here runs inside namespaces the caller created.
"""

import os
import subprocess
import time

import msgpack
import zmq

_ctx = zmq.Context.instance()


def request(endpoint, method, args, timeout_ms=10000):
    """One request to a ROUTER endpoint; returns the reply map ({id, result} or {id, error})."""
    sock = _ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        rid = int(time.monotonic_ns() & 0xFFFFFFFF)
        body = {"id": rid, "deadline": int(time.time() * 1000) + timeout_ms, "args": args}
        sock.send_multipart([b"", method.encode(), msgpack.packb(body)])
        if not sock.poll(timeout_ms):
            raise TimeoutError(f"{method}: no reply from {endpoint}")
        frames = sock.recv_multipart()
        assert frames[0] == b"" and frames[1] == b"reply" and len(frames) == 3, frames[:2]
        reply = msgpack.unpackb(frames[2], raw=False)
        assert reply["id"] == rid
        return reply
    finally:
        sock.close()


def handshake(receive, trigger, match, timeout=10.0, interval=0.2):
    """ZeroMQ's slow joiner without a sleep: a SUB socket receives nothing until its subscription
    reached the publisher, and nothing says when. So trigger() a harmless event, and again every
    interval, until receive(timeout_ms) (a list of (type, body)) yields one that match(type, body)
    accepts: from then on the subscription is in place. Returns every event received."""
    deadline = time.monotonic() + timeout
    got = []
    while True:
        trigger()
        until = min(deadline, time.monotonic() + interval)
        while (left := until - time.monotonic()) > 0:
            for t, b in receive(int(left * 1000) + 1):
                got.append((t, b))
                if match(t, b):
                    return got
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no handshake event within {timeout:g} s (received {[t for t, _ in got]})")


class Subscriber:
    """SUB socket on one PUB endpoint, collecting [type, body] as they come."""

    def __init__(self, endpoint, prefix=""):
        self.sock = _ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sock.connect(endpoint)
        self.seen = []

    def poll(self, timeout_ms=100):
        while self.sock.poll(timeout_ms):
            t, b = self.sock.recv_multipart()
            self.seen.append((t.decode(), msgpack.unpackb(b, raw=False)))
            timeout_ms = 0
        return self.seen

    def handshake(self, trigger, match, timeout=10.0):
        """handshake() on this socket; what it received is dropped from seen."""
        def receive(timeout_ms):
            n = len(self.seen)
            return self.poll(timeout_ms)[n:]
        handshake(receive, trigger, match, timeout=timeout)
        self.seen.clear()

    def close(self):
        self.sock.close()


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def netns_add(name):
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def netns_del(name):
    sh("ip", "netns", "del", name, check=False)


def guest_standin(host_ns, attachment, guest_ns):
    """Swap the TAP of attachment (net.attach's result) in host_ns for a veth whose peer is eth0
    of guest_ns, addressed as the guest would be (guest_ip/30, default route via host_ip), with
    the route_localnet netd gave the TAP."""
    tap, host_ip, guest_ip = attachment["tap"], attachment["host_ip"], attachment["guest_ip"]
    prefix = attachment["prefix"]
    localnet = sh("ip", "netns", "exec", host_ns, "cat", f"/proc/sys/net/ipv4/conf/{tap}/route_localnet").stdout.strip()
    netns_add(guest_ns)
    sh("ip", "-n", host_ns, "link", "del", tap)
    sh("ip", "-n", host_ns, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", guest_ns)
    sh("ip", "-n", host_ns, "addr", "add", f"{host_ip}/{prefix}", "dev", tap)
    sh("ip", "-n", host_ns, "link", "set", tap, "up")
    sh("ip", "netns", "exec", host_ns, "sysctl", "-qw", f"net.ipv4.conf.{tap}.route_localnet={localnet}")
    sh("ip", "-n", guest_ns, "link", "set", "eth0", "address", attachment["mac"])
    sh("ip", "-n", guest_ns, "addr", "add", f"{guest_ip}/{prefix}", "dev", "eth0")
    sh("ip", "-n", guest_ns, "link", "set", "eth0", "up")
    sh("ip", "-n", guest_ns, "route", "add", "default", "via", host_ip)


def nft_ruleset(ns):
    return sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "husk", check=False).stdout


def links(ns):
    return sh("ip", "-n", ns, "-o", "link", "show").stdout


def ns_python(ns, code, *args, timeout=60, **kw):
    """Run a Python snippet inside ns; returns CompletedProcess."""
    return subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code, *args],
                          capture_output=True, text=True, timeout=timeout, **kw)


def ns_popen(ns, code, *args, **kw):
    return subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", code, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# A tiny server for a guest stand-in: tcp echo-ish HTTP on argv[1], udp echo on argv[2],
# and a bulk source on argv[3] that sends argv[4] bytes to whoever connects.
GUEST_SERVER = r'''
import os, socket, sys, threading
tcp_port, udp_port, bulk_port, bulk_bytes = (int(a) for a in sys.argv[1:5])
def http():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", tcp_port)); s.listen(256)
    while True:
        c, a = s.accept()
        try:
            c.recv(4096)
            body = ("hello from %s to %s\n" % (socket.gethostname(), a[0])).encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        finally:
            c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", udp_port))
    while True:
        d, a = s.recvfrom(65536); s.sendto(b"echo:" + d, a)
def bulk():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", bulk_port)); s.listen(16)
    chunk = b"x" * 65536
    while True:
        c, _ = s.accept()
        def send(c=c):
            left = bulk_bytes
            try:
                while left > 0:
                    n = c.send(chunk[:min(left, len(chunk))]); left -= n
            finally:
                c.close()
        threading.Thread(target=send, daemon=True).start()
for f in (http, udp, bulk):
    threading.Thread(target=f, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''
