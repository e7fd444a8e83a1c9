"""test_stack.py: deploy/husk-stack itself: up, status, exec, several stacks, down leaves nothing."""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from husk_stack import BUILD, DAEMONS, PYTHON, TOOL, Stack, stack_tool, wait_for

proc_alive = stack_tool.proc_alive


def netns_inode(name_or_pid):
    p = f"/proc/{name_or_pid}/ns/net" if isinstance(name_or_pid, int) else f"/run/netns/{name_or_pid}"
    st = os.stat(p)
    return st.st_dev, st.st_ino


def daemon_procs(stack):
    """{name: (pid, start_time)} of every daemon as recorded."""
    rec = stack.record()
    return {n: (d["pid"], d["start_time"]) for n, d in rec["daemons"].items()}


def assert_gone(stack, procs):
    for name, (pid, start) in procs.items():
        assert not proc_alive(pid, start), f"{name} (pid {pid}) still runs"
    assert not os.path.exists(f"/run/netns/{stack.netns}"), f"namespace {stack.netns} still exists"
    assert stack.qemu_pids() == []


def spawn_detached_in(stack, argv):
    """Start argv inside the stack's namespace, detached (own session, outlives the exec);
    returns its pid."""
    code = ("import subprocess, sys; p = subprocess.Popen(sys.argv[1:], start_new_session=True, "
            "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)")
    r = stack.exec(PYTHON, "-c", code, *argv, check=True)
    return int(r.stdout)


def test_up_status_exec_down(stack):
    st = stack.status()
    assert st["up"] is True, st
    assert set(st["daemons"]) == set(DAEMONS)
    ns = netns_inode(stack.netns)
    for name, d in st["daemons"].items():
        assert d["up"] and d["pid"], (name, d)
        assert netns_inode(d["pid"]) == ns, f"{name} is not in the stack's namespace"
        assert os.getsid(d["pid"]) == d["pid"], f"{name} does not lead its own session"
        assert f"husk-{name} ready" in stack.log(name)

    text = stack.tool("status").stdout
    for name in DAEMONS:
        assert f"{name}" in text and "up" in text

    cfg = stack.config_path.read_text()
    assert "accel: tcg" in cfg
    assert f'listen: "127.0.0.1:{stack.port}"' in cfg
    assert str(stack.dir / "run") in cfg

    # exec: the namespace, the environment, the exit status; from the tool and from the harness.
    for tool in (True, False):
        r = stack.exec("sh", "-c", 'echo "$HUSK_CONFIG|$HUSK_HOST|$HUSK_KIT_DIR|${PATH%%:*}"; '
                       'readlink /proc/self/ns/net; exit 7', tool=tool)
        assert r.returncode == 7, r
        env_line, ns_line = r.stdout.splitlines()
        assert env_line == f"{stack.config_path}|{stack.host}|{stack.kit_dir}|{stack.bin_dir}"
        assert ns_line == f"net:[{ns[1]}]"
        assert stack.exec("no-such-command-here", tool=tool).returncode == 127

    # The apiserver listens inside the namespace only.
    probe = f"import socket; socket.create_connection(('127.0.0.1', {stack.port}), timeout=5)"
    assert stack.exec(PYTHON, "-c", probe).returncode == 0

    # up again: says so, changes nothing.
    before = daemon_procs(stack)
    r = stack.up()
    assert "already up" in r.stdout
    assert daemon_procs(stack) == before

    r = stack.down()
    assert f"stopped {len(DAEMONS)} daemon(s)" in r.stdout, r.stdout
    assert_gone(stack, before)
    assert (stack.logs_dir / "scheduler.log").exists(), "down must keep the logs"
    st = stack.status()
    assert st["up"] is False and not any(d["up"] for d in st["daemons"].values())
    assert stack.tool("status", check=False).returncode == 3

    stack.down()  # safe twice
    stack.down(purge=True)
    assert not stack.dir.exists()


def test_two_stacks_at_once(make_stack):
    a, b = make_stack(), make_stack()
    assert a.netns != b.netns and a.port != b.port
    assert netns_inode(a.netns) != netns_inode(b.netns)
    pa, pb = daemon_procs(a), daemon_procs(b)
    assert not set(p for p, _ in pa.values()) & set(p for p, _ in pb.values())
    assert a.status()["up"] and b.status()["up"]

    # Each sees its own apiserver; a's port is closed in b's namespace (unless equal by chance).
    probe = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)"
    assert a.exec(PYTHON, "-c", probe, a.port).returncode == 0
    assert b.exec(PYTHON, "-c", probe, b.port).returncode == 0
    assert b.exec(PYTHON, "-c", probe, a.port).returncode != 0

    a.down()
    assert_gone(a, pa)
    assert b.status()["up"], "stopping one stack must not touch another"
    b.down()
    assert_gone(b, pb)


def test_restart_one_daemon(stack):
    old = stack.daemon_pid("scheduler")
    stack.kill_daemon("scheduler", signal.SIGKILL)
    assert stack.daemon_pid("scheduler") is None
    st = stack.status()
    assert not st["up"] and not st["daemons"]["scheduler"]["up"]
    assert st["daemons"]["apiserver"]["up"] and st["daemons"]["vmm-driver"]["up"]

    new = stack.start_daemon("scheduler")
    assert new and new != old
    assert stack.status()["up"]
    assert stack.log("scheduler").count("husk-scheduler ready") == 2

    # `up` on a partly running stack starts only what is missing.
    stack.kill_daemon("apiserver", signal.SIGTERM)
    keep = {n: stack.daemon_pid(n) for n in ("scheduler", "vmm-driver")}
    stack.up()
    assert stack.status()["up"]
    assert {n: stack.daemon_pid(n) for n in keep} == keep


