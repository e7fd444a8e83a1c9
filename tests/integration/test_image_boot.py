"""test_image_boot.py: boot `make image`'s Debian disk image with plain QEMU, no husk daemons.

What disk mode will do, by hand: OVMF on q35 (TCG), the image through the qcow2 overlay husk
writes itself (vmm_disk.c, through `test_disk create`; the base is never written), the NoCloud
seed made by husk's own seed builder (vmm_seed.c, through `test_seed write`), serial console to a file, a NIC on a TAP inside a namespace this test makes.
The test waits for cloud-init's "finished" line on the console, then reads the guest's page on
port 8080 from inside the namespace: the environment as the file holds it and as systemd gave
it to the service (EnvironmentFile=), the host name, the seed's files and their modes. Then an
ACPI power button press must power the guest off. Every wait polls with a deadline.
"""
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

from husk_stack import BUILD, netns_socket, require, wait_for
from netd_util import netns_add, netns_del, sh

IMAGE = BUILD / "image" / "debian-12.raw"
SEED_TOOL = BUILD / "san" / "tests" / "vmm-driver" / "test_seed"
DISK_TOOL = BUILD / "san" / "tests" / "vmm-driver" / "test_disk"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
QEMU = shutil.which("qemu-system-x86_64")

BOOT_DEADLINE = 600.0   # QEMU start to cloud-init's "finished"; ~70 s on a quiet machine, minutes under load
PAGE_DEADLINE = 60.0
POWEROFF_DEADLINE = 90.0
INSTANCE = "0123456789ab"
GUEST, HOST, PREFIX = "10.203.0.2", "10.203.0.1", 30
FINISHED = re.compile(rb"Cloud-init v\. \S+ finished at")

# Values that break naive quoting: spaces, both quotes, $, backquotes, backslashes, newlines,
# a tab, non-ASCII.
ENV = {
    "GREETING": "hello world",
    "QUOTED": "it's \"quoted\" 'twice'",
    "DOLLAR": "$HOME ${PATH} $(id) `id`",
    "BACKSLASH": "a\\b\\\\c \\n \\$ end\\",
    "MULTILINE": "line one\nline two\n",
    "TAB": "a\tb",
    "UNICODE": "h\u00e9llo \u2603 \U0001f600",
    "EMPTY": "",
}

pytestmark = pytest.mark.require(QEMU is not None, "qemu-system-x86_64 not installed")


def console_marks(text, start, marks):
    """Record the first time each console milestone is seen (seconds since QEMU started)."""
    now = time.monotonic() - start
    for name, pattern in (("firmware", rb"BdsDxe: starting"), ("kernel", rb"\[ +\d+\.\d+\]"),
                          ("init-local", rb"running 'init-local'"), ("finished", FINISHED.pattern)):
        if name not in marks and re.search(pattern, text):
            marks[name] = now


def http_get(ns, host, port, path, timeout=5.0):
    sock = netns_socket(ns)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head[:200]
    return body


