#!/usr/bin/python3
"""bench_templates.py: VM templates against cold boots, in one run. Two stacks side by side, the
same kit and rootfs: one boots every kit VM cold, the other has vmm_driver.templates.qemu on (its
template is made first, untimed), a third has a warm pool of one paused clone as well
(templates.pool: 1). Measured, alternating between them so that machine noise hits all alike:
  1. apply-to-ready: `husk apply` of a one-replica deployment until instance.ready (the clone's
     ready comes after its agent took its identity), cold against from a template and from the
     pool (each apply waits for the pool to hold its clone first);
  2. PSS of N idle VMs (one deployment of N replicas on each stack): each VM's QEMU plus its
     virtiofsd (cold VMs: it maps their RAM), /proc/<pid>/smaps_rollup Pss, clones against cold;
  3. M replicas of one deployment to ready, cold against from a template.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/run.py templates)
Env: BENCH_RUNS (default 5), BENCH_PSS_VMS (default 10), BENCH_REPLICAS (default 20)."""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apply import apply_manifest, delete_and_wait, husk_apply  # noqa: E402
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PSS_VMS = int(os.environ.get("BENCH_PSS_VMS", "10"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "20"))


def subscribe(stack):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{stack.dir}/run/vmm-driver.events")
    sub.setsockopt(zmq.SUBSCRIBE, b"instance.ready")
    return sub


def enable_templates(stack, tdir, pool=0):
    text = stack.config_path.read_text()
    stack.config_path.write_text(text.replace(
        "vmm_driver:\n", f"vmm_driver:\n  templates: {{qemu: true, pool: {pool}, dir: {json.dumps(str(tdir))}}}\n", 1))
    stack.restart_daemon("vmm-driver")


def pool_full(stack):
    return all(t["pool"] >= 1 for t in stack.request("vmm-driver", "template.list"))


def templates(tdir):
    return [p.name for p in tdir.iterdir() if not p.name.startswith(".") and (p / "template.json").exists()] \
        if tdir.exists() else []


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def ready_count(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout)["ready_replicas"] if r.returncode == 0 else 0


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d, \
            tempfile.TemporaryDirectory(prefix="/dev/shm/husk-bench-templates-") as tdir, \
            tempfile.TemporaryDirectory(prefix="/dev/shm/husk-bench-pool-") as pdir:
        tdir, pdir = Path(tdir), Path(pdir)
        cold = Stack(d + "/c", BUILD / "bin", BUILD / "kit", log_level="warning")
        warm = Stack(d + "/w", BUILD / "bin", BUILD / "kit", log_level="warning")
        pool = Stack(d + "/p", BUILD / "bin", BUILD / "kit", log_level="warning")
        try:
            for s in (cold, warm, pool):
                s.up()
            enable_templates(warm, tdir)
            enable_templates(pool, pdir, pool=1)
            subs = {"cold": subscribe(cold), "template": subscribe(warm), "pool": subscribe(pool)}
            stacks = {"cold": cold, "template": warm, "pool": pool}

            # The templates: made in the background after a first (cold) instance.
            for kind, dirs in (("template", tdir), ("pool", pdir)):
                husk_apply(stacks[kind], subs[kind], "first")
                wait_for(lambda: templates(dirs), timeout=300, what="the template")
                delete_and_wait(stacks[kind], "first")

            times = {"cold": [], "template": [], "pool": []}
            for k in range(RUNS):
                for kind in ("cold", "template", "pool"):
                    if kind == "pool":
                        wait_for(lambda: pool_full(pool), timeout=300, what="the pool's clone")
                    secs, inst, _ = husk_apply(stacks[kind], subs[kind], f"r{k}")
                    assert bool(inst.get("template")) == (kind != "cold"), inst
                    times[kind].append(secs)
                    delete_and_wait(stacks[kind], f"r{k}")
            pool.down(purge=True)  # its paused clone would count in the figures below

            many = {}
            for kind in ("cold", "template"):
                s = stacks[kind]
                t0 = time.monotonic()
                apply_manifest(s, "many", replicas=REPLICAS)
                wait_for(lambda: ready_count(s, "many") >= REPLICAS, timeout=1800, interval=0.5,
                         what=f"{REPLICAS} {kind} replicas ready")
                many[kind] = time.monotonic() - t0
                delete_and_wait(s, "many")

            pss = {}
            for kind in ("cold", "template"):
                s = stacks[kind]
                apply_manifest(s, "idle", replicas=PSS_VMS)
                wait_for(lambda: ready_count(s, "idle") >= PSS_VMS, timeout=900, interval=1.0,
                         what=f"{PSS_VMS} {kind} VMs ready")
                pids = s.qemu_pids()
                assert len(pids) == PSS_VMS, pids
                # A cold VM's RAM is a memfd its virtiofsd maps too: its share counts.
                fs = [r.get("fs_pid") for r in map(s.instance, (p.name for p in s.instance_dirs()))]
                pss[kind] = [pss_kib(p) for p in pids]
                pss[kind] = [a + (pss_kib(f) if f else 0) for a, f in zip(pss[kind], fs)]
                delete_and_wait(s, "idle")
        finally:
            for s in (pool, warm, cold):
                try:
                    s.down(purge=True)
                except Exception as e:  # noqa: BLE001 - report, go on tearing down
                    print(f"tearing down {s.dir}: {e}")

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"apply-to-ready, {RUNS} runs each (median, min-max):")
    for k, v in times.items():
        print(f"  {k:9s} {med[k] * 1000:8.0f} ms   ({min(v) * 1000:.0f}-{max(v) * 1000:.0f})")
    print(f"  template/cold: {med['template'] / med['cold']:.2f}x (goal <= 0.15x)")
    print(f"  pool/cold:     {med['pool'] / med['cold']:.3f}x (goal: pool under 100 ms)")
    print(f"{REPLICAS} replicas to ready: cold {many['cold']:.1f} s, from a template {many['template']:.1f} s "
          f"({many['template'] / many['cold']:.2f}x)")
    per = {k: sum(v) / len(v) / 1024 for k, v in pss.items()}
    print(f"PSS per VM, {PSS_VMS} idle VMs each (VMM processes, smaps_rollup):")
    for k in ("cold", "template"):
        print(f"  {k:9s} {per[k]:8.1f} MiB   (median {statistics.median(pss[k]) / 1024:.1f})")
    print(f"  clone/cold: {per['template'] / per['cold']:.2f}x (goal <= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
