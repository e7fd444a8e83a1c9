"""test_systemd.py: husk installed by `make install` and run by systemd, for real: `make image`'s
Debian 12 boots as a VM (QEMU, q35 with OVMF, TCG; no NIC, so nothing to isolate), `make install
DESTDIR=...`'s output reaches it on a disk of its own (an ext4 image made with mkfs.ext4 -d), and
a root shell on the guest's second serial port (started by the seed's runcmd) runs each step:
`systemctl enable --now husk.target` brings every unit to active, `husk deployment list`
answers, `systemctl reload husk-apiserver` keeps it serving (same pid), `systemctl restart
husk-vmm-driver` leaves it active (a new pid), and `husk node get` sees every daemon. One VM
serves every test of this file; each step waits for what it needs with a deadline."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from husk_stack import BUILD, REPO, require, wait_for

# On one worker: one booted image serves the module's tests (conftest.py). Its boot takes minutes:
# long, so that it starts first rather than last.
pytestmark = [pytest.mark.xdist_group("systemd"), pytest.mark.long]

IMAGE = BUILD / "image" / "debian-12.raw"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
QEMU = shutil.which("qemu-system-x86_64")
UNITS = ["husk-apiserver", "husk-scheduler", "husk-vmm-driver", "husk-netd", "husk-logd"]
BOOT_DEADLINE = 900.0  # QEMU start to the guest's shell: ~60 s on a quiet machine, over 10 min seen under load 20
PREFIX = "/usr/local"

USER_DATA = """#cloud-config
# A root shell on the second serial port, as a service of its own (cloud-init's processes end with
# it), as early as cloud-init can start it: cloud-init.service runs before sysinit.target, so the
# shell's unit must not wait for it (no default dependencies) and systemd-run must not wait either.
# On a terminal sh is interactive: empty prompts keep them out of the commands' output.
bootcmd:
  - [systemd-run, --no-block, --unit=husk-test-shell, -p, DefaultDependencies=no, --setenv=PS1=, --setenv=PS2=,
     /bin/sh, -c,
     "stty -F /dev/ttyS1 raw -echo && exec /bin/sh </dev/ttyS1 >/dev/ttyS1 2>&1"]
"""


class GuestShell:
    """Commands for the guest's shell on a unix socket (QEMU's end of its ttyS1)."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.n = 0
        self.buf = b""

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(self.path))
        self.sock = s

    def run(self, command, timeout=60.0):
        """(exit status, output) of command, run by the guest's /bin/sh (stderr merged)."""
        self.n += 1
        marker = f"__husk_done_{self.n}__"
        self.sock.sendall(f"{{ {command}\n}} 2>&1; echo {marker} $?\n".encode())
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"{marker} (\d+)\r?\n".encode())
        while True:
            m = pattern.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.start()], self.buf[m.end():]
                return int(m.group(1)), out.decode(errors="replace").replace("\r\n", "\n")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"guest: {command!r} did not end within {timeout:g} s; got so far: {self.buf[-2000:]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"guest shell closed while running {command!r}")
            self.buf += chunk

    def ok(self, command, timeout=60.0):
        rc, out = self.run(command, timeout)
        assert rc == 0, f"guest: {command!r} exited {rc}:\n{out}"
        return out


def make_install(dest):
    r = subprocess.run(["make", "-s", "-C", str(REPO), f"BUILD={BUILD}", "install", f"DESTDIR={dest}",
                        f"PREFIX={PREFIX}"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def ext4_of(tree, path, label):
    size_mib = 64 + sum(f.stat().st_size for f in Path(tree).rglob("*") if f.is_file()) // (1 << 20) * 2
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(tree), str(path), f"{size_mib}M"], check=True,
                   capture_output=True, timeout=120)


def seed_of(path):
    d = Path(str(path) + ".d")
    d.mkdir()
    (d / "meta-data").write_text("instance-id: husk-systemd-test\nlocal-hostname: husk-systemd\n")
    (d / "user-data").write_text(USER_DATA)
    subprocess.run(["mkfs.vfat", "-n", "CIDATA", "-C", str(path), "2048"], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", str(path), str(d / "meta-data"), str(d / "user-data"), "::"], check=True,
                   capture_output=True)


def units_state(guest):
    _, out = guest.run("systemctl is-active " + " ".join(UNITS))
    return dict(zip(UNITS, out.split()))


def why(guest, units):
    """What systemd and the journal say about units, for a failure's message."""
    return "\n".join(guest.run(f"systemctl status --no-pager -n 0 {u}; journalctl --no-pager -n 25 -u {u}",
                               timeout=60)[1] for u in units)


