#!/usr/bin/python3
"""bench_exec.py: kit mode. (1) exec round trip: `/bin/true` in a running kit VM, p50/p99, through
the whole path (REST -> apiserver -> vmm-driver -> husk-agent and back) and through vmm-driver's
bus request alone, against the same exec frame sent straight to the agent of a bare QEMU boot of
the same kit. (2) job start-to-exit-code: `husk apply` of a job whose command exits at once until
instance.exited carries its exit code, against a bare QEMU boot of the same kit to agent ready.
Runs alternate so that machine noise hits both sides alike. Nothing is asserted.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_exec.py)
Env: BENCH_RUNS (jobs and boots, default 5), BENCH_EXECS (execs per path, default 50)."""

import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from husk_stack import BUILD, Stack, spawn_virtiofsd, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
EXECS = int(os.environ.get("BENCH_EXECS", "50"))

# Runs inside the stack's namespace (the API listens on its loopback): N POSTs, one connection
# each as the CLI makes them, durations out as JSON.
HTTP_LOOP = r"""
import http.client, json, sys, time
port, path, n, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
body = json.dumps({"command": ["/bin/true"]})
out = []
for _ in range(n):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", path, body, {"Content-Type": "application/json", "Authorization": "Bearer " + token})
    r = c.getresponse(); data = r.read(); c.close()
    assert r.status == 200 and json.loads(data)["exit_status"] == 0, data
    out.append(time.monotonic() - t0)
print(json.dumps(out))
"""


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def bare_argv(argv, keep_fs=False):
    """husk's QEMU command line without what needs husk's helpers running: the image's virtiofsd
    socket (unless keep_fs) and netd's TAP. What remains boots the same kernel, initrd and agent."""
    out, skip = [], False
    for k, a in enumerate(argv):
        if skip:
            skip = False
            continue
        nxt = argv[k + 1] if k + 1 < len(argv) else b""
        if a in (b"-chardev", b"-device", b"-netdev") and (
                (not keep_fs and (nxt.startswith(b"socket,id=fs0") or nxt.startswith(b"vhost-user-fs"))) or
                a == b"-netdev" or nxt.startswith(b"virtio-net")):
            skip = True
            continue
        out.append(a)
    return out


class Agent:
    """The agent channel of a bare QEMU: frames over agent.sock."""

    def __init__(self, path, deadline):
        while True:
            self.s = socket.socket(socket.AF_UNIX)
            try:
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError("agent.sock never appeared")
                time.sleep(0.002)
        self.buf = b""

    def send(self, obj):
        body = msgpack.packb(obj)
        self.s.sendall(struct.pack(">I", len(body)) + body)

    def recv(self, deadline):
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("agent socket closed")
            self.buf += chunk
        n = struct.unpack(">I", self.buf[:4])[0]
        frame, self.buf = msgpack.unpackb(self.buf[4:4 + n], raw=False), self.buf[4 + n:]
        return frame


def bare_vm(argv, d):
    p = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    return p


def bare_boot(argv, timeout=60.0):
    """Seconds from QEMU's start until its agent says ready."""
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        t0 = time.monotonic()
        p = bare_vm(argv, d)
        try:
            deadline = t0 + timeout
            a = Agent(os.path.join(d, "agent.sock"), deadline)
            a.send({"type": "hello", "id": 1, "version": 1})
            while True:
                f = a.recv(deadline)
                if f.get("type") == "ready" or (f.get("type") == "hello" and f.get("ready")):
                    return time.monotonic() - t0
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()


def bare_execs(argv, image, n, timeout=60.0):
    """exec round trips straight to the agent of a bare VM that serves the same image the same
    way (a virtiofsd of its own, the same start frame without a command): what is left between
    this and husk's figure is husk's path, not the guest's file system."""
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        fs = spawn_virtiofsd(image, f"{d}/vfs.sock", cwd=d)
        p = bare_vm(argv, d)
        try:
            deadline = time.monotonic() + timeout
            a = Agent(os.path.join(d, "agent.sock"), deadline)
            a.send({"type": "hello", "id": 1, "version": 1})
            while a.recv(deadline).get("type") != "hello":
                pass
            a.send({"type": "start", "id": 2, "mode": "rootfs", "tag": "rootfs", "command": None, "env": {},
                    "kind": "worker", "hostname": "bench"})
            f = a.recv(deadline)
            assert f.get("type") == "start", f
            out = []
            for i in range(n):
                t0 = time.monotonic()
                a.send({"type": "exec", "id": 100 + i, "argv": ["/bin/true"], "env": {}, "timeout_ms": 10000})
                while True:
                    f = a.recv(time.monotonic() + 30)
                    if f.get("id") == 100 + i:
                        break
                assert f.get("type") == "exec" and f.get("exit_status") == 0, f
                out.append(time.monotonic() - t0)
            return out
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
            fs.send_signal(signal.SIGKILL)
            fs.wait()


