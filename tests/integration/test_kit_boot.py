"""test_kit_boot.py: boot the guest kit under QEMU microvm (TCG) and talk to husk-agent.

No daemons: QEMU is started directly, as vmm-driver would, and the test speaks the agent
protocol of proto/SCHEMA.md ("Agent") on the virtio-serial port's unix socket with nothing
but Python's msgpack. Every wait polls with a deadline.
"""
import os
import shutil
import socket
import struct
import subprocess
import time

import msgpack
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("HUSK_BUILD", os.path.join(REPO, "build"))
# The agent's protocol version, from its one definition (proto/agent_frame.h).
with open(os.path.join(REPO, "proto", "agent_frame.h")) as _f:
    AGENT_PROTOCOL_VERSION = int(next(line.split()[2] for line in _f if line.startswith("#define AGENT_PROTOCOL_VERSION ")))
KIT = os.path.join(BUILD, "kit")
QEMU = shutil.which("qemu-system-x86_64")

BOOT_DEADLINE = 60.0  # TCG boots in ~2 s here; a loaded CI machine gets plenty of slack
FRAME_MAX = 3 << 20

pytestmark = pytest.mark.require(QEMU is not None, "qemu-system-x86_64 not installed")


def host_tsc_khz():
    """The host's TSC rate, which is also the guest's under TCG (QEMU reads the host TSC).

    Without it the guest kernel calibrates its TSC against the emulated PIT, and under TCG
    on a busy host that fails often enough ("tsc: Unable to calibrate against PIT ...
    Marking TSC unstable"), after which the boot hangs before /init: 6 boots in 8 with
    both cores busy, about 1 in 12 on a quiet machine. `tsc_early_khz=` skips that
    calibration. On a constant-TSC machine without frequency scaling (these VMs) the
    kernel's "cpu MHz" is the TSC rate; vmm-driver should measure it instead.
    """
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    if "constant_tsc" not in info:
        return None
    for line in info.splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return None


def wait_for(predicate, deadline, what):
    """Poll predicate until it returns something truthy or the deadline passes."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


class Agent:
    """One connection to the agent's port: length-prefixed msgpack frames."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg):
        body = msgpack.packb(msg, use_bin_type=True)
        self.send_raw(struct.pack(">I", len(body)) + body)

    def recv(self, timeout=BOOT_DEADLINE):
        end = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                assert n <= FRAME_MAX, "agent sent an oversized frame"
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                    msg = msgpack.unpackb(body, raw=False)
                    assert isinstance(msg, dict) and isinstance(msg.get("type"), str)
                    return msg
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no frame from the agent within %.0f s" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("agent channel closed")
            self.buf += chunk

    def request(self, msg):
        self.send(msg)
        reply = self.recv()
        assert reply.get("id") == msg["id"], reply
        return reply


class Vm:
    """A microvm booted from the kit, as DESIGN.md's invocation minus virtio-fs and net."""

    def __init__(self, workdir, instance="abc123"):
        self.dir = str(workdir)
        self.sock = os.path.join(self.dir, "agent.sock")
        self.console = os.path.join(self.dir, "console.log")
        self.instance = instance
        self.proc = None
        self.started = None

    def cmdline(self):
        words = ["console=ttyS0", "panic=-1", "quiet", "husk.instance=" + self.instance,
                 "husk.log_level=" + os.environ.get("HUSK_AGENT_LOG_LEVEL", "info")]
        khz = host_tsc_khz()
        if khz:
            words.append("tsc_early_khz=%d" % khz)
        return " ".join(words)

    def start(self):
        argv = [
            QEMU,
            "-machine", "microvm,accel=tcg",
            "-global", "virtio-mmio.force-legacy=false",
            "-m", "256", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "file:" + self.console,
            "-kernel", os.path.join(KIT, "vmlinux"),
            "-initrd", os.path.join(KIT, "initrd.gz"),
            "-append", self.cmdline(),
            "-device", "virtio-serial-device",
            "-chardev", "socket,id=ag,path=%s,server=on,wait=off" % self.sock,
            "-device", "virtserialport,chardev=ag,name=husk.agent",
        ]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                 BOOT_DEADLINE, "the agent socket")
        assert self.proc.poll() is None, self.proc.stdout.read().decode(errors="replace")

    def connect(self):
        # QEMU makes the socket file before it listens on it: a connect can be refused for a
        # moment after the file appears (seen in make check).
        def once():
            try:
                return Agent(self.sock)
            except ConnectionRefusedError:
                return None
        return wait_for(once, BOOT_DEADLINE, "the agent socket to accept")

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_console(self, text):
        return wait_for(lambda: text in self.console_text(), BOOT_DEADLINE,
                        "%r on the console" % text)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("QEMU still running %.0f s after shutdown; console:\n%s"
                                 % (timeout, self.console_text()))

    def kill(self):
        # Only the QEMU this test started, by its pid.
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def vm(tmp_path):
    for f in ("vmlinux", "initrd.gz"):
        if not os.path.exists(os.path.join(KIT, f)):
            pytest.fail("no guest kit in %s: run `make guest`" % KIT)
    v = Vm(tmp_path)
    yield v
    v.kill()
    # Shown by pytest when the test failed.
    print("---- console of %s ----\n%s" % (v.instance, v.console_text()))


