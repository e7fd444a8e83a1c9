#!/usr/bin/python3
"""bench_density.py: how many idle kit VMs this host holds. Two configurations side by side in one
run: QEMU's own TCG translation cache (`runtime.qemu.tcg_translation_cache: 1Gi`, what husk used
before it bounded it) and husk's default (16Mi). For each, SAMPLE idle 128 MiB VMs of one
deployment (agent ready, workload `sleep`), then after they settle:
  - host PSS per VM: its QEMU, its virtiofsd, and husk's daemons' growth divided by the VMs;
    QEMU's split into guest memory (the memfd), anonymous (TCG's cache, QEMU's heap) and files
    (the kit's vmlinux, mapped by every VM and shared between them);
  - the VMs this host would hold: (MemAvailable - margin - the shared files once) / the rest of
    the PSS per VM, and the ratio of the two configurations.
Then, with the default, idle VMs are started in batches until the host's MemAvailable falls
below the margin or MAX_VMS run (bounded: it stops by itself), the time for them all to reach
ready is printed, and everything is torn down.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/run.py density)
Env: SAMPLE (VMs per configuration, default 4), MAX_VMS (default 50), MARGIN_MIB (default 2048),
BATCH (default 10)."""

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from husk_stack import BUILD, DAEMONS, Stack, wait_for  # noqa: E402

SAMPLE = int(os.environ.get("SAMPLE", "4"))
MAX_VMS = int(os.environ.get("MAX_VMS", "50"))
MARGIN_MIB = int(os.environ.get("MARGIN_MIB", "2048"))
BATCH = int(os.environ.get("BATCH", "10"))
GUEST_MIB = 128
SETTLE_S = 5


