#!/usr/bin/python3
"""bench_scheduler.py: the scheduler's reaction times, each against a baseline of the same run.

1. crash-to-detected: a VM's QEMU is SIGKILLed; the time until vmm-driver publishes
   instance.exited, and until the scheduler's InstanceCrashed event is published by apiserver
   (event.warning: the decision made, stored and announced). Ring learns of a dead VM at its
   next 10 s tick; the ratio against that tick is printed too.
2. scale-up: `husk apply` of N replicas until all N agents reported ready, against N bare QEMU
   starts of the same command line at once, each until its agent's ready frame.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_scheduler.py)
Env: BENCH_RUNS (crashes, default 10), BENCH_REPLICAS (N, default 20)."""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from bench_apply import bare_argv, bare_boot  # noqa: E402
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "20"))
RING_TICK_S = 10.0


def apply(stack, name, replicas, version):
    manifest = (f"deployments:\n  {name}:\n    name: {name}\n    replicas: {replicas}\n"
                f"    image: {stack.kit_dir}/rootfs/hello\n"
                f"    environment: {{VERSION: \"{version}\"}}\n"
                f"    resources: {{limits: {{memory: 128Mi}}}}\n")
    subprocess.run(["nsenter", f"--net=/run/netns/{stack.netns}", str(stack.bin_dir / "husk"),
                    "--host", stack.host, "apply", "-f", "-"], input=manifest.encode(), check=True,
                   stdout=subprocess.DEVNULL)


def drain(sock):
    while sock.poll(0):
        sock.recv_multipart()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def crash_to_detected(stack, vmm_sub, ev_sub):
    exited, decided = [], []
    for run in range(RUNS + 1):  # the first one warms up
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
    return exited, decided


def scale_up(stack, vmm_sub, argv):
    # Baseline: N bare QEMUs at once, each until its agent is ready.
    bare = [None] * REPLICAS

    def one(i):
        bare[i] = bare_boot(argv, stack.kit_dir / "rootfs/hello", timeout=300)
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(REPLICAS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bare_all = time.monotonic() - t0
    if any(b is None for b in bare):
        raise RuntimeError("a bare boot failed")

    drain(vmm_sub)
    t0 = time.monotonic()
    apply(stack, "scale", REPLICAS, "s")
    ready = set()
    while len(ready) < REPLICAS:
        if not vmm_sub.poll(300000):
            raise TimeoutError(f"only {len(ready)}/{REPLICAS} ready")
        t, body = vmm_sub.recv_multipart()
        b = msgpack.unpackb(body, raw=False)
        if t == b"instance.ready" and b.get("deployment_id") and b["instance_id"] not in ready:
            ready.add(b["instance_id"])
    husk_all = time.monotonic() - t0
    return bare_all, husk_all, statistics.median(bare)


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
            exited, decided = crash_to_detected(stack, vmm_sub, ev_sub)
            # The command line of the VM husk runs, for the bare baseline.
            d0 = [x for x in stack.api("GET", "/deployments").json() if x["name"] == "crash"][0]
            wait_for(lambda: [i for i in stack.api("GET", f"/deployments/{d0['id']}").json()["instances"]
                              if i["state"] == "ready"], timeout=120)
            live = [i for i in stack.api("GET", f"/deployments/{d0['id']}").json()["instances"] if i["state"] == "ready"]
            argv = bare_argv(Path(f"/proc/{live[0]['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0"))
            stack.husk("deployment", "delete", "crash", check=True)
            wait_for(lambda: stack.husk("deployment", "inspect", "crash").returncode == 4, timeout=60)
            bare_all, husk_all, bare_median = scale_up(stack, vmm_sub, argv)
        finally:
            vmm_sub.close()
            ev_sub.close()
            stack.down(purge=True)

    print(f"crash-to-detected over {RUNS} SIGKILLs (accel tcg, 1 vCPU, 128 MiB):")
    print(f"  VMM killed to instance.exited (vmm-driver)  : p50 {percentile(exited, 50) * 1000:6.1f} ms"
          f"  p99 {percentile(exited, 99) * 1000:6.1f} ms")
    print(f"  VMM killed to InstanceCrashed (scheduler)   : p50 {percentile(decided, 50) * 1000:6.1f} ms"
          f"  p99 {percentile(decided, 99) * 1000:6.1f} ms  (goal: under 50 ms)")
    print(f"  ratio against Ring's {RING_TICK_S:g} s tick (worst case) : {percentile(decided, 99) / RING_TICK_S:.4f}")
    print(f"scale-up of N={REPLICAS} replicas to agent ready:")
    print(f"  {REPLICAS} bare qemu in parallel, all ready : {bare_all * 1000:8.1f} ms (median single {bare_median * 1000:.1f} ms)")
    print(f"  husk apply replicas={REPLICAS}, all ready  : {husk_all * 1000:8.1f} ms")
    print(f"  ratio husk/bare                    : {husk_all / bare_all:.3f}")


POLLER = None

if __name__ == "__main__":
    main()