def test_boot_hello_shutdown(vm):
    vm.start()
    agent = vm.connect()
    ready = agent.recv()
    ready_s = time.monotonic() - vm.started
    assert ready["type"] == "ready", ready
    assert ready["version"] == AGENT_PROTOCOL_VERSION
    assert ready["boot_ms"] > 0
    print("qemu start to ready frame: %.3f s (guest uptime %d ms)" % (ready_s, ready["boot_ms"]))

    line = "husk-agent: ready (instance abc123, boot %d ms)" % ready["boot_ms"]
    vm.wait_console(line)

    # A host that speaks protocol 1 is answered with the agent's own version: v1 frames are
    # unchanged in 2 (which adds processes), so the host decides what it can use.
    hello = agent.request({"type": "hello", "id": 1, "version": 1})
    assert hello == {"type": "hello", "id": 1, "version": AGENT_PROTOCOL_VERSION, "ready": True,
                     "agent": hello["agent"]}
    assert hello["agent"].startswith("husk-agent ")

    assert agent.request({"type": "ping", "id": 2}) == {"type": "pong", "id": 2}

    err = agent.request({"type": "frobnicate", "id": 3})
    assert err["type"] == "error" and err["code"] == "unknown_type", err

    err = agent.request({"type": "shutdown", "id": 4})
    assert err["type"] == "error" and err["code"] == "invalid", err

    assert agent.request({"type": "shutdown", "id": 5, "grace_ms": 500}) == {
        "type": "shutdown", "id": 5}
    # The VM ends by itself: ACPI power-off, QEMU exits 0.
    assert vm.wait_exit(30) == 0
    assert "husk-agent: powering off" in vm.console_text()


def test_host_connects_late_and_reconnects(vm):
    vm.start()
    # Nobody is connected while the agent comes up: the ready frame must wait for us.
    vm.wait_console("husk-agent: ready")
    time.sleep(0.5)  # let the agent find out that nobody is there
    agent = vm.connect()
    assert agent.recv()["type"] == "ready"
    assert agent.request({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
    agent.close()

    # A vmm-driver that restarted: a new connection, hello first.
    agent = vm.connect()
    hello = agent.request({"type": "hello", "id": 2, "version": 1})
    assert hello["ready"] is True
    agent.close()

    # Again, right away.
    agent = vm.connect()
    assert agent.request({"type": "ping", "id": 3}) == {"type": "pong", "id": 3}
    agent.send({"type": "shutdown", "id": 4, "grace_ms": 0})
    assert agent.recv()["type"] == "shutdown"
    assert vm.wait_exit(30) == 0


def test_malformed_frames_resync(vm):
    vm.start()
    agent = vm.connect()
    assert agent.recv()["type"] == "ready"

    # A body that is not a map: refused, then the agent reopens its port.
    body = msgpack.packb([1, 2, 3])
    agent.send_raw(struct.pack(">I", len(body)) + body)
    err = agent.recv()
    assert err["type"] == "error" and err["code"] == "malformed", err
    assert "id" not in err
    assert agent.request({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}

    # A map without "type".
    body = msgpack.packb({"id": 2})
    agent.send_raw(struct.pack(">I", len(body)) + body)
    assert agent.recv()["code"] == "malformed"
    assert agent.request({"type": "ping", "id": 3}) == {"type": "pong", "id": 3}

    # A length over 3 MiB is refused from the prefix alone. The rest of the stream cannot
    # be trusted: the host reconnects, as vmm-driver does on a malformed error.
    agent.send_raw(struct.pack(">I", FRAME_MAX + 1))
    assert agent.recv()["code"] == "malformed"
    agent.close()

    agent = vm.connect()
    assert agent.request({"type": "ping", "id": 4}) == {"type": "pong", "id": 4}
    agent.send({"type": "shutdown", "id": 5, "grace_ms": 0})
    assert agent.recv()["type"] == "shutdown"
    assert vm.wait_exit(30) == 0
    assert "Malformed frame" in vm.console_text()