def rollup(pid):
    """/proc/PID/smaps_rollup in kB, by key."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        k, v = line.split(":", 1)
        out[k] = int(v.split()[0])
    return out


def mem_available_mib():
    m = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return int(m.group(1)) // 1024


def virtiofsd_pids(stack, instance_id):
    """The virtiofsd processes serving this instance, as its record names them (the image's and
    its volumes')."""
    rec = stack.instance(instance_id) or {}
    return [p for p in [rec.get("fs_pid", 0)] + [v["pid"] for v in rec.get("volume_fs", [])] if p > 0]


def daemons_pss(stack):
    return sum(rollup(stack.daemon_pid(name))["Pss"] for name in DAEMONS)


def set_translation_cache(stack, size):
    """Rewrite the stack's config with this cache size and restart vmm-driver on it (running VMs
    keep the size they started with)."""
    path = Path(stack.dir) / "config.yaml"
    text = re.sub(r"\n    tcg_translation_cache: \S+", "", path.read_text())
    path.write_text(text.replace("\n    accel: tcg", f"\n    accel: tcg\n    tcg_translation_cache: {size}", 1))
    stack.restart_daemon("vmm-driver")


def apply_idle(stack, name, replicas):
    manifest = (f"deployments:\n  {name}:\n    name: {name}\n    replicas: {replicas}\n"
                f"    image: {stack.kit_dir}/rootfs/hello\n    command: [/bin/sleep, '1000000']\n"
                f"    resources: {{limits: {{memory: {GUEST_MIB}Mi}}}}\n")
    r = stack.husk("apply", "-f", "-", input=manifest)
    if r.returncode != 0:
        sys.exit(f"husk apply failed: {r.stderr}")


def ready_instances(stack, name, n):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    if r.returncode != 0:
        return None
    insts = [i for i in json.loads(r.stdout).get("instances", []) if i.get("state") == "ready"]
    return insts if len(insts) >= n else None


def delete_and_wait(stack, name):
    stack.husk("deployment", "delete", name, check=True)
    wait_for(lambda: stack.husk("deployment", "inspect", name).returncode == 4, timeout=300)
    wait_for(lambda: not stack.qemu_pids(), timeout=120)


def sample(stack, label, cache):
    """PSS per idle VM with this translation cache: a dict of kB figures."""
    set_translation_cache(stack, cache)
    before = daemons_pss(stack)
    name = f"density-{label}"
    apply_idle(stack, name, SAMPLE)
    insts = wait_for(lambda: ready_instances(stack, name, SAMPLE), timeout=600)
    time.sleep(SETTLE_S)  # the guests' own post-boot work (module loads, page cache) settles
    q = [rollup(i["pid"]) for i in insts]
    fs = [sum(rollup(p)["Pss"] for p in virtiofsd_pids(stack, i["instance_id"])) for i in insts]
    husk_share = max(0, daemons_pss(stack) - before) / SAMPLE
    delete_and_wait(stack, name)
    avg = lambda xs: sum(xs) / len(xs)
    out = {
        "qemu": avg([r["Pss"] for r in q]),
        "guest": avg([r["Pss_Shmem"] for r in q]),
        "anon": avg([r["Pss_Anon"] for r in q]),
        "file": avg([r["Pss_File"] for r in q]),
        "virtiofsd": avg(fs),
        "husk": husk_share,
    }
    out["total"] = out["qemu"] + out["virtiofsd"] + out["husk"]
    return out


def capacity(cost, avail_mib):
    """VMs that fit in MemAvailable - margin. QEMU's file pages (its binary, the kit's vmlinux)
    are one copy for all VMs: PSS splits them between the SAMPLE VMs measured, so they are
    counted once, and each further VM costs the rest of its PSS."""
    shared = cost["file"] * SAMPLE
    return int(((avail_mib - MARGIN_MIB) * 1024 - shared) / (cost["total"] - cost["file"]))


def fill(stack, limit):
    """Start idle VMs in batches until MemAvailable < margin or limit run; seconds for them all
    to reach ready, how many ran, MemAvailable at the end."""
    set_translation_cache(stack, "16Mi")
    t0 = time.monotonic()
    n = 0
    while n < limit and mem_available_mib() > MARGIN_MIB:
        n = min(limit, n + BATCH)
        apply_idle(stack, "density-fill", n)
        wait_for(lambda: ready_instances(stack, "density-fill", n), timeout=900)
    elapsed = time.monotonic() - t0
    avail = mem_available_mib()
    delete_and_wait(stack, "density-fill")
    return elapsed, n, avail


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        stack = Stack(d + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        try:
            avail0 = mem_available_mib()
            old = sample(stack, "qemu-default", "1Gi")
            new = sample(stack, "husk-default", "16Mi")
            cap_old, cap_new = capacity(old, avail0), capacity(new, avail0)
            elapsed, n, avail = fill(stack, min(MAX_VMS, cap_new))
        finally:
            stack.down(purge=True)

    mib = lambda kb: f"{kb / 1024:6.1f} MiB"
    print(f"host PSS per idle kit VM ({GUEST_MIB} MiB guest, accel tcg, 1 vCPU, {SAMPLE} VMs each, "
          f"after {SETTLE_S} s idle):")
    print(f"  {'':34s} {'tb-size 1Gi (QEMU)':>20s} {'16Mi (husk)':>14s}")
    for key, label in (("guest", "guest memory touched (memfd)"), ("anon", "QEMU anonymous (TCG cache, heap)"),
                       ("file", "QEMU files (binary, kit, shared)"), ("virtiofsd", "virtiofsd"),
                       ("husk", "husk daemons' growth per VM"), ("total", "total")):
        print(f"  {label:34s} {mib(old[key]):>20s} {mib(new[key]):>14s}")
    print(f"  total against guest size            {old['total'] / 1024 / GUEST_MIB:19.2f}x {new['total'] / 1024 / GUEST_MIB:13.2f}x")
    print(f"VMs this host holds: (MemAvailable {avail0} MiB - margin {MARGIN_MIB} MiB - shared files once) / "
          f"(PSS per VM - its share of the files):")
    print(f"  QEMU's cache {cap_old}, husk's {cap_new}: ratio {cap_new / cap_old:.2f}x (goal >= 2x)")
    print(f"fill with husk's default: {n} idle VMs ready in {elapsed:.1f} s "
          f"(bounded by MAX_VMS={MAX_VMS}), MemAvailable then {avail} MiB; all torn down")


if __name__ == "__main__":
    main()
