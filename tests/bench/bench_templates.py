#!/usr/bin/python3
"""bench_templates.py: VM templates against cold boots, in one run. Two stacks side by side, the
same kit and rootfs: one boots every kit VM cold, the other has vmm_driver.templates.qemu on (its
template is made first, untimed). Measured, alternating between the two so that machine noise hits
both alike:
  1. apply-to-ready: `husk apply` of a one-replica deployment until instance.ready (the clone's
     ready comes after its agent took its identity), cold against from a template;
  2. PSS of N idle VMs (one deployment of N replicas on each stack): each VM's QEMU plus its
     virtiofsd (cold VMs: it maps their RAM), /proc/<pid>/smaps_rollup Pss, clones against cold.
The warm pool (templates.pool) is not implemented yet: no figure for it.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/run.py templates)
Env: BENCH_RUNS (default 5), BENCH_PSS_VMS (default 10)."""

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apply import apply_manifest, delete_and_wait, husk_apply  # noqa: E402
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PSS_VMS = int(os.environ.get("BENCH_PSS_VMS", "10"))


def subscribe(stack):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{stack.dir}/run/vmm-driver.events")
    sub.setsockopt(zmq.SUBSCRIBE, b"instance.ready")
    return sub


def enable_templates(stack, tdir):
    text = stack.config_path.read_text()
    stack.config_path.write_text(text.replace(
        "vmm_driver:\n", f"vmm_driver:\n  templates: {{qemu: true, dir: {json.dumps(str(tdir))}}}\n", 1))
    stack.restart_daemon("vmm-driver")


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
            tempfile.TemporaryDirectory(prefix="/dev/shm/husk-bench-templates-") as tdir:
        tdir = Path(tdir)
        cold = Stack(d + "/c", BUILD / "bin", BUILD / "kit", log_level="warning")
        warm = Stack(d + "/w", BUILD / "bin", BUILD / "kit", log_level="warning")
        try:
            cold.up()
            warm.up()
            enable_templates(warm, tdir)
            subs = {"cold": subscribe(cold), "template": subscribe(warm)}
            stacks = {"cold": cold, "template": warm}

            # The template: made in the background after a first (cold) instance.
            husk_apply(warm, subs["template"], "first")
            wait_for(lambda: templates(tdir), timeout=300, what="the template")
            delete_and_wait(warm, "first")

            times = {"cold": [], "template": []}
            for k in range(RUNS):
                for kind in ("cold", "template"):
                    secs, inst, _ = husk_apply(stacks[kind], subs[kind], f"r{k}")
                    assert bool(inst.get("template")) == (kind == "template"), inst
                    times[kind].append(secs)
                    delete_and_wait(stacks[kind], f"r{k}")

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
            for s in (warm, cold):
                try:
                    s.down(purge=True)
                except Exception as e:  # noqa: BLE001 - report, go on tearing down
                    print(f"tearing down {s.dir}: {e}")

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"apply-to-ready, {RUNS} runs each (median, min-max):")
    for k, v in times.items():
        print(f"  {k:9s} {med[k] * 1000:8.0f} ms   ({min(v) * 1000:.0f}-{max(v) * 1000:.0f})")
    print(f"  template/cold: {med['template'] / med['cold']:.2f}x (goal <= 0.15x)")
    print("  pool: not implemented (templates.pool)")
    per = {k: sum(v) / len(v) / 1024 for k, v in pss.items()}
    print(f"PSS per VM, {PSS_VMS} idle VMs each (VMM processes, smaps_rollup):")
    for k in ("cold", "template"):
        print(f"  {k:9s} {per[k]:8.1f} MiB   (median {statistics.median(pss[k]) / 1024:.1f})")
    print(f"  clone/cold: {per['template'] / per['cold']:.2f}x (goal <= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
