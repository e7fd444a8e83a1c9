#!/usr/bin/python3
"""bench_apply.py: apply-to-ready. `husk apply` of a one-replica kit deployment until the guest
agent reports ready (instance.ready on the bus), against a bare QEMU start of the very same
command line (taken from the VM husk started) until the same agent's ready frame arrives.
Runs alternate between the two so that machine noise hits both alike.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_apply.py)
Env: BENCH_RUNS (default 7)."""

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
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def read_frame(sock, deadline):
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("agent socket closed")
        buf += chunk
    n = struct.unpack(">I", buf[:4])[0]
    return msgpack.unpackb(buf[4:4 + n], raw=False)


def bare_argv(argv):
    """husk's command line without netd's TAP (it lives in the stack's namespace); the kit-mode
    virtio-fs device stays: bare_boot serves it with a virtiofsd of its own."""
    out, skip = [], False
    for k, a in enumerate(argv):
        if skip:
            skip = False
            continue
        nxt = argv[k + 1] if k + 1 < len(argv) else b""
        if a == b"-netdev" or (a == b"-device" and nxt.startswith(b"virtio-net")):
            skip = True
            continue
        out.append(a)
    return out


def bare_boot(argv, image, timeout=60.0):
    """Start QEMU as husk would, in a fresh dir (with the image's virtiofsd when the command line
    has the virtio-fs device, as husk starts it); seconds until the agent says it is ready."""
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        t0 = time.monotonic()
        fs = None
        if any(a.startswith(b"vhost-user-fs") for a in argv):
            fs = subprocess.Popen(["/usr/lib/qemu/virtiofsd", f"--socket-path={d}/vfs.sock", "-o", f"source={image}",
                                   "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "no_posix_lock"],
                                  cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
            while not os.path.exists(f"{d}/vfs.sock"):
                time.sleep(0.001)
        p = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = t0 + timeout
            while True:
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(os.path.join(d, "agent.sock"))
                    break
                except OSError:
                    s.close()
                    if time.monotonic() > deadline:
                        raise TimeoutError("agent.sock never appeared")
                    time.sleep(0.002)
            hello = msgpack.packb({"type": "hello", "id": 1, "version": 1})
            s.sendall(struct.pack(">I", len(hello)) + hello)
            while True:
                f = read_frame(s, deadline)
                if f.get("type") == "ready" or (f.get("type") == "hello" and f.get("ready")):
                    return time.monotonic() - t0
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
            if fs:
                fs.send_signal(signal.SIGKILL)
                fs.wait()


def husk_apply(stack, sub, name):
    """Seconds from `husk apply` until instance.ready of that deployment."""
    manifest = (f"deployments:\n  {name}:\n    name: {name}\n    replicas: 1\n"
                f"    image: {stack.kit_dir}/rootfs/hello\n"
                f"    resources: {{limits: {{memory: 128Mi}}}}\n")
    while sub.poll(0):
        sub.recv_multipart()
    t0 = time.monotonic()
    # nsenter, not `husk-stack exec`: the measurement is husk's, not the dev tool's.
    subprocess.run(["nsenter", f"--net=/run/netns/{stack.netns}", str(stack.bin_dir / "husk"),
                    "--host", stack.host, "apply", "-f", "-"], input=manifest.encode(), check=True,
                   stdout=subprocess.DEVNULL)
    while True:
        if not sub.poll(60000):
            raise TimeoutError(f"{name}: no instance.ready")
        etype, body = sub.recv_multipart()
        if etype == b"instance.ready":
            return time.monotonic() - t0, msgpack.unpackb(body, raw=False)


def delete_and_wait(stack, name):
    stack.husk("deployment", "delete", name, check=True)
    wait_for(lambda: stack.husk("deployment", "inspect", name).returncode == 4, timeout=60)


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        stack = Stack(d + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(f"ipc://{stack.dir}/run/vmm-driver.events")
        sub.setsockopt(zmq.SUBSCRIBE, b"instance.ready")
        time.sleep(0.3)
        try:
            # Warm-up run; also yields the exact QEMU command line husk uses.
            _, inst = husk_apply(stack, sub, "warmup")
            argv = bare_argv(Path(f"/proc/{inst['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0"))
            delete_and_wait(stack, "warmup")

            bare, husk = [], []
            for i in range(RUNS):
                bare.append(bare_boot(argv, stack.kit_dir / "rootfs/hello"))
                t, _ = husk_apply(stack, sub, f"bench{i}")
                husk.append(t)
                delete_and_wait(stack, f"bench{i}")
        finally:
            sub.close()
            stack.down(purge=True)

    mb, mh = statistics.median(bare), statistics.median(husk)
    print(f"apply-to-ready over {RUNS} alternating runs (accel tcg, 1 vCPU, 128 MiB):")
    print(f"  bare qemu to agent ready : median {mb * 1000:7.1f} ms  (min {min(bare) * 1000:.1f}, max {max(bare) * 1000:.1f})")
    print(f"  husk apply to ready      : median {mh * 1000:7.1f} ms  (min {min(husk) * 1000:.1f}, max {max(husk) * 1000:.1f})")
    print(f"  ratio husk/bare          : {mh / mb:.3f}")
    print(f"  orchestration overhead   : {(mh - mb) * 1000:+.1f} ms (goal: under 30 ms)")


if __name__ == "__main__":
    main()