def test_down_stops_vms_that_outlive_vmm_driver(stack):
    # vmm-driver is gone (as after a crash) while "VMs" still run: stand-ins that ignore
    # SIGTERM and name their instance dir on the command line, as QEMU does.
    stack.kill_daemon("vmm-driver", signal.SIGKILL)
    idir = stack.instances_dir / "0123456789ab"
    idir.mkdir(parents=True)
    vm = spawn_detached_in(stack, [PYTHON, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                   "signal.SIG_IGN); time.sleep(600)", str(idir / "qmp.sock")])
    (idir / "instance.json").write_text(json.dumps({"instance_id": idir.name, "pid": vm}))
    stray = spawn_detached_in(stack, ["sleep", "600"])  # e.g. a virtiofsd nobody recorded
    wait_for(lambda: stack.qemu_pids() == [vm], timeout=10, what="the stand-in VM to be listed")
    assert stray in stack.processes()
    procs = daemon_procs(stack)
    vm_start, stray_start = stack_tool.proc_start_time(vm), stack_tool.proc_start_time(stray)

    r = stack.down()
    assert "1 VM(s)" in r.stdout and "1 other process(es)" in r.stdout, r.stdout
    assert not proc_alive(vm, vm_start) and not proc_alive(stray, stray_start)
    assert_gone(stack, procs)


def test_down_stops_a_real_vm(stack):
    # A real QEMU (kit kernel, demo rootfs) that outlives vmm-driver, then `down`.
    image = stack.kit_dir / "rootfs" / "hello"
    assert image.is_dir(), f"{image} missing: run make guest"
    r = stack.api("POST", "/deployments", json={"name": "down-test", "image": str(image), "replicas": 1})
    assert r.status in (200, 201), r
    (vm,) = wait_for(stack.qemu_pids, timeout=30, what="the VM's QEMU process")
    vm_start = stack_tool.proc_start_time(vm)
    assert netns_inode(vm) == netns_inode(stack.netns), "QEMU must run in the stack's namespace"

    stack.kill_daemon("vmm-driver", signal.SIGKILL)
    assert proc_alive(vm, vm_start), "a VM must outlive vmm-driver"
    assert stack.qemu_pids() == [vm]

    procs = daemon_procs(stack)
    r = stack.down()
    assert "1 VM(s)" in r.stdout, r.stdout
    assert not proc_alive(vm, vm_start)
    assert_gone(stack, procs)


def test_down_never_signals_a_recycled_pid(stack):
    # The scheduler died and its pid went to an unrelated process: down must leave that alone.
    stack.kill_daemon("scheduler", signal.SIGKILL)
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        rec = stack.record()
        rec["daemons"]["scheduler"]["pid"] = bystander.pid  # start time stays the old one
        (stack.dir / "stack.json").write_text(json.dumps(rec))
        assert stack.daemon_pid("scheduler") is None
        stack.down()
        assert bystander.poll() is None, "down signalled a process that is not the stack's"
    finally:
        bystander.kill()
        bystander.wait()


def _fake_bin(tmp_path, scheduler_script, build_bin):
    """A bin dir with the real daemons and a scheduler that misbehaves."""
    d = tmp_path / "bin"
    d.mkdir()
    for n in (n for n in DAEMONS if n != "scheduler"):
        (d / f"husk-{n}").symlink_to(Path(build_bin) / f"husk-{n}")
    s = d / "husk-scheduler"
    s.write_text("#!/bin/sh\n" + scheduler_script)
    s.chmod(0o755)
    return d


@pytest.mark.parametrize("script,timeout,expect", [
    ("echo 'boom: bad config' >&2\nexit 3\n", 30, "husk-scheduler exited with status 3 before it reported READY=1"),
    ("echo 'stuck'\nexec sleep 600\n", 2, "husk-scheduler did not report READY=1 within 2 s"),
], ids=["exits-early", "never-ready"])
def test_up_fails_clearly_and_cleans_up(tmp_path, netns_available, script, timeout, expect):
    bin_dir = _fake_bin(tmp_path, script, BUILD / "bin")
    s = Stack(tempfile.mkdtemp(prefix="/tmp/hs-"), bin_dir, BUILD / "kit")
    try:
        t0 = time.monotonic()
        r = subprocess.run([PYTHON, str(TOOL), "up", "--dir", str(s.dir), "--bin", str(bin_dir),
                            "--kit", str(s.kit_dir), "--timeout", str(timeout)],
                           capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - t0
        assert r.returncode == 1, r
        assert expect in r.stderr, r.stderr
        assert ("boom: bad config" if "boom" in script else "stuck") in r.stderr, "log tail missing"
        assert elapsed < timeout + 15
        # Torn down: nothing of the stack runs, the namespace is gone, the logs stay.
        procs = daemon_procs(s)
        assert set(procs) == set(DAEMONS)
        for name, (pid, start) in procs.items():
            assert not proc_alive(pid, start), f"{name} left running"
        assert not os.path.exists(f"/run/netns/{s.netns}")
        assert (s.logs_dir / "scheduler.log").exists()
    finally:
        s.down(purge=True)


def test_help_tells_the_commands():
    r = subprocess.run([PYTHON, str(TOOL), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for word in ("up", "down", "status", "exec", "start", "kill", "--purge", "READY=1", "netns"):
        assert word in r.stdout, word
