"""test_vmm_driver.py: husk-vmm-driver alone, driven over its bus sockets as proto/SCHEMA.md describes.

Real QEMU microvms (TCG) boot the guest kit. The test speaks the wire format with nothing but
Python's zmq and msgpack: DEALER [""][method][{id, deadline, args}] for requests, SUB for the
instance.* events. Everything lives in a short temp dir; teardown kills only the processes this
test started (the daemon, and the VMMs it spawned for us, found by their instance directories),
by pid, and checks none is left.
"""
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import msgpack
import pytest
import zmq

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("HUSK_BUILD", os.path.join(REPO, "build")))
DAEMON = os.path.join(BUILD, "bin", "husk-vmm-driver")
KIT = os.path.join(BUILD, "kit")

BOOT_TIMEOUT = 60.0  # a kit guest is ready in ~2 s under TCG; a loaded CI host gets slack
EVENT_TIMEOUT = 10.0
STOP_TIMEOUT_S = 3

pytestmark = [
    pytest.mark.require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 not installed"),
    pytest.mark.require(os.path.exists(DAEMON), "husk-vmm-driver not built"),
    pytest.mark.require(os.path.exists(os.path.join(KIT, "vmlinux")), "guest kit not built (make guest)"),
]


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_until(predicate, timeout, what):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class BusError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Driver:
    """One husk-vmm-driver in its own temp dir, and a bus client for it."""

    def __init__(self):
        # Short: unix socket paths (bus endpoints, qmp.sock, agent.sock) stay below 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="/tmp/hv-")
        self.state_dir = os.path.join(self.dir, "state")
        self.instances_dir = os.path.join(self.state_dir, "instances")
        self.config = os.path.join(self.dir, "config.yaml")
        self.image = os.path.join(self.dir, "image.raw")
        with open(self.image, "wb") as f:
            f.truncate(1 << 20)
        with open(self.config, "w") as f:
            f.write(
                f"state_dir: {self.state_dir}\n"
                f"runtime_dir: {self.dir}/run\n"
                "log_level: debug\n"
                "vmm_driver:\n"
                f"  stop_timeout: {STOP_TIMEOUT_S}s\n"
                "kit:\n"
                f"  kernel: {KIT}/vmlinux\n"
                f"  initrd: {KIT}/initrd.gz\n"
                "runtime:\n"
                "  qemu:\n"
                "    accel: tcg\n"
            )
        self.proc = None
        self.daemon_pids = []
        self.logs = []
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        # vmm-driver holds what it publishes in its first 300 ms for subscribers to (re)connect;
        # reconnect well within that.
        self.sub.setsockopt(zmq.RECONNECT_IVL, 20)
        self.sub.connect(f"ipc://{self.dir}/run/vmm-driver.events")
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(f"ipc://{self.dir}/run/vmm-driver.requests")
        self.next_id = 1
        self.events = []  # received, not yet consumed: (monotonic time received, type, body)

    # ---- daemon ----------------------------------------------------------------------------

    def start(self):
        log = open(os.path.join(self.dir, f"vmm-driver.{len(self.logs)}.log"), "wb")
        self.logs.append(log.name)
        self.proc = subprocess.Popen([DAEMON, "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.daemon_pids.append(self.proc.pid)
        wait_until(lambda: self.call("instance.list", {}, timeout=1.0) is not None, 15, "vmm-driver to answer")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self):
        out = []
        for name in self.logs:
            with open(name, errors="replace") as f:
                out.append(f"==> {name}\n" + f.read())
        return "\n".join(out)

    # ---- bus -------------------------------------------------------------------------------

    def call(self, method, args, timeout=5.0):
        """Result of method, raising BusError for an error reply; None when no reply came."""
        rid = self.next_id
        self.next_id += 1
        deadline = int(time.time() * 1000 + timeout * 1000)
        body = msgpack.packb({"id": rid, "deadline": deadline, "args": args}, use_bin_type=True)
        self.dealer.send_multipart([b"", method.encode(), body])
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.dealer.poll(int(left * 1000)):
                return None
            frames = self.dealer.recv_multipart()
            assert frames[0] == b"" and frames[1] == b"reply", frames[:2]
            reply = msgpack.unpackb(frames[2], raw=False)
            if reply.get("id") != rid:
                continue  # a late answer to an earlier try
            if "error" in reply:
                raise BusError(reply["error"]["code"], reply["error"]["message"])
            return reply["result"]

    def must(self, method, args):
        result = self.call(method, args)
        assert result is not None, f"{method}: no reply\n{self.log_text()}"
        return result

    def wait_event(self, type_, instance_id, timeout=EVENT_TIMEOUT):
        """The next event of that type for that instance; earlier ones of other kinds stay queued."""
        end = time.monotonic() + timeout
        while True:
            for k, (t, ty, body) in enumerate(self.events):
                if ty == type_ and body.get("instance_id") == instance_id:
                    del self.events[k]
                    return t, body
            left = end - time.monotonic()
            if left <= 0:
                seen = [(ty, b.get("instance_id"), b.get("state")) for _, ty, b in self.events]
                raise AssertionError(f"no {type_} for {instance_id} within {timeout:g} s; queued: {seen}\n"
                                     f"{self.log_text()}")
            if self.sub.poll(int(left * 1000)):
                ty, body = self.sub.recv_multipart()
                self.events.append((time.monotonic(), ty.decode(), msgpack.unpackb(body, raw=False)))

    # ---- instances -------------------------------------------------------------------------

    def spec(self, instance_id, **over):
        # The kit boots with the image as a plain disk: `kernel:` keeps a file that is no bootable
        # disk from being booted by firmware (refused, see test_errors).
        s = {"instance_id": instance_id, "deployment_id": "dep-1", "generation": 1, "runtime": "qemu",
             "image": self.image, "kernel": os.path.join(KIT, "vmlinux"), "cpus": 1, "memory_mib": 256}
        s.update(over)
        return s

    def create_ready(self, instance_id):
        inst = self.must("instance.create", self.spec(instance_id))
        assert inst["state"] == "starting" and inst["pid"] > 0
        _, created = self.wait_event("instance.created", instance_id)
        assert created["pid"] == inst["pid"] and "ts" in created
        _, running = self.wait_event("instance.running", instance_id)
        assert running["state"] == "running"
        _, ready = self.wait_event("instance.ready", instance_id, timeout=BOOT_TIMEOUT)
        assert ready["state"] == "ready" and ready["ready_at"] >= ready["started_at"] > 0
        return ready

    def listed(self, instance_id):
        for inst in self.must("instance.list", {}):
            if inst["instance_id"] == instance_id:
                return inst
        return None

    def record(self, instance_id):
        with open(os.path.join(self.instances_dir, instance_id, "instance.json")) as f:
            return json.load(f)

    # ---- teardown --------------------------------------------------------------------------

    def our_vmm_pids(self):
        """Live processes whose working directory is one of our instance directories: the VMMs
        our daemon spawned for this test (QEMU runs in its instance directory)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(self.instances_dir + "/") and pid_alive(int(entry)):
                pids.append(int(entry))
        return pids

    def teardown(self):
        self.stop()
        for pid in self.daemon_pids:
            assert not pid_alive(pid), f"vmm-driver pid {pid} still running"
        for pid in self.our_vmm_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not self.our_vmm_pids(), 10, "our VMMs to be gone")
        self.sub.close(0)
        self.dealer.close(0)
        self.ctx.term()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def driver():
    d = Driver()
    try:
        d.start()
        yield d
    finally:
        d.teardown()


def test_create_ready_adopt_and_crash(driver):
    iid = "a00000000001"
    ready = driver.create_ready(iid)
    pid = ready["pid"]

    # Everything of the instance is in its directory, and the record says who the VMM is.
    idir = os.path.join(driver.instances_dir, iid)
    assert {"instance.json", "qmp.sock", "agent.sock", "console.log", "qemu.log"} <= set(os.listdir(idir))
    # Events go out first, the record is saved right after.
    rec = wait_until(lambda: (r := driver.record(iid))["state"] == "ready" and r, 5, "instance.json to say ready")
    assert rec["pid"] == pid and rec["pid_start_time"] > 0
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[19]) == rec["pid_start_time"]
    assert os.readlink(f"/proc/{pid}/cwd") == idir
    assert driver.listed(iid)["state"] == "ready"
    assert driver.must("instance.list", {"deployment_id": "nope"}) == []

    # vmm-driver dies hard; the VM does not care, and the next vmm-driver takes it back.
    driver.kill9()
    assert pid_alive(pid)
    driver.start()
    _, adopted = driver.wait_event("instance.adopted", iid)
    assert adopted["pid"] == pid and adopted["state"] == "ready"
    assert pid_alive(pid)
    listed = driver.listed(iid)
    assert listed["pid"] == pid and listed["state"] == "ready"

    # The adopted VMM is not our child any more, and its crash is still seen at once.
    t_kill = time.monotonic()
    wall_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    t_seen, exited = driver.wait_event("instance.exited", iid)
    ms = (t_seen - t_kill) * 1000
    print(f"\nadopted VMM SIGKILL -> instance.exited: {ms:.1f} ms (event ts - kill: "
          f"{exited['ts'] - wall_kill * 1000:.1f} ms), reason {exited['exit_reason']}, status {exited['exit_status']}")
    assert exited["state"] == "exited"
    # Killed when the kernel (>= 6.15) could give us the status of a non-child, else unknown.
    assert (exited["exit_reason"], exited["exit_status"]) in (("killed", 137), ("crashed", -1))
    assert ms < 5000, "an exit must be seen from the pidfd, not from a periodic tick"

    # Kept until removed, then nothing is left.
    assert driver.listed(iid)["state"] == "exited"
    wait_until(lambda: driver.record(iid)["state"] == "exited", 5, "instance.json to say exited")
    assert driver.must("instance.remove", {"instance_id": iid}) == {}
    driver.wait_event("instance.removed", iid)
    assert not os.path.exists(idir)
    assert driver.listed(iid) is None


def test_child_crash_detected(driver):
    iid = "a00000000002"
    inst = driver.must("instance.create", driver.spec(iid))
    driver.wait_event("instance.running", iid)
    t_kill = time.monotonic()
    os.kill(inst["pid"], signal.SIGKILL)
    t_seen, exited = driver.wait_event("instance.exited", iid)
    print(f"\nchild VMM SIGKILL -> instance.exited: {(t_seen - t_kill) * 1000:.1f} ms")
    assert exited["exit_reason"] == "killed" and exited["exit_status"] == 137
    assert exited["exited_at"] >= exited["started_at"]


def test_stop_remove(driver):
    iid = "a00000000003"
    ready = driver.create_ready(iid)
    stopping = driver.must("instance.stop", {"instance_id": iid, "remove": True})
    assert stopping["state"] == "stopping"
    driver.wait_event("instance.stopping", iid)
    # The agent shuts the guest down long before the SIGKILL deadline.
    _, exited = driver.wait_event("instance.exited", iid, timeout=STOP_TIMEOUT_S + 10)
    assert exited["exit_reason"] == "stopped"
    _, removed = driver.wait_event("instance.removed", iid)
    assert removed["instance_id"] == iid
    assert not os.path.exists(os.path.join(driver.instances_dir, iid))
    assert not pid_alive(ready["pid"])
    assert driver.listed(iid) is None
    with pytest.raises(BusError) as e:
        driver.call("instance.stop", {"instance_id": iid, "remove": True})
    assert e.value.code == "not_found"


def test_stop_kills_after_timeout(driver):
    """A VMM that does not react to the stop (here: frozen with SIGSTOP, so neither the agent nor
    QMP can act) is killed after stop_timeout, and that is still a stop."""
    iid = "a00000000004"
    inst = driver.must("instance.create", driver.spec(iid))
    driver.wait_event("instance.running", iid)
    os.kill(inst["pid"], signal.SIGSTOP)
    t0 = time.monotonic()
    driver.must("instance.stop", {"instance_id": iid, "remove": False})
    _, exited = driver.wait_event("instance.exited", iid, timeout=STOP_TIMEOUT_S + 10)
    elapsed = time.monotonic() - t0
    assert (exited["exit_reason"], exited["exit_status"]) == ("stopped", 137)
    assert elapsed >= STOP_TIMEOUT_S - 0.5
    assert not pid_alive(inst["pid"])
    assert os.path.isdir(os.path.join(driver.instances_dir, iid))  # kept: remove was false
    # Stopping an exited instance with remove just removes it.
    assert driver.must("instance.stop", {"instance_id": iid, "remove": True})["state"] == "exited"
    driver.wait_event("instance.removed", iid)
    assert not os.path.exists(os.path.join(driver.instances_dir, iid))


def test_vanished_while_down(driver):
    iid = "a00000000005"
    inst = driver.must("instance.create", driver.spec(iid))
    driver.wait_event("instance.running", iid)
    driver.kill9()
    # Wait on a pidfd, not on the leader's zombie state: a multi-threaded QEMU's leader turns
    # zombie before its other threads are gone, and until they are the process has not exited.
    pidfd = os.pidfd_open(inst["pid"])
    os.kill(inst["pid"], signal.SIGKILL)
    try:
        assert select.select([pidfd], [], [], 10)[0], "the VMM did not die"
    finally:
        os.close(pidfd)
    driver.start()
    _, exited = driver.wait_event("instance.exited", iid)
    assert exited["exit_reason"] == "vanished" and exited["exit_status"] == -1
    assert driver.listed(iid)["state"] == "exited"


def test_unreadable_instance_dir_is_skipped(driver):
    bad = os.path.join(driver.instances_dir, "b00000000001")
    os.makedirs(bad)
    with open(os.path.join(bad, "instance.json"), "w") as f:
        f.write("{not json")
    driver.stop()
    driver.start()
    assert driver.listed("b00000000001") is None
    # Its id stays taken: we never reuse a directory we do not understand.
    with pytest.raises(BusError) as e:
        driver.call("instance.create", driver.spec("b00000000001"))
    assert e.value.code == "conflict"


def esp_disk(driver):
    """A GPT disk with an (empty) EFI system partition: bootable as far as husk can tell."""
    esp = os.path.join(driver.dir, "esp.raw")
    with open(esp, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["sfdisk", "-q", esp], input="label: gpt\n,,U\n", text=True, check=True, capture_output=True)
    return esp


@pytest.mark.require(os.path.exists("/usr/share/OVMF/OVMF_CODE_4M.fd"), "OVMF firmware not installed (Debian package ovmf)")
def test_firmware_boot_files(driver):
    """A disk without kernel: or command boots by firmware (q35, OVMF): its own disk, firmware
    variables and seed in the directory; the seed goes when the VM ends, the rest with the
    directory. Nothing needs to boot for that: OVMF finding no loader is enough."""
    iid = "f00000000001"
    esp = esp_disk(driver)
    spec = driver.spec(iid, image=esp, environment={"GREETING": "hello world"})
    del spec["kernel"]
    inst = driver.must("instance.create", spec)
    driver.wait_event("instance.running", iid)
    _, ready = driver.wait_event("instance.ready", iid)  # ready once QEMU runs, as Ring's
    idir = os.path.join(driver.instances_dir, iid)
    files = set(os.listdir(idir))
    assert {"seed.img", "efivars.fd", "console.log", "qmp.sock", "agent.sock"} <= files, files
    [disk] = [f for f in files if f.startswith("disk.")]
    for f in ("seed.img", disk):
        assert os.stat(os.path.join(idir, f)).st_mode & 0o777 == 0o600, f
    with open(f"/proc/{inst['pid']}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    assert "q35" in argv and "tcg,tb-size=16" in argv and "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" in argv
    assert "-kernel" not in argv
    assert driver.record(iid)["firmware_boot"] is True
    # No husk-agent in there: exec says the image may not carry it, after the agent grace (10 s).
    with pytest.raises(BusError) as e:
        driver.call("instance.exec", {"instance_id": iid, "argv": ["true"], "timeout_ms": 1}, timeout=30)
    assert e.value.code == "unavailable" and "may not carry it" in e.value.message \
        and "husk-agent.service" in e.value.message, e.value

    driver.must("instance.stop", {"instance_id": iid, "remove": False})
    driver.wait_event("instance.exited", iid, timeout=STOP_TIMEOUT_S + 10)
    # instance.exited is published first (the scheduler waits for it), the seed removed just after.
    wait_until(lambda: "seed.img" not in os.listdir(idir), 10, "the seed removed after the exit")
    left = set(os.listdir(idir))
    assert disk in left, left
    assert driver.must("instance.remove", {"instance_id": iid}) == {}
    driver.wait_event("instance.removed", iid)
    assert not os.path.exists(idir)


def test_errors(driver):
    def error(method, args):
        with pytest.raises(BusError) as e:
            driver.call(method, args)
        return e.value

    e = error("instance.create", driver.spec("c00000000001", image="/nonexistent/disk.raw"))
    assert e.code == "invalid" and "image" in e.message and "/nonexistent/disk.raw" in e.message
    e = error("instance.create", driver.spec("c00000000001", kernel="/nonexistent/vmlinux"))
    assert e.code == "invalid" and "kernel" in e.message
    e = error("instance.create", driver.spec("c00000000001", initrd="relative/initrd"))
    assert e.code == "invalid" and "initrd" in e.message
    e = error("instance.create", driver.spec("../../etc/x"))
    assert e.code == "invalid" and "instance_id" in e.message
    e = error("instance.create", driver.spec("c00000000001", runtime="cloud-hypervisor"))
    assert e.code == "invalid" and e.message.startswith("runtime cloud-hypervisor is not enabled on this host")
    e = error("instance.create", driver.spec("c00000000001", runtime="docker"))
    assert e.code == "invalid" and "runtime" in e.message
    e = error("instance.create", driver.spec("c00000000001", memory_mib=64))
    assert e.code == "invalid" and "memory_mib" in e.message
    spec = driver.spec("c00000000001")
    del spec["image"]
    e = error("instance.create", spec)
    assert e.code == "invalid" and "image" in e.message
    e = error("instance.create", driver.spec("c00000000001", cpus="two"))
    assert e.code == "invalid" and "cpus" in e.message
    e = error("instance.create", driver.spec("c00000000001", boot="uefi"))
    assert e.code == "invalid" and e.message == 'boot: must be "firmware" or "kit"', e.message
    # Firmware boots the disk's own kernel: a kernel (or a command, or a directory) contradicts it.
    e = error("instance.create", driver.spec("c00000000001", boot="firmware"))
    assert e.code == "invalid" and e.message.startswith('boot: "firmware" boots the disk\'s own kernel'), e.message
    spec = driver.spec("c00000000001", boot="firmware", image=driver.dir)
    del spec["kernel"]
    e = error("instance.create", spec)
    assert e.code == "invalid" and e.message.startswith('boot: "firmware" needs a disk image'), e.message
    # Without `kernel:` or a command a file boots by its own firmware, so it must be a disk that
    # firmware can boot: refused with the reason apiserver gives at apply, never a kit boot.
    spec = driver.spec("c00000000001")
    del spec["kernel"]
    e = error("instance.create", spec)
    assert e.code == "invalid" and e.message == f"image: {driver.image}: not a bootable disk: no GPT partition table", \
        e.message
    # A bootable one whose environment cloud-init cannot carry: refused at once, naming the key.
    esp = esp_disk(driver)
    spec = driver.spec("c00000000001", environment={"GOOD": "1", "BAD": "a\x01b"}, image=esp)
    del spec["kernel"]
    e = error("instance.create", spec)
    assert e.code == "invalid" and "BAD" in e.message, e.message
    # Nothing was left behind by the refused creates.
    assert os.listdir(driver.instances_dir) == []

    inst = driver.must("instance.create", driver.spec("c00000000002"))
    e = error("instance.create", driver.spec("c00000000002"))
    assert e.code == "conflict"
    e = error("instance.remove", {"instance_id": "c00000000002"})
    assert e.code == "conflict"
    e = error("instance.stop", {"instance_id": "c00000000099", "remove": False})
    assert e.code == "not_found"
    e = error("instance.remove", {})
    assert e.code == "invalid"
    driver.must("instance.stop", {"instance_id": "c00000000002", "remove": True})
    driver.wait_event("instance.removed", "c00000000002", timeout=STOP_TIMEOUT_S + 10)
    assert not pid_alive(inst["pid"])


def test_reload(driver):
    """SIGHUP takes a new config, but never one that moves the instances directory."""
    with open(driver.config) as f:
        text = f.read()
    with open(driver.config, "w") as f:
        f.write(text.replace(f"stop_timeout: {STOP_TIMEOUT_S}s", "stop_timeout: 7s"))
    driver.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "Reloaded" in driver.log_text(), 10, "the reload")
    with open(driver.config, "w") as f:
        f.write(text.replace("vmm_driver:\n", f"vmm_driver:\n  instances_dir: {driver.dir}/elsewhere\n"))
    driver.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "cannot change while running" in driver.log_text(), 10, "the refused reload")
    assert driver.must("instance.list", {}) == []
    assert driver.proc.poll() is None


def test_exit_published_before_virtiofsd_is_reaped(driver):
    """instance.exited goes out before vmm-driver stops and reaps the VM's virtiofsd: virtiofsd holds
    the guest's RAM (a shared memfd), so its end frees that and takes as long as QEMU's own teardown
    (make bench measured that margin over a bare pidfd wait). Here virtiofsd cannot be reaped until
    this test lets it (it is traced from here: its exit goes to the tracer first), which before the
    fix held the event back for as long."""
    iid = "a00000000009"
    driver.must("instance.create", driver.spec(iid, image=os.path.join(KIT, "rootfs", "hello")))
    _, running = driver.wait_event("instance.running", iid)
    fs_pid = driver.record(iid)["fs_pid"]
    assert fs_pid > 0 and pid_alive(fs_pid)

    libc = ctypes.CDLL(None, use_errno=True)
    seized, release, reaped = threading.Event(), threading.Event(), {}

    def tracer():  # ptrace is per thread: the thread that seizes is the one that reaps
        if libc.ptrace(0x4206, fs_pid, None, None) != 0:  # PTRACE_SEIZE
            reaped["error"] = os.strerror(ctypes.get_errno())
            seized.set()
            return
        seized.set()
        release.wait(60)
        reaped["status"] = os.waitpid(fs_pid, 0x40000000)  # __WALL

    t = threading.Thread(target=tracer)
    t.start()
    try:
        assert seized.wait(10) and "error" not in reaped, reaped
        os.kill(running["pid"], signal.SIGKILL)
        _, exited = driver.wait_event("instance.exited", iid)
        assert exited["exit_reason"] == "killed"
    finally:
        release.set()
        t.join(70)
    assert "status" in reaped
    # vmm-driver still stops its virtiofsd once it can.
    wait_until(lambda: not pid_alive(fs_pid), EVENT_TIMEOUT, "virtiofsd gone")


def test_cloud_hypervisor_enabled_without_its_binary_says_so():
    """As Ring fails fast: vmm-driver says at start that the enabled runtime has no binary, keeps
    running (VMs of other runtimes, adopted ones), and instance.create names the binary."""
    d = Driver()
    try:
        with open(d.config, "a") as f:
            f.write("  cloud_hypervisor:\n    enabled: true\n    binary_path: /nonexistent/cloud-hypervisor\n")
        d.start()
        assert ("runtime.cloud_hypervisor is enabled but its binary /nonexistent/cloud-hypervisor is not found"
                in d.log_text()), d.log_text()
        with pytest.raises(BusError) as e:
            d.call("instance.create", d.spec("c00000000002", runtime="cloud-hypervisor"))
        assert e.value.message == ("cloud-hypervisor binary /nonexistent/cloud-hypervisor not found "
                                   "(runtime.cloud_hypervisor.binary_path)"), e.value
        assert not os.path.exists(os.path.join(d.instances_dir, "c00000000002"))
    finally:
        d.teardown()