def main_pid(guest, unit):
    return int(guest.ok(f"systemctl show -p MainPID --value {unit}").strip())


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    require(QEMU is not None, "qemu-system-x86_64 not installed")
    require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
    require(OVMF_CODE.is_file() and OVMF_VARS.is_file(), "OVMF firmware not installed (Debian package ovmf)")
    require(os.geteuid() == 0, "make install's tree must be owned by root in the guest")
    tmp = tmp_path_factory.mktemp("systemd")
    make_install(tmp / "install")
    ext4_of(tmp / "install", tmp / "install.ext4", "HUSKINST")
    seed_of(tmp / "seed.img")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(IMAGE), str(tmp / "disk.qcow2")],
                   check=True, capture_output=True)
    shutil.copyfile(OVMF_VARS, tmp / "vars.fd")
    console, shell = tmp / "console.log", tmp / "shell.sock"
    # One vCPU: with two under TCG, on a loaded host, a CI run saw the guest's CPU 0 stuck for good
    # (soft lockup in cloud-init, 786 s and counting); the host's two cores are shared with the
    # other test worker anyway.
    argv = [QEMU, "-machine", "q35,accel=tcg", "-m", "1536", "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={tmp / 'vars.fd'}",
            "-drive", f"if=none,id=disk,format=qcow2,file={tmp / 'disk.qcow2'}",
            "-device", "virtio-blk-pci,drive=disk,bootindex=0",
            "-drive", f"if=none,id=seed,format=raw,readonly=on,file={tmp / 'seed.img'}",
            "-device", "virtio-blk-pci,drive=seed",
            "-drive", f"if=none,id=inst,format=raw,readonly=on,file={tmp / 'install.ext4'}",
            "-device", "virtio-blk-pci,drive=inst",
            "-serial", f"file:{console}", "-serial", f"unix:{shell},server=on,wait=off"]
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    g = GuestShell(shell)
    try:
        def answering():
            assert qemu.poll() is None, f"QEMU exited {qemu.returncode}: {qemu.stdout.read().decode(errors='replace')}"
            if g.sock is None:
                g.connect()
            try:
                return g.run("echo ready", timeout=2)[1].strip().endswith("ready")
            except TimeoutError:
                return False
        start = time.monotonic()
        try:
            wait_for(lambda: shell.exists() and answering(), timeout=BOOT_DEADLINE, interval=1.0,
                     what="the guest's shell on ttyS1")
        except TimeoutError:
            tail = console.read_bytes()[-3000:].decode(errors="replace") if console.exists() else ""
            pytest.fail(f"the guest's shell did not answer within {BOOT_DEADLINE:g} s; console tail:\n{tail}")
        print(f"\nsystemd test: guest shell after {time.monotonic() - start:.1f} s")
        g.buf = b""
        yield g
    finally:
        if qemu.poll() is None:
            qemu.send_signal(signal.SIGKILL)
            qemu.wait(timeout=30)
        qemu.stdout.close()


@pytest.fixture(scope="module")
def installed(guest):
    """make install's tree copied over /, husk.target enabled and started."""
    # --remove-destination: the image's own husk-agent runs from /usr/local/bin (a busy text file).
    guest.ok("mount -o ro \"$(blkid -L HUSKINST)\" /mnt && cp -a --remove-destination /mnt/. / && umount /mnt")
    # Every library the binaries link is in the image (deploy/image/build-image.sh's packages).
    daemons = " ".join(f"{PREFIX}/bin/{u}" for u in UNITS)
    guest.ok(f"! ldd {daemons} {PREFIX}/bin/husk {PREFIX}/lib/husk/husk-bus.so | grep 'not found'")
    # The boot ends (cloud-init's last stages) before husk starts: systemd's own state, not a guess.
    guest.run("systemctl is-system-running --wait", timeout=BOOT_DEADLINE)
    guest.ok("systemctl daemon-reload")
    # --no-block: the start jobs are waited for below, unit by unit, with what systemd says on failure.
    return guest.run("systemctl enable --now --no-block husk.target", timeout=120)


def test_every_unit_reaches_active(guest, installed):
    rc, out = installed
    assert rc == 0, out
    try:
        wait_for(lambda: set(units_state(guest).values()) == {"active"}, timeout=300, interval=2.0,
                 what="every husk unit active")
    except TimeoutError:
        states = units_state(guest)
        pytest.fail(f"not all active: {states}\n{why(guest, [u for u, s in states.items() if s != 'active'])}")
    assert guest.ok("systemctl is-enabled husk.target").strip() == "enabled"
    assert guest.ok("systemctl is-active husk.target").strip() == "active"


def test_deployment_list_answers(guest, installed):
    # As root on the host: the local socket, no token.
    out = guest.ok(f"{PREFIX}/bin/husk deployment list")
    assert out.strip() == "No deployments found.", out
    assert json.loads(guest.ok(f"{PREFIX}/bin/husk deployment list -o json")) == []


def test_reload_apiserver_keeps_serving(guest, installed):
    def reloads():
        return guest.run("journalctl --no-pager -o cat -u husk-apiserver")[1].count("Reloaded /etc/husk/config.yaml")
    before, seen = main_pid(guest, "husk-apiserver"), reloads()
    guest.ok("systemctl reload husk-apiserver")
    wait_for(lambda: reloads() > seen, timeout=30, interval=0.5, what="husk-apiserver's log of the reload")
    assert guest.ok("systemctl is-active husk-apiserver").strip() == "active"
    assert main_pid(guest, "husk-apiserver") == before
    assert guest.ok(f"{PREFIX}/bin/husk deployment list").strip() == "No deployments found."


def test_restart_vmm_driver_leaves_it_active(guest, installed):
    before = main_pid(guest, "husk-vmm-driver")
    guest.ok("systemctl restart husk-vmm-driver", timeout=90)
    assert guest.ok("systemctl is-active husk-vmm-driver").strip() == "active", why(guest, ["husk-vmm-driver"])
    assert main_pid(guest, "husk-vmm-driver") not in (0, before)
    # Every daemon answers on the bus, the restarted one too (GET /node asks each).
    node = json.loads(guest.ok(f"{PREFIX}/bin/husk node get -o json"))
    assert [(d["name"], d["reachable"]) for d in node["daemons"]] == [
        (u.removeprefix("husk-"), True) for u in ["husk-apiserver", "husk-scheduler", "husk-vmm-driver", "husk-netd",
                                                  "husk-logd"]], node["daemons"]
    vmm = [d for d in node["daemons"] if d["name"] == "vmm-driver"][0]
    assert vmm["pid"] == main_pid(guest, "husk-vmm-driver")
