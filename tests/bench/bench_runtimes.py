#!/usr/bin/python3
"""bench_runtimes.py: crash-to-detected on the qemu and the cloud-hypervisor runtime, in one run.

One stack with both runtimes enabled (cloud-hypervisor is the double in tests/ch_double, which
runs its guest in QEMU). Alternating between the runtimes, a kit VM is applied, booted to its
agent's ready and its VMM SIGKILLed; measured: the time until vmm-driver publishes
instance.exited (the pidfd; for cloud-hypervisor the event monitor is read too, before the exit
is published) and until apiserver publishes the scheduler's InstanceCrashed. Ring polls on a 10 s
tick for the same. Note: the double's process is not QEMU, so the kernel's teardown of the guest's
RAM, which dominates the qemu figure, happens in the double's QEMU child after the double is gone:
cloud-hypervisor's figure here is husk's own path plus the teardown of a small Python process.

Reproduce: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_runtimes.py
Env: BENCH_RUNS (crashes per runtime, default 10)."""

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from bench_apply import apply_manifest  # noqa: E402
from bench_scheduler import drain, percentile  # noqa: E402
from husk_stack import BUILD, Stack  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
RUNTIMES = ("qemu", "cloud-hypervisor")
CH_DOUBLE = Path(__file__).resolve().parents[1] / "ch_double" / "cloud-hypervisor"


def one_crash(stack, poller, vmm_sub, ev_sub, runtime, run):
    """(seconds to instance.exited, seconds to InstanceCrashed) for one SIGKILLed VMM."""
    name = "crash-" + runtime
    drain(vmm_sub)
    # A new spec each time: a fresh VM, and no back-off from the previous crash.
    apply_manifest(stack, name, 1, f"    runtime: {runtime}\n    environment: {{RUN: \"{run}\"}}\n")
    while True:
        if not vmm_sub.poll(120000):
            raise TimeoutError(f"{runtime} run {run}: no instance.ready\n{stack.log_tail('vmm-driver', 30)}")
        t, body = vmm_sub.recv_multipart()
        inst = msgpack.unpackb(body, raw=False)
        if t == b"instance.ready" and inst.get("generation") == run + 1 and inst.get("runtime") == runtime:
            break
    drain(vmm_sub)
    drain(ev_sub)
    t0 = time.monotonic()
    os.kill(inst["pid"], signal.SIGKILL)
    t_exit = t_event = None
    deadline = t0 + 30
    while t_exit is None or t_event is None:
        socks = dict(poller.poll(int(max(1, (deadline - time.monotonic()) * 1000))))
        if not socks:
            raise TimeoutError(f"{runtime}: crash not reported")
        for s in socks:
            t, body = s.recv_multipart()
            now = time.monotonic()
            b = msgpack.unpackb(body, raw=False)
            if t == b"instance.exited" and b.get("instance_id") == inst["instance_id"] and t_exit is None:
                t_exit = now
            elif t == b"event.warning" and b.get("reason") == "InstanceCrashed" and \
                    inst["instance_id"] in b.get("message", "") and t_event is None:
                t_event = now
    return t_exit - t0, t_event - t0


def main():
    results = {rt: ([], []) for rt in RUNTIMES}
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as d:
        stack = Stack(d + "/s", BUILD / "bin", BUILD / "kit", log_level="warning", cloud_hypervisor=str(CH_DOUBLE))
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
        poller = zmq.Poller()
        poller.register(vmm_sub, zmq.POLLIN)
        poller.register(ev_sub, zmq.POLLIN)
        time.sleep(0.3)  # subscriptions reach the publishers (no event is waited for before)
        try:
            for run in range(RUNS + 1):  # the first of each warms up
                for rt in RUNTIMES:
                    exited, decided = one_crash(stack, poller, vmm_sub, ev_sub, rt, run)
                    if run > 0:
                        results[rt][0].append(exited)
                        results[rt][1].append(decided)
        finally:
            vmm_sub.close()
            ev_sub.close()
            stack.down(purge=True)
        violations = stack.ch_violations.read_text() if stack.ch_violations.exists() else ""

    print(f"crash-to-detected over {RUNS} SIGKILLs per runtime, alternating (accel tcg, 1 vCPU, 128 MiB):")
    for rt in RUNTIMES:
        exited, decided = results[rt]
        print(f"  {rt:17s} VMM killed to instance.exited  : p50 {percentile(exited, 50) * 1000:6.1f} ms"
              f"  p99 {percentile(exited, 99) * 1000:6.1f} ms")
        print(f"  {rt:17s} VMM killed to InstanceCrashed : p50 {percentile(decided, 50) * 1000:6.1f} ms"
              f"  p99 {percentile(decided, 99) * 1000:6.1f} ms  (Ring: up to 10 s)")
    if violations.strip():
        print(f"the cloud-hypervisor double recorded contract violations:\n{violations}")
        sys.exit(1)


if __name__ == "__main__":
    main()
