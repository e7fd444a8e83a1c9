"""agent_client.py: talk to husk-agent directly, as vmm-driver and husk-oci do (proto/SCHEMA.md, "Agent"),
and boot a bare kit VM for it (QEMU + virtiofsd, no husk daemon).

    with KitVM(kit_dir, rootfs_dir, work_dir) as vm:
        a = vm.agent                                  # AgentClient, hello answered
        a.request({"type": "start", "mode": "rootfs", "tag": "rootfs", "writable": True, "command": None,
                   "env": {}, "kind": "worker", "hostname": "box"})
        a.create("p1", ["sh", "-c", "echo hi"], start=True)
        status = a.wait_exited("p1", timeout=30)
        a.output("p1", 1)                             # b"hi\\n"

Frames are a u32 big-endian length and one msgpack map. Unsolicited frames are kept as they come:
proc.output bytes per (proc, fd), proc.exited statuses per proc, everything else in `events`.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ch_double"))
from chd_qemu import host_tsc_khz  # noqa: E402  (the TSC a TCG guest is given, as vmm-driver does)

FRAME_MAX = 3 << 20
CHUNK = 65536  # bytes of one proc.stdin frame


class AgentError(Exception):
    """An error frame answered a request: .code and .message as the agent sent them."""

    def __init__(self, frame):
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.code = frame.get("code")
        self.message = frame.get("message")
        self.frame = frame


class AgentClient:
    def __init__(self, path, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} never accepted a connection")
                time.sleep(0.01)
        self.buf = b""
        self.next_id = 1
        self.answers = {}
        self.outputs = {}
        self.exited = {}
        self.events = []

    def close(self):
        self.sock.close()

    def send(self, obj):
        body = msgpack.packb(obj, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _read_frame(self, deadline):
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return None
            if not chunk:
                raise ConnectionError("agent channel closed")
            self.buf += chunk
        n = struct.unpack(">I", self.buf[:4])[0]
        assert n <= FRAME_MAX, n
        frame, self.buf = msgpack.unpackb(self.buf[4:4 + n], raw=False), self.buf[4 + n:]
        return frame

    def pump(self, timeout=0.0):
        """Read and file frames for up to timeout seconds (at least what is already there)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read_frame(deadline)
            if frame is None:
                return
            self._file(frame)

    def _file(self, f):
        t = f.get("type")
        if t == "proc.output":
            # In order per fd: exited must come after every byte.
            assert f["proc"] not in self.exited, f"proc.output after proc.exited for {f['proc']}"
            assert 0 < len(f["data"]) <= CHUNK, len(f["data"])
            self.outputs.setdefault((f["proc"], f["fd"]), bytearray()).extend(f["data"])
        elif t == "proc.exited":
            assert f["proc"] not in self.exited, f"second proc.exited for {f['proc']}"
            self.exited[f["proc"]] = f["status"]
        elif "id" in f and t not in ("ready",):
            self.answers[f["id"]] = f
        else:
            self.events.append(f)

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.pump(min(left, 0.2))

    def request(self, obj, timeout=60.0, check=True):
        """Send obj with a fresh id (unless it has one) and return its answer; an error answer raises
        AgentError when check."""
        obj = dict(obj)
        if "id" not in obj:
            obj["id"] = self.next_id
            self.next_id += 1
        self.send(obj)
        f = self.wait(lambda: self.answers.pop(obj["id"], None), timeout, f"the answer to {obj['type']}")
        if check and f.get("type") == "error":
            raise AgentError(f)
        return f

    def hello(self, timeout=60.0):
        return self.request({"type": "hello", "version": 2}, timeout)

    # ---- protocol 2: processes ----

    def create(self, proc, args, env=None, cwd="/", uid=0, gid=0, terminal=False, rows=24, cols=80, start=True,
               **extra):
        body = {"type": "proc.create", "proc": proc, "args": list(args),
                "env": list(env if env is not None else ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]),
                "cwd": cwd, "uid": uid, "gid": gid, "terminal": terminal, "start": start}
        if terminal:
            body.update(rows=rows, cols=cols)
        body.update(extra)
        return self.request(body)

    def start(self, proc):
        return self.request({"type": "proc.start", "proc": proc})

    def stdin(self, proc, data):
        for k in range(0, len(data), CHUNK):
            self.send({"type": "proc.stdin", "proc": proc, "data": bytes(data[k:k + CHUNK])})

    def eof(self, proc):
        self.send({"type": "proc.stdin", "proc": proc, "eof": True})

    def resize(self, proc, rows, cols):
        return self.request({"type": "proc.resize", "proc": proc, "rows": rows, "cols": cols})

    def signal(self, proc, sig, all=False):
        body = {"type": "proc.signal", "proc": proc, "signal": int(sig)}
        if all:
            body["all"] = True
        return self.request(body)

    def list(self):
        return self.request({"type": "proc.list"})

    def output(self, proc, fd=1):
        return bytes(self.outputs.get((proc, fd), b""))

    def wait_exited(self, proc, timeout=60.0):
        return self.wait(lambda: (proc in self.exited) and (self.exited[proc],), timeout, f"{proc} to exit")[0]

    def wait_output(self, proc, needle, fd=1, timeout=60.0):
        return self.wait(lambda: needle in self.output(proc, fd), timeout, f"{needle!r} from {proc}")


