#!/usr/bin/python3
"""bench_image_boot.py: apply to cloud-init finished on make image's image (firmware boot, issue
11), against a bare QEMU start of the same image, firmware and an equivalent seed, to the same
point: the guest's "Cloud-init v. ... finished at" line in its serial console file. Runs
alternate between the two so that machine noise hits both alike; both sides poll their console
file the same way (every POLL_S).

husk: `husk apply` of a one-replica worker with that image (spawned from a thread in the stack's
network namespace, as bench_apply does) until the line is in the instance's console.log; the
time includes netd's TAP, the instance's copy-on-write disk and seed, which are husk's to make.
bare: the very command line husk ran (read from /proc/PID/cmdline of the first husk run), in a
fresh directory with what husk would have put there: its own disk made the way vmm_disk.c makes
it (a qcow2 overlay backed by the image, or a reflink where the file system shares extents: the
same kind as husk's), a copy of OVMF's variables and a copy of husk's seed (same instance id,
environment and network-config; taken while husk's VM ran, the seed goes with it), started as
QEMU with the same devices: only the NIC's backend differs, user-mode networking with
restrict=on in a network namespace of its own (`unshare -n`), so the guest sees a link as with
husk's TAP and reaches nothing. The bare side's disk and variables are made before its clock
starts: its time is QEMU's and the guest's alone, so the difference is husk's overhead. Since a
TCG boot of a Debian image varies by seconds, husk's own share is also taken from timestamps in
the same runs: `husk apply` spawned to QEMU exec'd (the instance's spawned_at_ns in instance.json),
the only part of the path husk is in before the guest writes its console itself.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/run.py image_boot)
Env: BENCH_RUNS (runs per side, default 3; each is a ~60-90 s boot under TCG)."""

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apply import run_in_netns  # noqa: E402
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
IMAGE = BUILD / "image" / "debian-12.raw"
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FINISHED = re.compile(rb"Cloud-init v\. \S+ finished at")
POLL_S = 0.05
BOOT_TIMEOUT_S = 400.0
MEMORY = "512Mi"


def wait_finished(console, timeout=BOOT_TIMEOUT_S, proc=None):
    """Poll the console file until cloud-init's final line is in it; monotonic time then."""
    deadline = time.monotonic() + timeout
    offset, tail = 0, b""
    while time.monotonic() < deadline:
        try:
            with open(console, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            tail = (tail + chunk)[-4096:]
            if FINISHED.search(tail):
                return time.monotonic()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"bare QEMU exited ({proc.returncode}) before cloud-init finished")
        time.sleep(POLL_S)
    raise TimeoutError(f"no 'Cloud-init ... finished' in {console} within {timeout:g} s")


def manifest(name):
    return (f"deployments:\n  {name}:\n    name: {name}\n    image: {IMAGE}\n"
            f"    resources: {{limits: {{cpu: \"1\", memory: {MEMORY}}}}}\n").encode()


