#!/usr/bin/python3
"""bench_disk.py: creating an instance's disk from a 2 GiB sparse raw image (512 MiB of it data,
as an OS image has): husk's method (vmm_disk.c: a reflink where the file system shares extents,
else a qcow2 overlay backed by the image) against Ring's `cp --sparse=always`, in the same run,
interleaved so that both see the same load, on the same file system (under build/). husk's side
is vmm_disk.c in a small command built here (tests/bench/bench_disk_create.c, -O2, no
sanitizers), timed like cp: spawn to exit; the call's own time is printed too. The ratio is cp's
median over husk's: how many times faster husk makes a disk.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_disk.py disk)
Env: BENCH_RUNS (runs per method, default 5)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HUSK_BUILD", REPO / "build"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SIZE = 2 << 30
DATA = 512 << 20


def median(values):
    v = sorted(values)
    return v[len(v) // 2]


def make_base(path):
    """2 GiB sparse: 512 MiB of data in 64 MiB runs, every other 128 MiB, the rest holes."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for run in range(DATA // (64 << 20)):
            f.seek(run * (256 << 20))
            for _ in range(64):
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def build_tool(work):
    exe = work / "bench_disk_create"
    subprocess.run(["cc", "-O2", "-std=gnu11", "-D_GNU_SOURCE", "-I.", "-o", str(exe),
                    "tests/bench/bench_disk_create.c", "services/vmm-driver/vmm_disk.c"], cwd=REPO, check=True)
    return exe


def husk_once(tool, base, work):
    d = Path(tempfile.mkdtemp(dir=work))
    t0 = time.perf_counter()
    r = subprocess.run([str(tool), str(d), str(base)], capture_output=True, text=True)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"bench_disk_create failed: {r.stderr}")
    method, call_us = r.stdout.split()
    shutil.rmtree(d)
    return t, method, float(call_us)


def cp_once(base, work):
    d = Path(tempfile.mkdtemp(dir=work))
    t0 = time.perf_counter()
    # Ring's copy, as Ring runs it (cp defaults to --reflink=auto: on ext4 a real copy).
    subprocess.run(["cp", "--sparse=always", str(base), str(d / "disk.raw")], check=True)
    t = time.perf_counter() - t0
    shutil.rmtree(d)
    return t


def main():
    work = Path(tempfile.mkdtemp(prefix="bench-disk-", dir=BUILD))
    try:
        tool = build_tool(work)
        base = work / "base.raw"
        t0 = time.perf_counter()
        make_base(base)
        print(f"base: {SIZE >> 30} GiB sparse, {DATA >> 20} MiB data, written in {time.perf_counter() - t0:.1f} s")
        husk, calls, cp, methods = [], [], [], set()
        for _ in range(RUNS):
            t, m, us = husk_once(tool, base, work)
            husk.append(t)
            calls.append(us)
            methods.add(m)
            cp.append(cp_once(base, work))
        h, c = median(husk), median(cp)
        print(f"husk ({'/'.join(sorted(methods))}): median {h * 1000:.1f} ms  (min {min(husk) * 1000:.1f}, max {max(husk) * 1000:.1f}); "
              f"vmm_disk_create itself: median {median(calls):.0f} us")
        print(f"cp --sparse=always (Ring): median {c * 1000:.1f} ms  (min {min(cp) * 1000:.1f}, max {max(cp) * 1000:.1f})")
        print(f"ratio cp/husk: {c / h:.1f}x  (runs: {RUNS} each, interleaved)")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