class KitVM:
    """QEMU (accel tcg) booting the kit's kernel and initrd with the agent channel on work_dir/agent.sock
    and rootfs_dir shared read-write as virtio-fs tag "rootfs" (a virtiofsd of its own), as vmm-driver's
    qemu runtime starts it. No NIC. Killed, with its virtiofsd, on exit."""

    QEMU = "qemu-system-x86_64"
    VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
    CMDLINE = "console=ttyS0 panic=-1 quiet console_msg_format=syslog pci=off initcall_blacklist=pci_arch_init"

    def __init__(self, kit_dir, rootfs_dir, work_dir, memory_mib=256, timeout=120.0):
        self.kit_dir, self.rootfs_dir, self.work_dir = str(kit_dir), str(rootfs_dir), str(work_dir)
        self.memory_mib, self.timeout = memory_mib, timeout
        self.qemu = self.fs = self.agent = self.hello = None

    def cmdline(self):
        khz = host_tsc_khz()
        return self.CMDLINE + (f" tsc_early_khz={khz}" if khz else "") + " husk.instance=agent-test"

    def argv(self):
        m = self.memory_mib
        return [self.QEMU, "-machine", "microvm,accel=tcg,memory-backend=mem",
                "-global", "virtio-mmio.force-legacy=false",
                "-m", str(m), "-object", f"memory-backend-memfd,id=mem,size={m}M,share=on", "-smp", "1",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", f"file:{self.work_dir}/console.log",
                "-kernel", f"{self.kit_dir}/vmlinux", "-initrd", f"{self.kit_dir}/initrd.gz",
                "-append", self.cmdline(),
                "-device", "virtio-serial-device",
                "-chardev", f"socket,id=agent,path={self.work_dir}/agent.sock,server=on,wait=off",
                "-device", "virtserialport,chardev=agent,name=husk.agent",
                "-chardev", f"socket,id=fs0,path={self.work_dir}/vfs.sock",
                "-device", "vhost-user-fs-device,chardev=fs0,tag=rootfs"]

    def __enter__(self):
        sock = os.path.join(self.work_dir, "vfs.sock")
        self.fs = subprocess.Popen([self.VIRTIOFSD, f"--socket-path={sock}", "-o", f"source={self.rootfs_dir}",
                                    "-o", "cache=none", "-o", "sandbox=chroot"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(self.work_dir, "virtiofsd.log"), "wb"),
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock):
                if self.fs.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("virtiofsd did not start (see virtiofsd.log)")
                time.sleep(0.01)
            self.qemu = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(self.work_dir, "qemu.log"), "wb"),
                                         start_new_session=True)
            self.agent = AgentClient(os.path.join(self.work_dir, "agent.sock"), self.timeout)
            self.hello = self.agent.hello(self.timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def console(self):
        try:
            with open(os.path.join(self.work_dir, "console.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.agent:
            self.agent.close()
        for p in (self.qemu, self.fs):
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
