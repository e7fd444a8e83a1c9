#!/usr/bin/python3
"""bench_scheduler.py: the scheduler's reaction times, each against a baseline of the same run.

1. crash-to-detected: a VM's QEMU is SIGKILLed; the time until vmm-driver publishes
   instance.exited, and until the scheduler's InstanceCrashed event is published by apiserver
   (event.warning: the decision made, stored and announced). Baseline, alternating with husk's
   runs: the same QEMU command line started here, booted to its agent's ready, SIGKILLed and
   waited for with a pidfd; most of the time goes to the kernel tearing QEMU down (its guest
   RAM), so husk's margin over it is what husk adds. Ring learns of a dead VM at its next 10 s
   tick; the ratio against that tick is printed too.
2. scale-up: `husk apply` of N replicas until all N agents reported ready, against N bare QEMU
   starts of the same command line at once, each until its agent's ready frame and then kept
   running until all are ready, as husk's are (a VM killed at its ready would hand its CPU to
   the others still booting, which husk's running VMs do not).

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/run.py scheduler)
Env: BENCH_RUNS (crashes, default 10), BENCH_REPLICAS (N, default 20)."""

import os
import select
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from bench_apply import apply_manifest, bare_argv, bare_vm  # noqa: E402
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "20"))
RING_TICK_S = 10.0


def apply(stack, name, replicas, version):
    """unix ns at the `husk apply` spawn."""
    return apply_manifest(stack, name, replicas, f"    environment: {{VERSION: \"{version}\"}}\n")[0]


def vm_argv(pid):
    """The command line of the VM husk runs as pid, for the bare baselines."""
    return bare_argv(Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0"))


def bare_kill(argv, image):
    """A bare VM booted to its agent's ready, SIGKILLed: seconds until its pidfd says it is gone."""
    with bare_vm(argv, image) as (_, p):
        pidfd = os.pidfd_open(p.pid)
        try:
            t0 = time.monotonic()
            os.kill(p.pid, signal.SIGKILL)
            if not select.select([pidfd], [], [], 30)[0]:
                raise TimeoutError("a SIGKILLed QEMU did not exit")
            t = time.monotonic() - t0
        finally:
            os.close(pidfd)
        p.wait()
        return t


def drain(sock):
    while sock.poll(0):
        sock.recv_multipart()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def crash_to_detected(stack, vmm_sub, ev_sub):
    exited, decided, bare, argv = [], [], [], None
    for run in range(RUNS + 1):  # the first one warms up
        if argv:
            bare.append(bare_kill(argv, stack.kit_dir / "rootfs/hello"))
        # A new spec each time: a fresh VM, and restart_count back to 0 (no back-off, no crash loop).
        drain(vmm_sub)
        apply(stack, "crash", 1, run)
        while True:
            if not vmm_sub.poll(120000):
                raise TimeoutError(f"run {run}: no instance.ready of generation {run + 1}: "
                                   f"{stack.husk('deployment', 'inspect', 'crash').stdout}\n{stack.log_tail('scheduler', 30)}")
            t, body = vmm_sub.recv_multipart()
            inst = msgpack.unpackb(body, raw=False)
            if t == b"instance.ready" and inst.get("generation") == run + 1:
                break
        if argv is None:
            argv = vm_argv(inst["pid"])
        drain(vmm_sub)
        drain(ev_sub)
        t0 = time.monotonic()
        os.kill(inst["pid"], signal.SIGKILL)
        t_exit = t_event = None
        deadline = t0 + 30
        while t_exit is None or t_event is None:
            socks = dict(zmq.Poller.poll(POLLER, int(max(1, (deadline - time.monotonic()) * 1000))))
            if not socks:
                raise TimeoutError("crash not reported")
            for s in socks:
                t, body = s.recv_multipart()
                now = time.monotonic()
                b = msgpack.unpackb(body, raw=False)
                if t == b"instance.exited" and b.get("instance_id") == inst["instance_id"] and t_exit is None:
                    t_exit = now
                elif t == b"event.warning" and b.get("reason") == "InstanceCrashed" and \
                        inst["instance_id"] in b.get("message", "") and t_event is None:
                    t_event = now
        if run > 0:
            exited.append(t_exit - t0)
            decided.append(t_event - t0)
    return exited, decided, argv, bare


def scale_up(stack, vmm_sub, argv):
    # Baseline: N bare QEMUs at once, each until its agent is ready, all kept until the last is.
    bare = [None] * REPLICAS
    all_ready = threading.Barrier(REPLICAS + 1, timeout=300)

    def one(i):
        try:
            with bare_vm(argv, stack.kit_dir / "rootfs/hello", timeout=300) as (t, _):
                bare[i] = t
                all_ready.wait()
        except BaseException:
            all_ready.abort()
            raise
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(REPLICAS)]
    for t in threads:
        t.start()
    try:
        all_ready.wait()
    except threading.BrokenBarrierError:
        pass
    bare_all = time.monotonic() - t0
    for t in threads:
        t.join()
    if any(b is None for b in bare):
        raise RuntimeError("a bare boot failed")

    drain(vmm_sub)
    t0 = apply(stack, "scale", REPLICAS, "s")
    ready, spawned = set(), []
    while len(ready) < REPLICAS:
        if not vmm_sub.poll(300000):
            raise TimeoutError(f"only {len(ready)}/{REPLICAS} ready")
        t, body = vmm_sub.recv_multipart()
        b = msgpack.unpackb(body, raw=False)
        if t == b"instance.ready" and b.get("deployment_id") and b["instance_id"] not in ready:
            ready.add(b["instance_id"])
            spawned.append((b["spawned_at_ns"] - t0) / 1e9)
    husk_all = (time.time_ns() - t0) / 1e9
    return bare_all, husk_all, statistics.median(bare), sorted(spawned)


