"""test_deployments.py: the foundation end to end: husk apply -> running VMs -> delete, with
daemons and VMs killed under it. Real daemons, real QEMU (tcg), a private netns per test."""

import json
import os
import signal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "deploy/examples/hello.yaml"


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_running(stack, name, replicas, timeout=120):
    def ready():
        d = inspect(stack, name)
        return d if d and d["status"] == "running" and d["ready_replicas"] == replicas else None
    return stack.wait_for(ready, timeout=timeout, what=f"{name} running with {replicas} ready")


def live_instances(d):
    return sorted((i["instance_id"], i["pid"]) for i in d["instances"] if i["state"] == "ready")


def apply_yaml(stack, text):
    r = stack.husk("apply", "-f", "-", input=text)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def manifest(stack, name, replicas):
    return f"""deployments:
  {name}:
    name: {name}
    runtime: {stack.runtime}
    replicas: {replicas}
    image: {stack.kit_dir}/rootfs/hello
    resources: {{limits: {{cpu: "1", memory: 128Mi}}}}
"""


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stays(stack, predicate):
    """True when predicate holds at every check until the scheduler completed two more passes,
    each started after this call (a steady state the scheduler looked at, not a moment)."""
    return predicate() and stack.wait_passes(2, holds=predicate) and predicate()


def test_apply_run_list_delete_leaves_nothing(runtime_stack):
    stack = runtime_stack
    r = stack.husk("apply", "-f", "-", input=HELLO.read_text().replace("runtime: qemu", f"runtime: {stack.runtime}"))
    assert r.returncode == 0, r.stderr
    assert "deployment hello created" in r.stdout

    d = wait_running(stack, "hello", 2)
    assert d["replicas"] == 2 and d["namespace"] == "default" and d["labels"] == {"app": "hello"}
    vms = live_instances(d)
    assert len(vms) == 2
    assert sorted(stack.qemu_pids()) == sorted(pid for _, pid in vms)

    listed = json.loads(stack.husk("deployment", "list", "-o", "json", check=True).stdout)
    assert [(x["name"], x["status"]) for x in listed] == [("hello", "running")]
    table = stack.husk("deployment", "list", "-l", "app=hello", check=True).stdout
    assert "hello" in table and "running" in table and "2/2" in table
    assert stack.husk("deployment", "list", "-l", "app=other", "-o", "json", check=True).stdout.strip() == "[]"

    # The guest wrote on its console, captured in the instance directory.
    for instance_id, _ in vms:
        console = (stack.instances_dir / instance_id / "console.log").read_text(errors="replace")
        assert f"husk-agent: ready (instance {instance_id}" in console

    r = stack.husk("deployment", "delete", "hello")
    assert r.returncode == 0, r.stderr
    stack.wait_for(lambda: stack.husk("deployment", "inspect", "hello").returncode == 4,
                   timeout=60, what="hello purged (inspect exits 4: not found)")

    # Nothing left behind: no QEMU, no instance directory (which held every socket), no record.
    assert stack.qemu_pids() == []
    assert not any(pid_alive(pid) for _, pid in vms)
    assert stack.instance_dirs() == []
    leftovers = [p for p in stack.state_dir.rglob("*.sock")] if stack.state_dir.exists() else []
    assert leftovers == []
    assert json.loads(stack.husk("deployment", "list", "-o", "json", check=True).stdout) == []


def test_invalid_manifest_is_refused_and_stores_nothing(stack):
    r = stack.husk("apply", "-f", "-", input="""deployments:
  web:
    name: Web_App
    runtime: docker
    image: nginx:latest
    replicas: 2
    resources: {limits: {memory: 64Mi}}
""")
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "deployment web: invalid" in out
    for field in ("name:", "runtime:", "image:", "resources.limits.memory:"):
        assert field in out, (field, out)
    assert "docker" in out and "microVM" in out
    assert json.loads(stack.husk("deployment", "list", "-o", "json", check=True).stdout) == []
    assert stack.instance_dirs() == []