@pytest.fixture
def guest_netns(netns_available):
    ns = f"husk-img-{os.getpid()}"
    netns_add(ns)
    try:
        sh("ip", "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
        sh("ip", "-n", ns, "addr", "add", f"{HOST}/{PREFIX}", "dev", "tap0")
        sh("ip", "-n", ns, "link", "set", "tap0", "up")
        yield ns
    finally:
        netns_del(ns)


@pytest.mark.long
def test_image_boots_with_husk_seed(tmp_path, guest_netns):
    require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
    for tool in (SEED_TOOL, DISK_TOOL):
        require(tool.is_file(), f"{tool} not built (make {tool.relative_to(BUILD.parent)})")
    require(OVMF_CODE.is_file() and OVMF_VARS.is_file(), "OVMF firmware not installed (Debian package ovmf)")
    ns = guest_netns

    seed = subprocess.run([str(SEED_TOOL), "write", str(tmp_path), INSTANCE, "--address", f"{GUEST}/{PREFIX}",
                           "--gateway", HOST, *[f"{k}={v}" for k, v in ENV.items()]],
                          capture_output=True, text=True, timeout=60)
    assert seed.returncode == 0, seed.stderr
    seed_path = Path(seed.stdout.strip())
    assert seed_path.stat().st_mode & 0o777 == 0o600

    made = subprocess.run([str(DISK_TOOL), "create", str(tmp_path), str(IMAGE)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    method, fmt, disk = made.stdout.split()
    vars_fd = tmp_path / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, vars_fd)
    base_before = IMAGE.stat()
    console = tmp_path / "console.log"
    qmp_path = tmp_path / "qmp.sock"
    argv = [
        "ip", "netns", "exec", ns, QEMU, "-machine", "q35,accel=tcg", "-m", "1024", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
        "-drive", f"if=none,id=disk,format={fmt},file={disk}",
        "-device", "virtio-blk-pci,drive=disk,bootindex=0",
        "-drive", f"if=none,id=seed,format=raw,readonly=on,file={seed_path}",
        "-device", "virtio-blk-pci,drive=seed",
        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:c0:ff:ee,romfile=",
        "-serial", f"file:{console}",
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
    ]
    start = time.monotonic()
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    marks = {}
    try:
        def finished():
            assert qemu.poll() is None, f"QEMU exited with {qemu.returncode}: {qemu.stdout.read().decode(errors='replace')}"
            text = console.read_bytes() if console.exists() else b""
            console_marks(text, start, marks)
            return FINISHED.search(text)

        try:
            wait_for(finished, timeout=BOOT_DEADLINE, interval=0.2, what="cloud-init's finished line on the console")
        except TimeoutError:
            tail = console.read_bytes()[-3000:].decode(errors="replace") if console.exists() else ""
            pytest.fail(f"no 'Cloud-init ... finished' within {BOOT_DEADLINE:g} s (marks {marks}); console tail:\n{tail}")
        print(f"\nimage boot: QEMU start to firmware boot {marks.get('firmware', -1):.1f} s, "
              f"first kernel line {marks.get('kernel', -1):.1f} s, init-local {marks.get('init-local', -1):.1f} s, "
              f"cloud-init finished {marks['finished']:.1f} s")

        # The page on 8080, reached over the /30 the seed's network-config gave the guest.
        doc = json.loads(wait_for(lambda: http_get(ns, GUEST, 8080, "/env.json"), timeout=PAGE_DEADLINE,
                                  interval=0.5, what=f"the guest's page at {GUEST}:8080"))
        assert doc["file"] == ENV, "the values /etc/husk/env holds"
        assert doc["service"] == ENV, "the values systemd's EnvironmentFile= gave the service"
        assert doc["hostname"] == INSTANCE
        files = doc["files"]
        assert files["/etc/husk/env"]["mode"] == "0600"
        assert files["/etc/profile.d/husk-env.sh"]["mode"] == "0600"
        assert files["/etc/systemd/system/service.d/husk-env.conf"] is not None
        assert files["/etc/ring/env"]["link"] == "/etc/husk/env"
        html = http_get(ns, GUEST, 8080, "/").decode()
        assert "hello world" in html and "it&#x27;s &quot;quoted&quot;" in html

        # A graceful stop as Ring's: the ACPI power button, and the guest powers itself off.
        qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        qmp.settimeout(10)
        qmp.connect(str(qmp_path))
        qmp.recv(4096)
        for cmd in ({"execute": "qmp_capabilities"}, {"execute": "system_powerdown"}):
            qmp.sendall(json.dumps(cmd).encode() + b"\n")
            # Events (POWERDOWN) may come first, and in a read of their own.
            got = b""
            while b'"return"' not in got:
                chunk = qmp.recv(4096)
                assert chunk and b'"error"' not in chunk, got + chunk
                got += chunk
        qmp.close()
        pressed = time.monotonic()
        wait_for(lambda: qemu.poll() is not None, timeout=POWEROFF_DEADLINE, interval=0.2,
                 what="the guest to power off after the ACPI power button")
        print(f"image boot: power button to QEMU exit {time.monotonic() - pressed:.1f} s")
        assert qemu.returncode == 0
    finally:
        if qemu.poll() is None:
            qemu.send_signal(signal.SIGKILL)
            qemu.wait(timeout=30)
        qemu.stdout.close()
    after = IMAGE.stat()
    assert (after.st_size, after.st_mtime_ns) == (base_before.st_size, base_before.st_mtime_ns), "the base image changed"