def husk_run(stack, name, keep=None):
    """husk apply until cloud-init finished in the instance's console: (seconds, instance dir,
    ms from `husk apply` spawned to QEMU exec'd); with keep (a directory), also copies the
    instance's argv and seed there."""
    cli = [str(stack.bin_dir / "husk"), "--host", stack.host, "--token", stack.token, "apply", "-f", "-"]
    t0 = time.monotonic()
    t0_ns, _ = run_in_netns(stack.netns, cli, manifest(name))
    idir = wait_for(lambda: next(iter(stack.instances_dir.glob("*")), None), timeout=60, interval=POLL_S)
    rec = wait_for(lambda: (lambda r: r if r and r.get("pid") and r.get("spawned_at_ns") else None)(
        stack.instance(idir.name)), timeout=60, interval=POLL_S)
    spawn_ms = (rec["spawned_at_ns"] - t0_ns) / 1e6
    if keep is not None:
        argv = Path(f"/proc/{rec['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        shutil.copy(idir / "seed.img", keep / "seed.img")
        (keep / "argv").write_bytes(b"\0".join(argv))
        (keep / "disk").write_text(next(idir.glob("disk.*")).name)
    t1 = wait_finished(idir / "console.log")
    return t1 - t0, idir, spawn_ms


def delete_and_wait(stack, name):
    stack.husk("deployment", "delete", name, check=True)
    wait_for(lambda: stack.husk("deployment", "inspect", name).returncode == 4 and not stack.instance_dirs(),
             timeout=120, interval=0.2)


def bare_argv(argv, husk_dir, bare_dir):
    """husk's command line with its instance directory replaced by bare_dir and the TAP backend
    by user-mode networking that reaches nothing."""
    out = []
    for a in argv:
        a = a.decode()
        if a.startswith("tap,id=n0,"):
            a = "user,id=n0,restrict=on"
        out.append(a.replace(str(husk_dir), str(bare_dir)))
    return ["unshare", "-n", "--"] + out


def prepare_bare(keep, husk_disk, bare_dir):
    """What husk's instance directory held at spawn: a disk of the same kind, the variables, the seed."""
    bare_dir.mkdir()
    if husk_disk.suffix == ".qcow2":
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(IMAGE), "-F", "raw",
                        str(bare_dir / husk_disk.name)], check=True)
    else:
        subprocess.run(["cp", "--reflink=always", str(IMAGE), str(bare_dir / husk_disk.name)], check=True)
    shutil.copy(OVMF_VARS, bare_dir / "efivars.fd")
    shutil.copy(keep / "seed.img", bare_dir / "seed.img")


def bare_run(argv, bare_dir):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=bare_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t1 = wait_finished(bare_dir / "console.log", proc=p)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    return t1 - t0


def main():
    if not IMAGE.is_file():
        sys.exit(f"{IMAGE} not built (make image)")
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        d = Path(d)
        keep = d / "keep"
        keep.mkdir()
        stack = Stack(str(d / "s"), BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        try:
            husk, bare, spawn = [], [], []
            # The image's data in the page cache first: the first run does not pay for it alone.
            with open(IMAGE, "rb") as f:
                while f.read(8 << 20):
                    pass
            t, idir, ms = husk_run(stack, "img0", keep=keep)
            husk.append(t)
            spawn.append(ms)
            husk_disk = Path((keep / "disk").read_text())
            argv_husk = (keep / "argv").read_bytes().split(b"\0")
            delete_and_wait(stack, "img0")
            for i in range(RUNS):
                bare_dir = d / f"bare{i}"
                prepare_bare(keep, husk_disk, bare_dir)
                bare.append(bare_run(bare_argv(argv_husk, idir, bare_dir), bare_dir))
                shutil.rmtree(bare_dir)
                if i + 1 < RUNS:
                    t, _, ms = husk_run(stack, f"img{i + 1}")
                    husk.append(t)
                    spawn.append(ms)
                    delete_and_wait(stack, f"img{i + 1}")
        finally:
            stack.down(purge=True)

    mh, mb = statistics.median(husk), statistics.median(bare)
    print(f"apply to cloud-init finished, make image's image ({IMAGE.name}, OVMF, accel tcg, 1 vCPU, "
          f"{MEMORY}), {RUNS} alternating runs each:")
    print(f"  bare qemu (same argv, disk, vars, seed) : median {mb:6.1f} s  (min {min(bare):.1f}, max {max(bare):.1f})")
    print(f"  husk apply                              : median {mh:6.1f} s  (min {min(husk):.1f}, max {max(husk):.1f})")
    print(f"  ratio husk/bare                         : {mh / mb:.3f}  ({(mh - mb) * 1000:+.0f} ms; a TCG boot of this "
          f"image varies by seconds, by tens of seconds on a loaded host: read it over many runs)")
    print(f"  husk's own time before the guest runs (husk apply spawned -> QEMU exec'd: API, scheduler, netd's "
          f"TAP, the instance disk, the seed; from timestamps): median {statistics.median(spawn):.1f} ms "
          f"(min {min(spawn):.1f}, max {max(spawn):.1f}); after that the guest writes its console file "
          f"itself, as the bare one does")


if __name__ == "__main__":
    main()