def bus_execs(stack, instance_id, n):
    """instance.exec to vmm-driver over its ROUTER socket, as apiserver sends it."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"ipc://{stack.dir}/run/vmm-driver.requests")
    out = []
    try:
        for i in range(n):
            req = {"id": i + 1, "deadline": int(time.time() * 1000) + 30000,
                   "args": {"instance_id": instance_id, "argv": ["/bin/true"], "timeout_ms": 10000}}
            t0 = time.monotonic()
            s.send_multipart([b"", b"instance.exec", msgpack.packb(req)])
            if not s.poll(30000):
                raise TimeoutError("instance.exec: no reply")
            _, _, body = s.recv_multipart()
            reply = msgpack.unpackb(body, raw=False)
            assert reply.get("result", {}).get("exit_status") == 0, reply
            out.append(time.monotonic() - t0)
    finally:
        s.close()
    return out


def apply(stack, text):
    # nsenter, not `husk-stack exec`: the measurement is husk's, not the dev tool's.
    subprocess.run(["nsenter", f"--net=/run/netns/{stack.netns}", str(stack.bin_dir / "husk"),
                    "--host", stack.host, "--token", stack.token, "apply", "-f", "-"], input=text.encode(), check=True,
                   stdout=subprocess.DEVNULL)


def manifest(stack, name, kind, command):
    return (f"deployments:\n  {name}:\n    name: {name}\n    kind: {kind}\n"
            f"    image: {stack.kit_dir}/rootfs/hello\n    command: {json.dumps(command)}\n"
            f"    resources: {{limits: {{memory: 128Mi}}}}\n")


def wait_event(sub, etype, name_of, timeout=60):
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not sub.poll(int(left * 1000)):
            raise TimeoutError(f"no {etype}")
        t, body = sub.recv_multipart()
        b = msgpack.unpackb(body, raw=False)
        if t == etype.encode() and name_of(b):
            return time.monotonic(), b


def delete_and_wait(stack, name):
    stack.husk("deployment", "delete", name, check=True)
    wait_for(lambda: stack.husk("deployment", "inspect", name).returncode == 4, timeout=60)


def line(label, values):
    return (f"  {label:<28}: p50 {pct(values, 50) * 1000:7.1f} ms  p99 {pct(values, 99) * 1000:7.1f} ms  "
            f"(min {min(values) * 1000:.1f}, n {len(values)})")


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        stack = Stack(d + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(f"ipc://{stack.dir}/run/vmm-driver.events")
        for t in (b"instance.ready", b"instance.exited"):
            sub.setsockopt(zmq.SUBSCRIBE, t)
        time.sleep(0.3)
        try:
            # A worker to exec in; its QEMU command line is the baseline's.
            apply(stack, manifest(stack, "svc", "worker", ["/bin/sleep", "1000000"]))
            _, inst = wait_event(sub, "instance.ready", lambda b: True)
            full = Path(f"/proc/{inst['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            argv = bare_argv(full)
            # The bare VM's own virtiofsd socket, in its own directory.
            argv_fs = [a.replace(f"path={stack.instances_dir}/{inst['instance_id']}/vfs.sock".encode(), b"path=vfs.sock")
                       for a in bare_argv(full, keep_fs=True)]
            dep = inst["deployment_id"]
            bus_execs(stack, inst["instance_id"], 3)  # warm-up

            raw = bare_execs(argv_fs, stack.kit_dir / "rootfs/hello", EXECS)
            bus = bus_execs(stack, inst["instance_id"], EXECS)
            r = subprocess.run(["nsenter", f"--net=/run/netns/{stack.netns}", sys.executable, "-c", HTTP_LOOP,
                                str(stack.port), f"/deployments/{dep}/exec", str(EXECS), stack.token],
                               capture_output=True, text=True, check=True)
            rest = json.loads(r.stdout)
            delete_and_wait(stack, "svc")

            boots, jobs = [], []
            for i in range(RUNS):
                boots.append(bare_boot(argv))
                name = f"job{i}"
                while sub.poll(0):  # what the previous deployment's end published
                    sub.recv_multipart()
                t0 = time.monotonic()
                apply(stack, manifest(stack, name, "job", ["/bin/true"]))
                t1, b = wait_event(sub, "instance.exited", lambda b: True)
                assert b["exit_status"] == 0, b
                jobs.append(t1 - t0)
                delete_and_wait(stack, name)
        except BaseException:
            for n in ("vmm-driver", "scheduler", "apiserver"):
                print(f"--- {n}.log", file=sys.stderr)
                print(stack.log_tail(n, 15), file=sys.stderr)
            raise
        finally:
            sub.close()
            stack.down(purge=True)

    print(f"exec round trip of /bin/true, {EXECS} each (accel tcg, 1 vCPU, 128 MiB):")
    print(line("bare VM agent (exec frame)", raw))
    print(line("vmm-driver instance.exec", bus))
    print(line("REST POST .../exec", rest))
    print(f"  ratio bus/bare (p50)        : {pct(bus, 50) / pct(raw, 50):.3f}   REST/bare: {pct(rest, 50) / pct(raw, 50):.3f}")
    print(f"job start-to-exit-code over {RUNS} alternating runs (command /bin/true):")
    print(f"  bare qemu to agent ready    : median {statistics.median(boots) * 1000:7.1f} ms  (min {min(boots) * 1000:.1f})")
    print(f"  husk apply to exit code     : median {statistics.median(jobs) * 1000:7.1f} ms  (min {min(jobs) * 1000:.1f})")
    print(f"  ratio job/bare boot         : {statistics.median(jobs) / statistics.median(boots):.3f}")
    print("  (the job adds virtiofsd, the overlay mount, the workload and the power-off to the boot)")


if __name__ == "__main__":
    main()
