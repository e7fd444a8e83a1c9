"""test_vmm_driver_loop.py: vmm-driver's event loop never waits for another daemon (issue 9, part 1).

While netd is stopped (SIGSTOP) an instance.create waits for net.attach; meanwhile vmm-driver
still answers instance.list at once and still publishes instance.exited for another VM killed
with SIGKILL. After SIGCONT the create completes.
"""
import os
import signal
import threading
import time

from husk_stack import StackError, wait_for
from netd_util import Subscriber

BOOT_TIMEOUT = 90.0
LIST_MAX_MS = 100
# vmm-driver gives netd this long for net.attach (vmm_net.c): everything below happens well
# within it, so that the create can still complete once netd runs again.
ATTACH_TIMEOUT_S = 5.0


def spec(stack, instance_id):
    return {"instance_id": instance_id, "deployment_id": "dep-loop", "generation": 1, "runtime": "qemu",
            "image": f"{stack.kit_dir}/rootfs/hello", "cpus": 1, "memory_mib": 128}


def test_create_waiting_for_netd_blocks_nothing(stack):
    # No reconciler: these instances belong to no deployment, and nothing else should act on them.
    stack.kill_daemon("scheduler", signal.SIGTERM)
    sub = Subscriber(f"ipc://{stack.dir}/run/vmm-driver.events", "instance.")
    a, b = "a10000000001", "b10000000002"
    try:
        assert stack.request("vmm-driver", "instance.create", spec(stack, a), timeout=30)["state"] == "starting"
        # Also the slow joiner's handshake: A's ready comes seconds after our subscription.
        sub.handshake(lambda: None, lambda t, body: t == "instance.ready" and body["instance_id"] == a,
                      timeout=BOOT_TIMEOUT)
        vm_a = stack.instance(a)["pid"]

        netd = stack.kill_daemon("netd", signal.SIGSTOP, wait=False)
        try:
            created = {}

            def create():
                try:
                    created["result"] = stack.request("vmm-driver", "instance.create", spec(stack, b), timeout=30)
                except (StackError, TimeoutError) as e:
                    created["error"] = e
            t0 = time.monotonic()
            t = threading.Thread(target=create, daemon=True)
            t.start()

            # The create waits for netd; the loop serves everything else meanwhile.
            worst = 0.0
            while time.monotonic() - t0 < 1.0:
                s = time.monotonic()
                listed = stack.request("vmm-driver", "instance.list", {"deployment_id": "dep-loop"}, timeout=5)
                worst = max(worst, (time.monotonic() - s) * 1000)
                assert [i["instance_id"] for i in listed] == [a]
            print(f"\ninstance.list while a create waits for netd: worst {worst:.1f} ms")
            assert worst < LIST_MAX_MS
            assert t.is_alive() and not created, "the create should still wait for netd"

            # A crash is still seen at once.
            os.kill(vm_a, signal.SIGKILL)
            t_kill = time.monotonic()

            def exited():
                for ty, body in sub.poll(50):
                    if ty == "instance.exited" and body["instance_id"] == a:
                        return body
            ev = wait_for(exited, timeout=ATTACH_TIMEOUT_S - 2.5, interval=0, what="instance.exited of A")
            print(f"SIGKILL -> instance.exited while a create waits for netd: {(time.monotonic() - t_kill) * 1000:.1f} ms")
            assert ev["exit_reason"] == "killed"
            assert t.is_alive() and not created, "the create should still wait for netd"
            assert time.monotonic() - t0 < ATTACH_TIMEOUT_S - 1
        finally:
            os.kill(netd, signal.SIGCONT)

        # netd answers: the create goes on and completes.
        t.join(30)
        assert not t.is_alive()
        assert "error" not in created, created.get("error")
        inst = created["result"]
        assert inst["instance_id"] == b and inst["state"] == "starting" and inst["pid"] > 0
        assert inst.get("address"), "B has its network from netd"
        wait_for(lambda: any(ty == "instance.created" and body["instance_id"] == b for ty, body in sub.poll(50)),
                 timeout=10, interval=0, what="instance.created of B")
    finally:
        sub.close()
        for iid in (a, b):
            try:
                stack.request("vmm-driver", "instance.stop", {"instance_id": iid, "remove": True}, timeout=10)
            except StackError:
                pass
