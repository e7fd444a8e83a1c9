"""test_oci_run.py: `husk-oci spec` then `husk-oci run demo` in a busybox bundle, as a person would on
a terminal (driven by `script`): an interactive shell inside the VM, whose `ps` shows husk-agent as
PID 1 and whose `exit 3` is husk-oci's exit status; nothing of it is left under --root."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from husk_stack import BUILD, require


@pytest.fixture
def bundle():
    require(os.geteuid() == 0, "husk-oci needs root (virtiofsd, QEMU)")
    require(os.access("/bin/busybox", os.X_OK), "/bin/busybox (busybox-static) is not installed")
    require(shutil.which("script"), "script (util-linux) is not installed")
    d = Path(tempfile.mkdtemp(prefix="/tmp/hr-"))
    try:
        # An image's usual mount points: the agent mounts the guest's /dev, /proc and /sys there
        # (the default spec's root is read-only: it cannot make them).
        for sub in ("bin", "dev", "proc", "sys", "tmp", "etc", "root"):
            (d / "rootfs" / sub).mkdir(parents=True)
        shutil.copy2("/bin/busybox", d / "rootfs" / "bin" / "busybox")
        for a in ("sh", "ps", "echo", "cat", "hostname"):
            os.symlink("busybox", d / "rootfs" / "bin" / a)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_spec_then_run_gives_a_shell_in_the_vm(bundle):
    oci = [str(BUILD / "bin" / "husk-oci"), "--root", str(bundle / "root"), "--kernel", str(BUILD / "kit" / "vmlinux"),
           "--initrd", str(BUILD / "kit" / "initrd.gz"), "--accel", "tcg"]
    r = subprocess.run(oci + ["spec"], cwd=bundle, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (bundle / "config.json").exists()
    # What a person types; the terminal holds it until the shell reads it.
    typed = "echo marker-$((6*7))\nps\nhostname\nexit 3\n"
    cmd = " ".join(oci + ["run", "demo"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=bundle, input=typed, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 3, f"exit {r.returncode}: {r.stdout!r} {r.stderr!r}"
    out = r.stdout.replace("\r", "")
    assert "marker-42" in out, out
    # PID 1 of the VM is husk-agent (the kit's initramfs runs it as /init), not the shell.
    first = [line.split() for line in out.splitlines() if line.strip().startswith("1 ")]
    assert first and first[0][-1] in ("/init", "husk-agent"), out
    assert "\nrunc\n" in out, out  # the spec's hostname
    assert not list((bundle / "root").iterdir()), "run left its container directory"