def main():
    global POLLER
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        stack = Stack(d + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        ctx = zmq.Context.instance()
        vmm_sub = ctx.socket(zmq.SUB)
        vmm_sub.setsockopt(zmq.LINGER, 0)
        vmm_sub.connect(f"ipc://{stack.dir}/run/vmm-driver.events")
        vmm_sub.setsockopt(zmq.SUBSCRIBE, b"instance.")
        ev_sub = ctx.socket(zmq.SUB)
        ev_sub.setsockopt(zmq.LINGER, 0)
        ev_sub.connect(f"ipc://{stack.dir}/run/apiserver.events")
        ev_sub.setsockopt(zmq.SUBSCRIBE, b"event.warning")
        POLLER = zmq.Poller()
        POLLER.register(vmm_sub, zmq.POLLIN)
        POLLER.register(ev_sub, zmq.POLLIN)
        time.sleep(0.3)
        try:
            exited, decided, argv, bare_killed = crash_to_detected(stack, vmm_sub, ev_sub)
            stack.husk("deployment", "delete", "crash", check=True)
            wait_for(lambda: stack.husk("deployment", "inspect", "crash").returncode == 4, timeout=60)
            bare_all, husk_all, bare_median, spawned = scale_up(stack, vmm_sub, argv)
        finally:
            vmm_sub.close()
            ev_sub.close()
            stack.down(purge=True)

    print(f"crash-to-detected over {RUNS} SIGKILLs each, alternating (accel tcg, 1 vCPU, 128 MiB):")
    print(f"  bare VMM killed to its pidfd readable       : p50 {percentile(bare_killed, 50) * 1000:6.1f} ms"
          f"  p99 {percentile(bare_killed, 99) * 1000:6.1f} ms")
    print(f"  VMM killed to instance.exited (vmm-driver)  : p50 {percentile(exited, 50) * 1000:6.1f} ms"
          f"  p99 {percentile(exited, 99) * 1000:6.1f} ms")
    print(f"  husk's margin over the bare pidfd (p50)     : {(percentile(exited, 50) - percentile(bare_killed, 50)) * 1000:+6.1f} ms")
    print(f"  VMM killed to InstanceCrashed (scheduler)   : p50 {percentile(decided, 50) * 1000:6.1f} ms"
          f"  p99 {percentile(decided, 99) * 1000:6.1f} ms  (goal: under 50 ms)")
    print(f"  ratio against Ring's {RING_TICK_S:g} s tick (worst case) : {percentile(decided, 99) / RING_TICK_S:.4f}")
    print(f"scale-up of N={REPLICAS} replicas to agent ready:")
    print(f"  {REPLICAS} bare qemu in parallel, all ready : {bare_all * 1000:8.1f} ms (median single {bare_median * 1000:.1f} ms)")
    print(f"  husk apply replicas={REPLICAS}, all ready  : {husk_all * 1000:8.1f} ms")
    print(f"  ratio husk/bare                    : {husk_all / bare_all:.3f}")
    print(f"  husk's QEMUs exec'd after the apply: first {spawned[0] * 1000:.0f} ms, median {statistics.median(spawned) * 1000:.0f} ms,"
          f" last {spawned[-1] * 1000:.0f} ms (one create at a time)")


POLLER = None

if __name__ == "__main__":
    main()
