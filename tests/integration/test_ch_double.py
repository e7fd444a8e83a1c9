"""test_ch_double.py: the cloud-hypervisor double (tests/ch_double) driven directly, as husk's runtime will drive CH.

No husk daemons: each test starts the double, speaks CH's REST API on its api socket (HTTP/1.1 over
a unix socket), boots the guest kit (QEMU, TCG) or the disk image by firmware, and checks what husk
relies on: status codes and error bodies, the contract checks against the OpenAPI spec (a body with
an unknown field is refused and recorded), the serial file, the hybrid vsock handshake reaching
husk-agent, the event monitor's records, and the ways the process ends (guest power-off, power
button, vmm.shutdown, SIGTERM, SIGKILL taking QEMU with it). Every wait polls with a deadline.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from husk_stack import BUILD, REPO, netns_socket, require, wait_for  # noqa: E402
from netd_util import netns_add, netns_del, sh  # noqa: E402

DOUBLE = REPO / "tests" / "ch_double" / "cloud-hypervisor"
KERNEL = BUILD / "kit" / "vmlinux"
INITRD = BUILD / "kit" / "initrd.gz"
IMAGE = BUILD / "image" / "debian-12.raw"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
QEMU = shutil.which("qemu-system-x86_64")
BOOT_DEADLINE = 90.0  # the kit boots in ~2 s under TCG; two busy cores shared with others need slack
IMAGE_DEADLINE = 600.0  # the disk image under TCG: ~70 s quiet, minutes when guests share the cores
AGENT_PORT = 2375
CMDLINE = "console=ttyS0 panic=-1 quiet pci=off initcall_blacklist=pci_arch_init husk.instance=chd1 husk.transport=vsock"

pytestmark = pytest.mark.require(QEMU is not None, "qemu-system-x86_64 not installed")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Double:
    """One cloud-hypervisor double process and the files it was given."""

    def __init__(self, workdir, *extra, netns=None, env=None):
        self.dir = Path(workdir)
        self.api = self.dir / "api.sock"
        self.events = self.dir / "events.json"
        self.log = self.dir / "ch.log"
        self.violations = self.dir / "violations.jsonl"
        self.serial = self.dir / "console.log"
        self.vsock = self.dir / "vsock.sock"
        e = dict(os.environ, CH_DOUBLE_VIOLATIONS=str(self.violations), **(env or {}))
        argv = [str(DOUBLE), "--api-socket", f"path={self.api}", "--event-monitor", f"path={self.events}",
                "--seccomp", "true", "--log-file", str(self.log), "-v", *extra]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.proc = subprocess.Popen(argv, env=e, stdin=subprocess.DEVNULL)
        self.conn = None
        # As with CH, the socket file appears (bind) a moment before it accepts (listen): wait for an answer.
        wait_for(lambda: self.proc.poll() is not None or self._pings(), timeout=30, what="the api socket to answer")
        assert self.proc.poll() is None, f"the double exited with {self.proc.returncode}: {self.log_text()}"

    def _pings(self):
        try:
            return self.call("GET", "vmm.ping")[0] == 200
        except (FileNotFoundError, ConnectionRefusedError):
            return False

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def call(self, method, endpoint, body=None, raw=None):
        """One request on a kept-alive connection, as a client of CH: (status, decoded body or None)."""
        if self.conn is None:
            self.conn = UnixHTTPConnection(str(self.api))
        headers = {"Accept": "application/json"}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, f"/api/v1/{endpoint}", body=data, headers=headers)
            r = self.conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        assert r.getheader("Server") == "Cloud Hypervisor API"
        return r.status, (json.loads(payload) if payload else None)

    def records(self):
        """The event monitor's records: pretty-printed JSON objects, each followed by an empty line."""
        text = self.events.read_text() if self.events.exists() else ""
        chunks = [c for c in text.split("\n\n") if c.strip()]
        return [json.loads(c) for c in chunks]

    def names(self):
        return [f"{r['source']} {r['event']}" for r in self.records()]

    def violation_list(self):
        if not self.violations.exists():
            return []
        return [json.loads(line) for line in self.violations.read_text().splitlines() if line.strip()]

    def qemu_pids(self):
        try:
            return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        except OSError:
            return []

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the double did not exit within {timeout:g} s; log tail:\n{self.log_text()[-3000:]}")

    def stop(self):
        if self.conn:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def double_dir():
    # Short: the sockets under it must fit sun_path.
    d = Path(__import__("tempfile").mkdtemp(prefix="/tmp/chd-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_double(double_dir):
    made = []

    def make(*extra, netns=None, env=None, sub=None):
        d = double_dir / sub if sub else double_dir
        d.mkdir(exist_ok=True)
        dbl = Double(d, *extra, netns=netns, env=env)
        made.append(dbl)
        return dbl

    yield make
    for dbl in made:
        dbl.stop()


def kit_config(dbl, **over):
    require(KERNEL.is_file() and INITRD.is_file(), f"{KERNEL} or {INITRD} not built (make guest)")
    cfg = {
        "cpus": {"boot_vcpus": 1, "max_vcpus": 1},
        "memory": {"size": 256 << 20},
        "payload": {"kernel": str(KERNEL), "initramfs": str(INITRD), "cmdline": CMDLINE},
        "serial": {"mode": "File", "file": str(dbl.serial)},
        "console": {"mode": "Off"},
        "vsock": {"cid": 3, "socket": str(dbl.vsock)},
    }
    cfg.update(over)
    return cfg


class Agent:
    """The agent over hybrid vsock: CONNECT, OK, then length-prefixed msgpack frames."""

    def __init__(self, sock, port):
        self.sock, self.port, self.buf = sock, port, b""

    @classmethod
    def connect(cls, path, timeout=BOOT_DEADLINE):
        def attempt():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(str(path))
                s.sendall(f"CONNECT {AGENT_PORT}\n".encode())
                line = b""
                while not line.endswith(b"\n"):
                    c = s.recv(1)
                    if not c:
                        raise ConnectionError("closed without an answer (guest not listening yet)")
                    line += c
            except OSError:
                s.close()
                raise
            m = re.fullmatch(rb"OK (\d+)\n", line)
            assert m, f"handshake answer {line!r}"
            return cls(s, int(m.group(1)))
        return wait_for(attempt, timeout=timeout, interval=0.2, what="the hybrid vsock handshake with the agent")

    def send(self, msg):
        body = msgpack.packb(msg, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def recv(self, timeout=30.0):
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return msgpack.unpackb(body, raw=False)
            chunk = self.sock.recv(65536)
            assert chunk, "the agent stream closed"
            self.buf += chunk

    def request(self, msg):
        self.send(msg)
        while True:
            reply = self.recv()
            if reply.get("id") == msg["id"]:
                return reply

    def close(self):
        self.sock.close()


def handshake_answer(path, command):
    """What the vsock socket answers to command before it closes (b"" when it just closes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(str(path))
        s.sendall(command)
        data = b""
        while True:
            try:
                c = s.recv(4096)
            except ConnectionResetError:  # closed with the rest of the command unread
                return data
            if not c:
                return data
            data += c
    finally:
        s.close()


def handshake_answer_first_line(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(str(path))
        s.sendall(command)
        line = b""
        while not line.endswith(b"\n"):
            c = s.recv(1)
            if not c:
                break
            line += c
        return line
    finally:
        s.close()


def test_validator_reads_the_spec_as_ch_reads_bodies():
    """The subset of OpenAPI 3 the spec uses: $ref, required, types, integer formats, enums, minimum."""
    sys.path.insert(0, str(DOUBLE.parent))
    import chd_openapi
    spec = chd_openapi.Spec(chd_openapi_spec_path())
    schema = spec.request_schema("/vm.create", "put")
    ok = {"payload": {"kernel": "/k"}, "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
          "disks": [{"path": "/d", "readonly": True, "pci_segment": 0}], "vsock": {"cid": 3, "socket": "/v"}}
    assert spec.validate(ok, schema) == []
    bad = {"payload": {"kernel": "/k"}, "cpus": {"boot_vcpus": 0, "max_vcpus": 1},
           "disks": [{"path": "/d", "pci_device_id": 256, "readonly": "yes"}], "vsock": {"socket": "/v"},
           "console": {"mode": "off"}, "memory": {"size": 1.5}}
    errors = spec.validate(bad, schema)
    for want in ("$.cpus.boot_vcpus: 0 is below the minimum 1", "$.disks[0].pci_device_id: 256 out of range",
                 "$.disks[0].readonly: expected a boolean", "$.vsock: missing required field `cid`",
                 "$.console.mode: 'off' is not one of", "$.memory.size: expected an integer"):
        assert any(e.startswith(want) for e in errors), (want, errors)
    assert spec.validate({}, schema) == ["$: missing required field `payload`"]
    assert spec.request_schema("/vm.boot", "put") is None


def chd_openapi_spec_path():
    """The spec the double reads (its SPEC), from the program itself."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("chd_main", str(DOUBLE))
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return mod.SPEC


def test_command_line_as_clap(double_dir):
    def run(*args):
        return subprocess.run([str(DOUBLE), *args], capture_output=True, text=True, timeout=30)

    r = run("--api-socket", str(double_dir / "a.sock"), "--frobnicate")
    assert r.returncode == 2 and "unexpected argument '--frobnicate'" in r.stderr
    r = run("--api-socket", str(double_dir / "a.sock"), "--seccomp", "maybe")
    assert r.returncode == 2 and "invalid value 'maybe' for '--seccomp" in r.stderr
    r = run("--api-socket", str(double_dir / "a.sock"), "--event-monitor", "events.json")
    assert r.returncode == 1 and "path or fd required" in r.stderr
    assert run().returncode == 2
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("cloud-hypervisor v")


def test_api_before_boot_and_contract_checks(make_double):
    dbl = make_double()
    st, pong = dbl.call("GET", "vmm.ping")
    assert st == 200 and pong["pid"] == dbl.proc.pid and pong["version"]
    # Wrong state: CH's codes and error chains.
    assert dbl.call("PUT", "vm.boot") == (404, ["Error from API", "The VM could not boot", "VM config is missing"])
    assert dbl.call("GET", "vm.info") == (404, ["Error from API", "The VM info is not available", "VM is not created"])
    assert dbl.call("PUT", "vm.power-button") == (500, ["Error from API", "Error triggering power button",
                                                         "VM is not running"])
    assert dbl.call("PUT", "vm.shutdown")[0] == 500
    assert dbl.violation_list() == []

    # An unknown field (CH itself would drop it silently: the double refuses it) and a mistyped one.
    cfg = kit_config(dbl)
    st, err = dbl.call("PUT", "vm.create", dict(cfg, payload=dict(cfg["payload"], kernal="/x")))
    assert st == 400 and err[0] == "Failed to deserialize JSON" and "unknown field `kernal`" in err[1]
    st, err = dbl.call("PUT", "vm.create", dict(cfg, cpus={"boot_vcpus": "1", "max_vcpus": 1}))
    assert st == 400 and "$.cpus.boot_vcpus: expected an integer" in err[1]
    st, err = dbl.call("PUT", "vm.create", dict(cfg, serial={"mode": "Logfile", "file": "/x"}))
    assert st == 400 and "is not one of" in err[1]
    assert dbl.call("PUT", "vm.create", raw=b"{not json")[0] == 400
    found = [v["violation"] for v in dbl.violation_list()]
    assert len(found) == 4 and "unknown field `kernal`" in found[0] and found[1].startswith("vm.create: $.cpus")
    assert all(v["path"] == "/api/v1/vm.create" for v in dbl.violation_list())
    dbl.violations.unlink()

    assert dbl.call("PUT", "vm.create", cfg) == (204, None)
    assert dbl.serial.exists(), "CH creates a File serial at vm.create"
    assert dbl.call("PUT", "vm.create", cfg) == (500, ["Error from API", "The VM could not be created",
                                                       "VM is already created"])
    st, info = dbl.call("GET", "vm.info")
    assert st == 200 and info["state"] == "Created" and info["config"]["payload"] == cfg["payload"]
    assert info["config"]["vsock"]["iommu"] is False, "the spec's defaults are filled in, as CH's serde does"
    # How husk must not call CH: each is answered as CH would and recorded.
    assert dbl.call("PUT", "vm.boot", {"now": True}) == (400, ["Bad Request"])
    assert dbl.call("GET", "vm.boot") == (400, ["Bad Request"])
    assert dbl.call("PUT", "vm.frobnicate") == (404, ["Not Found"])
    assert len(dbl.violation_list()) == 3
    dbl.violations.unlink()

    assert dbl.call("PUT", "vm.delete") == (204, None)
    assert dbl.call("PUT", "vm.delete") == (204, None)
    assert dbl.call("GET", "vm.info")[0] == 404
    # vmm.shutdown: 200 (CH's real answer, not the spec's 204), then the process ends cleanly.
    assert dbl.call("PUT", "vmm.shutdown") == (200, None)
    assert dbl.wait_exit(10) == 0
    assert not dbl.api.exists(), "CH removes its api socket on a clean exit"
    assert dbl.names() == ["vmm starting", "vm booting", "vm deleted", "vmm shutdown"]
    rec = dbl.records()[0]
    assert set(rec) == {"timestamp", "source", "event", "properties"} and rec["properties"] is None
    assert set(rec["timestamp"]) == {"secs", "nanos"}
    assert dbl.violation_list() == []


def test_second_double_on_the_same_socket_fails(make_double, double_dir):
    dbl = make_double()
    r = subprocess.run([str(DOUBLE), "--api-socket", f"path={dbl.api}"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "in use" in r.stderr
    assert dbl.call("GET", "vmm.ping")[0] == 200, "the first one's socket is untouched"


def test_kit_boots_agent_over_hybrid_vsock_and_power_off_ends_it(make_double):
    dbl = make_double()
    assert dbl.call("PUT", "vm.create", kit_config(dbl)) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    assert dbl.call("GET", "vm.info")[1]["state"] == "Running"
    assert dbl.vsock.exists(), "the vsock socket exists once vm.boot answered"
    assert len(dbl.qemu_pids()) == 1

    agent = Agent.connect(dbl.vsock)
    assert agent.port >= 1 << 30, "CH's host-side ports start at 2^30"
    ready = agent.recv()
    assert ready["type"] == "ready"
    hello = agent.request({"type": "hello", "id": 1, "version": 1})
    assert hello["agent"].startswith("husk-agent ")
    assert agent.request({"type": "ping", "id": 2}) == {"type": "pong", "id": 2}
    text = dbl.serial.read_text(errors="replace")
    assert "husk-agent: ready (instance chd1" in text, text[-2000:]

    # Bad commands and ports nobody listens on: closed without an answer, as CH's muxer does.
    assert handshake_answer(dbl.vsock, b"HELLO 2375\n") == b""
    assert handshake_answer(dbl.vsock, b"CONNECT 1234\n") == b""
    # The keyword in any case and the port trimmed, as CH's muxer parses it; a new stream replaces
    # the previous one (the agent keeps the newest host).
    agent.close()
    answer = handshake_answer_first_line(dbl.vsock, b"connect  2375 \n")
    assert re.fullmatch(rb"OK \d+\n", answer), answer
    agent = Agent.connect(dbl.vsock, timeout=30)
    assert agent.request({"type": "ping", "id": 3}) == {"type": "pong", "id": 3}

    # The guest powers off: CH's guest exit ends the process with status 0.
    agent.send({"type": "shutdown", "id": 4, "grace_ms": 0})
    assert dbl.wait_exit(60) == 0
    assert "husk-agent: powering off" in dbl.serial.read_text(errors="replace")
    assert dbl.names() == ["vmm starting", "vm booting", "vm booted", "vm shutdown", "vm deleted", "vmm shutdown"]
    assert not dbl.vsock.exists() and not dbl.api.exists()
    assert dbl.violation_list() == []


def test_shutdown_reboot_boot_again_and_signals(make_double):
    dbl = make_double()
    assert dbl.call("PUT", "vm.create", kit_config(dbl)) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    Agent.connect(dbl.vsock).close()
    [qemu] = dbl.qemu_pids()

    # vm.shutdown: the guest is gone, the config stays, vm.boot boots it again.
    assert dbl.call("PUT", "vm.shutdown") == (204, None)
    assert not Path(f"/proc/{qemu}").exists() or Path(f"/proc/{qemu}/stat").read_text().split()[2] == "Z"
    assert dbl.call("GET", "vm.info")[1]["state"] == "Created"
    assert not dbl.vsock.exists()
    assert dbl.call("PUT", "vm.boot") == (204, None)
    agent = Agent.connect(dbl.vsock)
    assert agent.recv()["type"] == "ready"

    # vm.pause / vm.resume: the guest stops and goes on.
    assert dbl.call("PUT", "vm.pause") == (204, None)
    assert dbl.call("GET", "vm.info")[1]["state"] == "Paused"
    assert dbl.call("PUT", "vm.resume") == (204, None)
    assert dbl.call("GET", "vm.info")[1]["state"] == "Running"

    # vm.reboot: the process stays, the guest boots again and its agent comes back.
    assert dbl.call("PUT", "vm.reboot") == (204, None)
    agent.close()
    agent = Agent.connect(dbl.vsock)
    assert agent.request({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
    agent.close()

    dbl.proc.send_signal(signal.SIGTERM)
    assert dbl.wait_exit(30) == 0
    assert dbl.names() == ["vmm starting", "vm booting", "vm booted", "vm shutdown", "vm booting", "vm booted",
                           "vm pausing", "vm paused", "vm resuming", "vm resumed", "vm rebooting", "vm rebooted", "vm shutdown", "vm deleted", "vmm shutdown"]
    assert dbl.violation_list() == []


def test_guest_reboot_keeps_the_vmm(make_double):
    """A reboot from inside the guest: CH re-creates the VM and stays (no exit, unlike QEMU's
    -no-reboot); the event monitor says so, and the agent comes back on the vsock socket."""
    dbl = make_double()
    assert dbl.call("PUT", "vm.create", kit_config(dbl)) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    agent = Agent.connect(dbl.vsock)
    assert agent.recv()["type"] == "ready"
    agent.send({"type": "exec", "id": 1, "argv": ["reboot", "-f"], "env": {}, "cwd": None, "timeout_ms": 30000,
                "stdin": None})
    wait_for(lambda: "vm rebooted" in dbl.names(), timeout=60, what="the reboot's event records")
    agent.close()
    agent = Agent.connect(dbl.vsock)
    assert agent.recv()["type"] == "ready"
    agent.close()
    assert dbl.proc.poll() is None
    assert dbl.names() == ["vmm starting", "vm booting", "vm booted", "vm rebooting", "vm rebooted"]
    assert dbl.call("GET", "vm.info")[1]["state"] == "Running"
    assert dbl.violation_list() == []


def test_sigkill_takes_qemu_along(make_double):
    dbl = make_double()
    assert dbl.call("PUT", "vm.create", kit_config(dbl)) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    [qemu] = dbl.qemu_pids()
    # QEMU's own sockets (QMP, the agent port) are abstract: no file of them can outlive it.
    inodes = {os.readlink(f"/proc/{qemu}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{qemu}/fd")
              if os.readlink(f"/proc/{qemu}/fd/{fd}").startswith("socket:[")}
    paths = [line.split()[7] for line in Path(f"/proc/{qemu}/net/unix").read_text().splitlines()[1:]
             if len(line.split()) >= 8 and line.split()[6] in inodes]
    assert paths and all(p.startswith("@") for p in paths), paths
    dbl.proc.kill()
    dbl.proc.wait()
    wait_for(lambda: not Path(f"/proc/{qemu}").exists(), timeout=10, what="QEMU to die with the double")
    # Left behind, as by a SIGKILLed CH: its sockets and files, nothing of QEMU's (abstract sockets).
    assert sorted(p.name for p in dbl.dir.iterdir()) == ["api.sock", "api.sock.lock", "ch.log", "console.log",
                                                         "events.json", "vsock.sock"]


def test_qemu_dying_is_the_vmm_crashing(make_double):
    """QEMU is the double's VM: its death without a guest power-off is CH crashing (exit 1, no
    shutdown events), which husk must report as a crash, not a clean stop."""
    dbl = make_double()
    assert dbl.call("PUT", "vm.create", kit_config(dbl)) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    [qemu] = dbl.qemu_pids()
    os.kill(qemu, signal.SIGKILL)
    assert dbl.wait_exit(30) == 1
    assert dbl.names() == ["vmm starting", "vm booting", "vm booted"]


def test_event_monitor_on_an_inherited_fd(double_dir):
    r, w = os.pipe()
    proc = subprocess.Popen([str(DOUBLE), "--api-socket", str(double_dir / "api.sock"), "--event-monitor", f"fd={w}"],
                            pass_fds=(w,), stdin=subprocess.DEVNULL)
    os.close(w)
    try:
        api = double_dir / "api.sock"
        conn = UnixHTTPConnection(str(api))
        wait_for(lambda: conn.connect() or True, timeout=30, what="the api socket (a bare path)")
        conn.request("PUT", "/api/v1/vmm.shutdown")
        assert conn.getresponse().status == 200
        assert proc.wait(timeout=30) == 0
        with os.fdopen(r, "rb") as f:
            text = f.read().decode()
        recs = [json.loads(c) for c in text.split("\n\n") if c.strip()]
        assert [(x["source"], x["event"]) for x in recs] == [("vmm", "starting"), ("vmm", "shutdown")]
        assert text.startswith('{\n  "timestamp": {\n    "secs": 0,'), "serde_json's pretty printing"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.long
def test_power_button_ends_a_guest_that_handles_it(make_double, double_dir):
    """The disk image, booted by firmware (q35 + OVMF, as CH's firmware payload): systemd powers off
    on the ACPI power button, and the image's husk-agent answers over hybrid vsock."""
    require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
    require(OVMF_CODE.is_file(), "OVMF firmware not installed (Debian package ovmf)")
    overlay = double_dir / "disk.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(IMAGE), str(overlay))
    dbl = make_double()
    cfg = {
        "cpus": {"boot_vcpus": 1, "max_vcpus": 1},
        "memory": {"size": 1024 << 20},
        "payload": {"firmware": str(OVMF_CODE)},
        "disks": [{"path": str(overlay)}],
        "serial": {"mode": "File", "file": str(dbl.serial)},
        "console": {"mode": "Off"},
        "vsock": {"cid": 3, "socket": str(dbl.vsock)},
    }
    assert dbl.call("PUT", "vm.create", cfg) == (204, None)
    started = time.monotonic()
    assert dbl.call("PUT", "vm.boot") == (204, None)
    agent = Agent.connect(dbl.vsock, timeout=IMAGE_DEADLINE)
    assert agent.recv()["type"] == "ready"
    print(f"\nfirmware boot to agent ready over hybrid vsock: {time.monotonic() - started:.1f} s")
    agent.close()
    # Pressed before systemd-logind runs, the button is lost (on CH as on QEMU: nobody reads the
    # key yet): wait for the end of the boot, as a graceful stop cannot count on it anyway.
    wait_for(lambda: re.search(rb"Cloud-init v\. \S+ finished at", dbl.serial.read_bytes()), timeout=IMAGE_DEADLINE,
             interval=0.5, what="cloud-init's finished line on the serial file")
    pressed = time.monotonic()
    assert dbl.call("PUT", "vm.power-button") == (204, None)
    assert dbl.wait_exit(120) == 0
    print(f"power button to exit: {time.monotonic() - pressed:.1f} s")
    assert dbl.names()[-3:] == ["vm shutdown", "vm deleted", "vmm shutdown"]
    assert "BdsDxe" in dbl.serial.read_text(errors="replace"), "OVMF wrote to the serial file"
    assert dbl.violation_list() == []


@pytest.fixture
def tap_netns(netns_available):
    ns = f"chd-{os.getpid()}"
    netns_add(ns)
    try:
        sh("ip", "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
        sh("ip", "-n", ns, "addr", "add", "10.42.0.1/30", "dev", "tap0")
        sh("ip", "-n", ns, "link", "set", "tap0", "up")
        yield ns
    finally:
        netns_del(ns)


def test_net_on_a_tap_made_beforehand(make_double, tap_netns):
    """CH opens the TAP netd made (it needs no CAP_NET_ADMIN then); the guest answers on its /30."""
    ns = tap_netns
    dbl = make_double(netns=ns)
    cfg = kit_config(dbl, net=[{"tap": "tap0", "mac": "52:54:00:12:34:56"}])
    cfg["payload"]["cmdline"] += " husk.ip=10.42.0.2/30 husk.gw=10.42.0.1"
    assert dbl.call("PUT", "vm.create", cfg) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    Agent.connect(dbl.vsock).close()

    def guest_answers():
        # No ping here: a TCP connect to a closed port is refused by the guest's own stack.
        s = netns_socket(ns)
        s.settimeout(2)
        try:
            s.connect(("10.42.0.2", 9))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        finally:
            s.close()
        return True
    wait_for(guest_answers, timeout=60, interval=0.5, what="the guest's stack to answer on 10.42.0.2")
    neigh = sh("ip", "-n", ns, "neigh", "show", "10.42.0.2").stdout
    assert "52:54:00:12:34:56" in neigh
    assert dbl.call("PUT", "vmm.shutdown") == (200, None)
    assert dbl.wait_exit(30) == 0
    assert dbl.violation_list() == []


VIRTIOFSD = Path("/usr/lib/qemu/virtiofsd")
ROOTFS = BUILD / "kit" / "rootfs" / "hello"


def test_virtio_fs_kit_mode_workload(make_double, double_dir):
    """Kit mode as the runtime will run it on CH: the image directory over virtio-fs (vhost-user,
    which needs shared memory), the workload started and an exec answered over hybrid vsock."""
    require(VIRTIOFSD.is_file(), f"{VIRTIOFSD} not installed (Debian package qemu-system-common)")
    require(ROOTFS.is_dir(), f"{ROOTFS} not built (make guest)")
    sock = double_dir / "fs.sock"
    fsd = subprocess.Popen([str(VIRTIOFSD), f"--socket-path={sock}", "-o", f"source={ROOTFS}", "-o", "cache=auto",
                            "-o", "sandbox=chroot", "-o", "no_posix_lock"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, timeout=30, what="virtiofsd's socket")
        dbl = make_double()
        fs = [{"tag": "rootfs", "socket": str(sock), "num_queues": 1, "queue_size": 1024}]
        # CH refuses vhost-user without shared memory, at boot.
        assert dbl.call("PUT", "vm.create", kit_config(dbl, fs=fs)) == (204, None)
        st, err = dbl.call("PUT", "vm.boot")
        assert st == 400 and err[-1] == "Using vhost-user requires using shared memory or huge pages"
        assert dbl.call("PUT", "vm.delete") == (204, None)
        cfg = kit_config(dbl, fs=fs, memory={"size": 256 << 20, "shared": True})
        assert dbl.call("PUT", "vm.create", cfg) == (204, None)
        assert dbl.call("PUT", "vm.boot") == (204, None)

        agent = Agent.connect(dbl.vsock)
        assert agent.recv()["type"] == "ready"
        assert agent.request({"type": "hello", "id": 1, "version": 1})["type"] == "hello"
        started = agent.request({"type": "start", "id": 2, "mode": "rootfs", "tag": "rootfs", "command": None,
                                 "env": {}, "kind": "worker", "hostname": "chd1"})
        assert started.get("type") == "start", started
        out = agent.request({"type": "exec", "id": 3, "argv": ["cat", "/proc/mounts"], "env": {}, "cwd": None,
                             "timeout_ms": 30000, "stdin": None})
        # The root is the overlay over the virtio-fs mount (moved out of sight by the switch).
        assert out["exit_status"] == 0 and b"lowerdir=/mnt/image," in out["stdout"], out
        listing = agent.request({"type": "exec", "id": 4, "argv": ["ls", "/bin/busybox"], "env": {}, "cwd": None,
                                 "timeout_ms": 30000, "stdin": None})
        assert listing["exit_status"] == 0 and b"/bin/busybox" in listing["stdout"], listing
        agent.close()
        assert dbl.call("PUT", "vmm.shutdown") == (200, None)
        assert dbl.wait_exit(30) == 0
        # The two refused boots are CH's answers, not husk's mistakes: nothing recorded.
        assert dbl.violation_list() == []
    finally:
        fsd.kill()
        fsd.wait()


def test_kit_kernel_with_a_disk(make_double, double_dir):
    """Disk mode with the kit kernel: a raw ext4 image as a read-only virtio-blk disk, mounted by the agent."""
    require(ROOTFS.is_dir(), f"{ROOTFS} not built (make guest)")
    require(shutil.which("mkfs.ext4"), "mkfs.ext4 not installed (Debian package e2fsprogs)")
    disk = double_dir / "disk.raw"
    sh("mkfs.ext4", "-q", "-F", "-d", str(ROOTFS), str(disk), "64M")
    dbl = make_double()
    assert dbl.call("PUT", "vm.create", kit_config(dbl, disks=[{"path": str(disk), "readonly": True}])) == (204, None)
    assert dbl.call("PUT", "vm.boot") == (204, None)
    agent = Agent.connect(dbl.vsock)
    assert agent.recv()["type"] == "ready"
    assert agent.request({"type": "hello", "id": 1, "version": 1})["type"] == "hello"
    started = agent.request({"type": "start", "id": 2, "mode": "disk", "tag": "/dev/vda", "command": None,
                             "env": {}, "kind": "worker", "hostname": "chd1"})
    assert started.get("type") == "start", started
    out = agent.request({"type": "exec", "id": 3, "argv": ["ls", "/bin/busybox"], "env": {}, "cwd": None,
                         "timeout_ms": 30000, "stdin": None})
    assert out["exit_status"] == 0 and b"/bin/busybox" in out["stdout"], out
    agent.close()
    assert dbl.call("PUT", "vmm.shutdown") == (200, None)
    assert dbl.wait_exit(30) == 0
    assert dbl.violation_list() == []