def test_vmm_driver_sigkill_readopts_every_vm(runtime_stack):
    stack = runtime_stack
    apply_yaml(stack, manifest(stack, "web", 2))
    before = live_instances(wait_running(stack, "web", 2))

    stack.kill_daemon("vmm-driver", signal.SIGKILL)
    # The VMs do not depend on vmm-driver: they keep running while it is gone.
    assert all(pid_alive(pid) for _, pid in before)
    stack.start_daemon("vmm-driver")

    d = wait_running(stack, "web", 2)
    assert live_instances(d) == before, "the same VMs (same ids, same pids) must be adopted"
    # Adopted, not restarted: the scheduler reacted to the adoption events and changed nothing.
    assert stays(stack, lambda: sorted(stack.qemu_pids()) == sorted(p for _, p in before))

    # Exits of adopted VMs are still detected: kill one, it is replaced.
    victim_id, victim_pid = before[0]
    os.kill(victim_pid, signal.SIGKILL)

    def replaced():
        d = inspect(stack, "web")
        live = live_instances(d) if d else []
        return live if len(live) == 2 and victim_id not in [i for i, _ in live] else None
    after = stack.wait_for(replaced, timeout=90, what="the killed VM replaced")
    assert before[1] in after


def events_of(stack, name):
    r = stack.husk("deployment", "events", name, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_vmm_driver_sigkill_readopts_a_vm_with_every_spec_field(stack):
    """Issue 20: what adoption restores must equal what creation recorded. A VM with published
    ports, environment, command and health checks is adopted as it is: same pid, no instance
    started or stopped, no event for it after the restart."""
    apply_yaml(stack, f"""deployments:
  full:
    name: full
    runtime: qemu
    image: {stack.kit_dir}/rootfs/hello
    resources: {{limits: {{cpu: "1", memory: 128Mi}}}}
    ports: [{{published: 18123, target: 80}}, {{published: 18124, target: 81, protocol: udp, host_ip: 127.0.0.1}}]
    environment: {{GREETING: hello, EMPTY: ""}}
    command: ["/bin/sh", "-c", "echo ok > /tmp/index.html && exec httpd -f -p 80 -h /tmp"]
    health_checks:
      # alert, not restart: a slow first answer under load must not replace the VM before the test
      # restarts vmm-driver (what is compared is the spec, which a check is part of either way)
      - {{type: tcp, port: 80, interval: 1s, timeout: 2s, on_failure: alert, start_period: 30s}}
""")
    before = live_instances(wait_running(stack, "full", 1))
    seen = max(e["id"] for e in events_of(stack, "full"))

    stack.kill_daemon("vmm-driver", signal.SIGKILL)
    stack.start_daemon("vmm-driver")

    # A barrier, not a sleep: the scheduler's pass that starts `marker` lists the adopted instance
    # and plans `full` with it; a spec read back differently would start a replacement right there.
    apply_yaml(stack, manifest(stack, "marker", 1))
    stack.wait_for(lambda: any(e["reason"] == "InstanceStarted" for e in events_of(stack, "marker")),
                   timeout=60, what="marker's instance started after the vmm-driver restart")
    wait_running(stack, "marker", 1)

    d = inspect(stack, "full")
    assert live_instances(d) == before, d["instances"]
    assert len(d["instances"]) == 1, d["instances"]
    assert [e for e in events_of(stack, "full") if e["id"] > seen] == []
    assert len(stack.qemu_pids()) == 2


def test_scheduler_restart_makes_no_duplicates(stack):
    apply_yaml(stack, manifest(stack, "web", 2))
    before = live_instances(wait_running(stack, "web", 2))

    stack.kill_daemon("scheduler", signal.SIGKILL)
    stack.start_daemon("scheduler")
    # A full resync on start finds the two instances and starts nothing.
    assert stays(stack, lambda: sorted(stack.qemu_pids()) == sorted(p for _, p in before))
    assert live_instances(wait_running(stack, "web", 2)) == before

    # Changes made while the scheduler is down are picked up by that resync.
    stack.kill_daemon("scheduler", signal.SIGKILL)
    apply_yaml(stack, manifest(stack, "web", 3))
    stack.start_daemon("scheduler")
    d = wait_running(stack, "web", 3)
    assert len(live_instances(d)) == 3
    assert set(before) <= set(live_instances(d))
    assert stays(stack, lambda: len(stack.qemu_pids()) == 3)


def test_killed_vm_is_detected_and_replaced(runtime_stack):
    stack = runtime_stack
    apply_yaml(stack, manifest(stack, "solo", 1))
    ((old_id, old_pid),) = live_instances(wait_running(stack, "solo", 1))

    os.kill(old_pid, signal.SIGKILL)

    def replaced():
        d = inspect(stack, "solo")
        live = live_instances(d) if d else []
        return live if len(live) == 1 and live[0][0] != old_id else None
    ((new_id, new_pid),) = stack.wait_for(replaced, timeout=90, what="a new instance of solo")
    assert new_pid != old_pid and not pid_alive(old_pid)
    assert stack.qemu_pids() == [new_pid]
    # The crashed instance's directory is gone with it.
    assert [p.name for p in stack.instance_dirs()] == [new_id]
