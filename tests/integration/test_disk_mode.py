"""test_disk_mode.py: disk images booted by their own firmware through husk (Ring's
cloud-hypervisor runtime, on the qemu runtime): what is not a bootable disk is refused at apply
with the reason, never booted as the kit; make image's image boots through OVMF with its own
copy-on-write disk and husk's cloud-init seed, serves its page on a published port, and leaves
nothing behind when deleted. Every wait polls with a deadline."""
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from husk_stack import BUILD, require

IMAGE = BUILD / "image" / "debian-12.raw"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Under TCG on a loaded 2-core machine: OVMF, the kernel, systemd and cloud-init's four stages
# take 60-90 s (test_image_boot measures them); the deadline is generous on purpose.
BOOT_DEADLINE = 300.0


def apply(stack, text):
    return stack.husk("apply", "-f", "-", input=text)


# ---- nothing silent: refused at apply, no VM boots ------------------------------------------

def gpt_without_esp(path):
    with open(path, "wb") as f:
        f.truncate(8 << 20)
    # One Linux data partition: a valid GPT, nothing for firmware to boot.
    subprocess.run(["sfdisk", "-q", str(path)], input="label: gpt\n,,L\n", text=True, check=True,
                   capture_output=True)


@pytest.mark.require(shutil.which("sfdisk") is not None, "sfdisk not installed (Debian package fdisk)")
def test_unbootable_image_files_are_refused_at_apply(stack, tmp_path):
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    zeros = tmp_path / "zeros.raw"
    zeros.write_bytes(b"\0" * 65536)
    noesp = tmp_path / "noesp.raw"
    gpt_without_esp(noesp)
    for path, reason in ((empty, "empty file"), (zeros, "no GPT partition table"),
                         (noesp, "no EFI system partition")):
        r = stack.api("POST", "/deployments", json={"name": "disk", "image": str(path), "replicas": 1})
        assert r.status == 422, (path, r)
        [v] = r.json()["violations"]
        assert (v["field"], v["reason"]) == ("image", f"{path}: not a bootable disk: {reason}"), r
        # The CLI shows it as field: reason.
        out = apply(stack, f"deployments:\n  disk:\n    name: disk\n    image: {path}\n")
        assert out.returncode != 0 and f"image: {path}: not a bootable disk: {reason}" in out.stdout + out.stderr, \
            out.stdout + out.stderr
    # `boot: kit` boots the kit with the file as a plain disk: no firmware, no ESP needed.
    r = stack.api("POST", "/deployments", json={"name": "kitdisk", "image": str(noesp), "boot": "kit", "replicas": 0})
    assert r.status in (200, 201), r
    assert stack.instance_dirs() == []
