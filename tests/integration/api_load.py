"""api_load.py: hostile HTTP load on the apiserver, shared by test_api_load.py and
tests/bench/bench_api_load.py.

LOAD_SCRIPT runs inside the stack's network namespace (the API listens on its loopback; every
byte goes to 127.0.0.1): it opens log followers, half-sent request heads and idle connections,
holds them all, and times GET /deployments meanwhile. Arguments: one JSON object
{port, deployment_id, followers, half_sent, idle, probes, probe_timeout, idle_probes, auth} (auth: an
Authorization header line, the test admin's); the
result is one JSON object on stdout:
  idle_s:      GET /deployments durations before any load (idle_probes of them)
  loaded_s:    the same under load; None for a probe that got no 200 within probe_timeout
  followers:   {status line code or "none": count} of the followers' answers
  connected:   connections of the load that the kernel completed
Everything is bounded: each phase has a deadline, and the script closes every socket it opened.
"""

import json

from husk_stack import PYTHON

LOAD_SCRIPT = r"""
import json, resource, select, socket, sys, time
a = json.loads(sys.argv[1])
port = a["port"]
auth = a["auth"].encode()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def get(timeout):
    # One GET /deployments on a connection of its own, as the CLI makes them: seconds until
    # the whole 200 answer arrived, or None.
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = socket.socket()
    try:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /deployments HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + b"Connection: close\r\n\r\n")
        data = b""
        while time.monotonic() < deadline:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
        if data.startswith(b"HTTP/1.1 200 ") and time.monotonic() <= deadline:
            return time.monotonic() - t0
    except OSError:
        pass
    finally:
        s.close()
    return None

def open_nb(n):
    out = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        out.append(s)
    return out

def wait_connected(socks, deadline):
    # The kernel completed the handshake (the server may not have accepted yet).
    pending = list(socks)
    done = []
    while pending and time.monotonic() < deadline:
        _, w, _ = select.select([], pending[:500], [], max(0.0, min(0.2, deadline - time.monotonic())))
        for s in w:
            pending.remove(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(s)
    return done

idle_s = [get(a["probe_timeout"]) for _ in range(a["idle_probes"])]
opened = []
try:
    # Followers first: each sends its whole request and gets its status line (200 and a
    # stream, or 503 when the follower slots are full).
    followers = open_nb(a["followers"])
    opened += followers
    req = ("GET /deployments/%s/logs?follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n"
           % (a["deployment_id"], a["auth"])).encode()
    connected = wait_connected(followers, time.monotonic() + 10)
    for s in connected:
        s.setblocking(True)
        s.sendall(req)
        s.setblocking(False)
    answers = {}
    pending = {s: b"" for s in connected}
    deadline = time.monotonic() + 15
    while pending and time.monotonic() < deadline:
        r, _, _ = select.select(list(pending)[:500], [], [], max(0.0, min(0.2, deadline - time.monotonic())))
        for s in r:
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            pending[s] += chunk
            if b"\r\n" in pending[s] or not chunk:
                line = pending.pop(s).split(b"\r\n")[0].split(b" ")
                code = line[1].decode() if len(line) > 1 else "none"
                answers[code] = answers.get(code, 0) + 1
    answers["none"] = answers.get("none", 0) + len(pending) + len(followers) - len(connected)

    half = open_nb(a["half_sent"])
    opened += half
    idle = open_nb(a["idle"])
    opened += idle
    half_connected = wait_connected(half, time.monotonic() + 10)
    for s in half_connected:
        s.setblocking(True)
        s.sendall(b"GET /deployments HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow")
        s.setblocking(False)
    idle_connected = wait_connected(idle, time.monotonic() + 10)

    loaded_s = []
    for _ in range(a["probes"]):
        loaded_s.append(get(a["probe_timeout"]))
    print(json.dumps({"idle_s": idle_s, "loaded_s": loaded_s, "followers": answers,
                      "connected": len(connected) + len(half_connected) + len(idle_connected)}))
finally:
    for s in opened:
        s.close()
"""

# Runs inside the namespace: a POST whose body is shorter than its Content-Length; prints the
# seconds until the server closed the connection (or null after `wait` seconds) and the status
# line it answered, if any.
SHORT_BODY_SCRIPT = r"""
import json, socket, sys, time
port, wait, auth = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3].encode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
t0 = time.monotonic()
s.sendall(b"POST /deployments HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + b"Content-Type: application/json\r\n"
          b"Content-Length: 100\r\n\r\n{\"name\": ")
data, closed = b"", None
while time.monotonic() - t0 < wait:
    s.settimeout(max(0.001, wait - (time.monotonic() - t0)))
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    except OSError:
        chunk = b""
    if not chunk:
        closed = time.monotonic() - t0
        break
    data += chunk
s.close()
print(json.dumps({"closed_after_s": closed, "status_line": data.split(b"\r\n")[0].decode(errors="replace")}))
"""


def auth_line(stack):
    """The test admin's Authorization header as a request line ("" without a session)."""
    return "".join(f"{k}: {v}\r\n" for k, v in stack.auth_header().items())


def run_load(stack, deployment_id, followers=50, half_sent=100, idle=500, probes=5, probe_timeout=2.0,
             idle_probes=0):
    args = {"port": stack.port, "deployment_id": deployment_id, "followers": followers, "half_sent": half_sent,
            "idle": idle, "probes": probes, "probe_timeout": probe_timeout, "idle_probes": idle_probes,
            "auth": auth_line(stack)}
    r = stack.exec(PYTHON, "-c", LOAD_SCRIPT, json.dumps(args), timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"load script failed ({r.returncode}): {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def short_body(stack, wait):
    r = stack.exec(PYTHON, "-c", SHORT_BODY_SCRIPT, stack.port, wait, auth_line(stack), timeout=wait + 30)
    if r.returncode != 0:
        raise RuntimeError(f"short body script failed ({r.returncode}): {r.stdout}{r.stderr}")
    return json.loads(r.stdout)

