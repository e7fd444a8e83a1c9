#!/usr/bin/python3
"""oci_fake_qemu.py: a stand-in for QEMU and the guest's husk-agent, for husk-oci's holder tests.

husk-oci runs it as its --qemu with QEMU's command line. It listens where QEMU would (the
agent's chardev socket and QMP, in its cwd, the container directory), says `ready`, and
answers agent protocol 2 as husk-agent does, running each proc.create's args *on the host* (no
VM, no root change: the holder's logic is under test, not the guest): stdout and stderr as
proc.output, proc.stdin, proc.signal, proc.exited with the code or 128+signal, `shutdown` ends
it. QMP answers qmp_capabilities, stop and cont. It never touches virtiofsd's sockets."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading

import ctypes

import msgpack

libc = ctypes.CDLL(None, use_errno=True)

lock = threading.Lock()
procs = {}  # name -> Popen


def send(conn, body):
    data = msgpack.packb(body, use_bin_type=True)
    with lock:
        conn.sendall(struct.pack(">I", len(data)) + data)


def frames(conn):
    buf = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 4:
            n = struct.unpack(">I", buf[:4])[0]
            if len(buf) < 4 + n:
                break
            yield msgpack.unpackb(buf[4:4 + n], raw=False)
            buf = buf[4 + n:]


def pump(conn, name, stream, fd, done):
    for chunk in iter(lambda: stream.read1(65536), b""):
        send(conn, {"type": "proc.output", "proc": name, "fd": fd, "data": chunk})
    done.set()


def watch(conn, name, p, outs):
    p.wait()
    for e in outs:
        e.wait()
    status = p.returncode if p.returncode >= 0 else 128 - p.returncode
    send(conn, {"type": "proc.exited", "proc": name, "status": status})


def create(conn, m):
    name, args = m["proc"], m["args"]
    if not shutil.which(args[0]):
        send(conn, {"type": "error", "id": m["id"], "code": "not_found",
                    "message": f"{args[0]}: executable file not found"})
        return
    go = threading.Event()
    env = dict(kv.split("=", 1) for kv in m.get("env") or [])

    def launch():
        go.wait()
        # Dies with us, as a guest's processes die with the VM.
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             cwd="/", preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))
        procs[name] = (p, go, started)
        outs = [threading.Event(), threading.Event()]
        threading.Thread(target=pump, args=(conn, name, p.stdout, 1, outs[0]), daemon=True).start()
        threading.Thread(target=pump, args=(conn, name, p.stderr, 2, outs[1]), daemon=True).start()
        started.set()
        # In this thread: the child's parent-death signal fires when the thread that forked it ends.
        watch(conn, name, p, outs)

    started = threading.Event()
    procs[name] = (None, go, started)
    threading.Thread(target=launch, daemon=True).start()
    if m.get("start"):
        go.set()
        started.wait()
    send(conn, {"type": "proc.create", "id": m["id"], "proc": name, "pid": 1})


def agent(conn):
    send(conn, {"type": "ready", "version": 2, "boot_ms": 1})
    for m in frames(conn):
        t = m.get("type")
        if t == "hello":
            send(conn, {"type": "hello", "id": m["id"], "version": 2, "ready": True, "agent": "fake"})
        elif t == "start":
            send(conn, {"type": "start", "id": m["id"], "pid": 0})
        elif t == "proc.create":
            create(conn, m)
        elif t == "proc.start":
            procs[m["proc"]][1].set()
            procs[m["proc"]][2].wait()
            send(conn, {"type": "proc.start", "id": m["id"], "proc": m["proc"]})
        elif t == "proc.stdin":
            p = procs.get(m["proc"], (None,))[0]
            if p:
                try:
                    if m.get("eof"):
                        p.stdin.close()
                    else:
                        p.stdin.write(m["data"])
                        p.stdin.flush()
                except (BrokenPipeError, ValueError):
                    pass
        elif t == "proc.signal":
            p = procs.get(m["proc"], (None,))[0]
            if not p or p.poll() is not None:
                send(conn, {"type": "error", "id": m["id"], "code": "conflict", "message": "exited"})
            else:
                p.send_signal(m["signal"])
                send(conn, {"type": "proc.signal", "id": m["id"], "proc": m["proc"]})
        elif t == "proc.resize":
            send(conn, {"type": "proc.resize", "id": m["id"], "proc": m["proc"]})
        elif t == "shutdown":
            send(conn, {"type": "shutdown", "id": m["id"]})
            for p, *_ in procs.values():
                if p and p.poll() is None:
                    p.kill()
            os._exit(0)


def qmp(srv):
    while True:
        c, _ = srv.accept()
        f = c.makefile("rwb")
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for line in f:
            f.write(b'{"return": {}}\n')
            f.flush()


def listen(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def main():
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    a = listen("agent.sock")
    q = listen("qmp.sock")
    threading.Thread(target=qmp, args=(q,), daemon=True).start()
    conn, _ = a.accept()
    agent(conn)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
