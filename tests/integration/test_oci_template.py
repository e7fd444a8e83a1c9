"""test_oci_template.py: husk-oci --template DIR (runV's flag). The first container of a boot
profile makes its template in DIR; the next ones start as clones of it: the same exit codes,
output, hostname, bind mounts and a writable root as a cold VM, their own random bytes, and a
damaged template falls back to a cold boot with a warning. Nothing is left under --root."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from husk_stack import BUILD, require

SCRIPT = ("hostname; cat /mnt/from-host; echo guest-wrote > /mnt/from-guest; echo root-write > /tmp/w; "
          "head -c 16 /dev/urandom | od -An -tx1; exit 5")


@pytest.fixture
def bundle():
    require(os.geteuid() == 0, "husk-oci needs root (QEMU, virtiofsd)")
    require(os.access("/bin/busybox", os.X_OK), "/bin/busybox (busybox-static) is not installed")
    d = Path(tempfile.mkdtemp(prefix="/tmp/ht-"))
    try:
        for sub in ("bin", "dev", "proc", "sys", "tmp", "etc", "root"):
            (d / "rootfs" / sub).mkdir(parents=True)
        shutil.copy2("/bin/busybox", d / "rootfs" / "bin" / "busybox")
        for a in ("sh", "cat", "echo", "hostname", "head", "od"):
            os.symlink("busybox", d / "rootfs" / "bin" / a)
        (d / "share").mkdir()
        (d / "share" / "from-host").write_text("host-file\n")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def oci(bundle, *args, timeout=300):
    cmd = [str(BUILD / "bin" / "husk-oci"), "--root", str(bundle / "root"), "--kernel", str(BUILD / "kit" / "vmlinux"),
           "--initrd", str(BUILD / "kit" / "initrd.gz"), "--accel", "tcg", "--template", str(bundle / "templates"),
           "--log", str(bundle / "log"), "--debug", *args]
    return subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def run(bundle, name):
    r = oci(bundle, "run", name)
    assert r.returncode == 5, f"exit {r.returncode}: {r.stdout!r} {r.stderr!r}"
    lines = r.stdout.split("\n")
    assert lines[0] == "runc" and lines[1] == "host-file", r.stdout
    assert (bundle / "share" / "from-guest").read_text() == "guest-wrote\n"
    assert (bundle / "rootfs" / "tmp" / "w").read_text() == "root-write\n"
    for f in ("share/from-guest", "rootfs/tmp/w"):
        (bundle / f).unlink()
    return lines[2].strip()


def restored(bundle):
    return len(re.findall(r"VM restored from template", (bundle / "log").read_text()))


def test_containers_start_as_clones_of_a_template(bundle):
    assert oci(bundle, "spec").returncode == 0
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", SCRIPT]
    spec["root"]["readonly"] = False
    spec["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(bundle / "share"),
                           "options": ["rbind", "rw"]})
    (bundle / "config.json").write_text(json.dumps(spec))

    # The first container makes the template, then runs as its first clone; the second is one too.
    first = run(bundle, "one")
    keys = [p.name for p in (bundle / "templates").iterdir() if not p.name.startswith(".")]
    assert len(keys) == 1 and re.fullmatch(r"[0-9a-f]{16}", keys[0]), keys
    assert {p.name for p in (bundle / "templates" / keys[0]).iterdir()} >= {"memory", "state", "template.json"}
    second = run(bundle, "two")
    assert restored(bundle) == 2
    assert first != second, "two clones read the same random bytes"
    assert "level=warning" not in (bundle / "log").read_text()

    # A damaged template: the container still runs, cold, with a warning; the template is made anew.
    (bundle / "templates" / keys[0] / "state").write_bytes(b"not a migration stream")
    run(bundle, "three")
    log = (bundle / "log").read_text()
    assert re.search(r'level=warning msg="template in .*: .*booting the VM cold"', log), log
    assert restored(bundle) == 2
    run(bundle, "four")
    assert restored(bundle) == 3
    assert not list((bundle / "root").iterdir()), "run left a container directory"
