#!/usr/bin/python3
"""bench_oci.py: `ctr run --rm busybox true` end to end through a private containerd, with husk-oci
(a TCG microVM per container) cold and from a template (`--template DIR`: the VM is a clone of a
template made once, untimed, before the runs) against runc, and against a bare QEMU boot of the kit
to the agent's hello (agent_client.KitVM: QEMU + virtiofsd, no husk-oci), in the same run,
interleaved so that all see the same machine load. Prints medians and the ratios husk-oci/runc
(what a VM costs a container), husk-oci/bare boot (what husk-oci adds on top of booting the kit)
and template/cold.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_oci.py)
Env: BENCH_RUNS (runs per side, default 5). Needs root, containerd, ctr, umoci, runc and the kit."""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HUSK_BUILD", REPO / "build"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from agent_client import KitVM  # noqa: E402
from oci_world import IMAGE, OciWorld  # noqa: E402


def template_runtime(world):
    """ctr run's options for husk-oci with --template (a wrapper: ctr takes a binary, not flags)."""
    w = world.dir / "husk-oci-template"
    w.write_text(f"#!/bin/sh\nexec {world.husk_oci} --template {world.dir / 'templates'} \"$@\"\n")
    w.chmod(0o755)
    return ["--runc-binary", str(w), "--runc-root", str(world.dir / "husk-template-root")]


def ctr_true(world, rt, n, options=None):
    cid = f"bench-{rt}-{n}"
    t0 = time.perf_counter()
    r = world.ctr("run", "--rm", *(options or world.runtime(rt)), IMAGE, cid, "true", timeout=300)
    t = time.perf_counter() - t0
    world.cleanup_container(cid)
    if r.returncode != 0:
        sys.exit(f"{rt}: ctr run failed: {r.stderr}")
    return t


def bare_boot(rootfs):
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as work:
        t0 = time.perf_counter()
        with KitVM(BUILD / "kit", rootfs, work):
            return time.perf_counter() - t0


def main():
    if os.geteuid() != 0:
        sys.exit("bench_oci needs root (containerd, QEMU, virtiofsd)")
    world = OciWorld(BUILD).start()
    times = {"runc": [], "husk-oci": [], "husk-oci template": [], "bare kit boot": []}
    rootfs = tempfile.mkdtemp(prefix="/tmp/hb-root-")
    try:
        ctr_true(world, "runc", "warm")  # the image's snapshot and the page cache
        template = template_runtime(world)
        ctr_true(world, "template", "warm", template)  # makes the template
        for n in range(RUNS):
            times["runc"].append(ctr_true(world, "runc", n))
            times["husk-oci"].append(ctr_true(world, "husk", n))
            times["husk-oci template"].append(ctr_true(world, "template", n, template))
            times["bare kit boot"].append(bare_boot(rootfs))
    finally:
        world.close()
        os.rmdir(rootfs)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"ctr run --rm busybox true, {RUNS} runs each, interleaved (accel tcg):")
    for k, v in times.items():
        print(f"  {k:17s} median {med[k] * 1000:8.0f} ms   (min {min(v) * 1000:.0f}, max {max(v) * 1000:.0f})")
    print(f"  husk-oci / runc           {med['husk-oci'] / med['runc']:.1f}x")
    print(f"  husk-oci / bare kit boot  {med['husk-oci'] / med['bare kit boot']:.2f}x "
          f"(husk-oci adds {(med['husk-oci'] - med['bare kit boot']) * 1000:.0f} ms to a boot to agent ready)")
    print(f"  template / cold           {med['husk-oci template'] / med['husk-oci']:.2f}x "
          f"(husk-oci template / runc {med['husk-oci template'] / med['runc']:.1f}x)")


if __name__ == "__main__":
    main()
