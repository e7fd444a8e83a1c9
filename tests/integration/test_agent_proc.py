"""test_agent_proc.py: agent protocol 2 (processes, for husk-oci) against the real kit: a bare QEMU (accel tcg)
boots build/kit with a busybox rootfs made by the test shared read-write over virtio-fs, and the test speaks
frames to husk-agent directly (agent_client.py). No husk daemon, no NIC.

One VM serves the module's tests (each its own proc names): booting is most of the time."""

import os
import shutil
import signal
import time

import pytest

from agent_client import AgentError, KitVM
from husk_stack import BUILD, require

# On one worker: one kit VM serves the module's tests (conftest.py).
pytestmark = pytest.mark.xdist_group("agent-proc")

KIT = BUILD / "kit"


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    require(os.geteuid() == 0, "virtiofsd needs root")
    require(shutil.which(KitVM.QEMU) is not None, "qemu-system-x86_64 is not installed")
    require(os.access(KitVM.VIRTIOFSD, os.X_OK), f"{KitVM.VIRTIOFSD} is not installed")
    require((KIT / "initrd.gz").exists() and (KIT / "rootfs/hello/bin/busybox").exists(), "make guest first")
    d = tmp_path_factory.mktemp("agent-proc")
    rootfs = d / "rootfs"
    shutil.copytree(KIT / "rootfs/hello", rootfs, symlinks=True)
    os.chmod(rootfs / "tmp", 0o775)  # not /tmp's usual 1777: the agent must leave the container's root as it is
    work = d / "vm"
    work.mkdir()
    with KitVM(KIT, rootfs, work, timeout=300) as v:  # a busy host boots TCG guests slowly
        v.rootfs = rootfs
        v.hello_version = v.hello.get("version")
        a = v.agent.request({"type": "start", "mode": "rootfs", "tag": "rootfs", "writable": True, "command": None,
                             "env": {}, "kind": "worker", "hostname": "box"})
        assert a["type"] == "start" and a["pid"] == 0, a
        try:
            yield v
        finally:
            # What the guest said, for a failed test's report.
            print(v.console()[-4000:])


def test_hello_says_version_2(vm):
    assert vm.hello_version == 2


def test_writable_root_is_left_as_it_is(vm):
    assert os.stat(vm.rootfs / "tmp").st_mode & 0o7777 == 0o775


def test_stdout_stderr_exact_and_exit_codes(vm):
    a = vm.agent
    a.create("codes-0", ["true"])
    a.create("codes-7", ["sh", "-c", "printf 'out\\nmore'; printf 'err\\n' >&2; exit 7"])
    a.create("codes-143", ["sleep", "100"])
    assert a.wait_exited("codes-0") == 0
    assert a.wait_exited("codes-7") == 7
    assert a.output("codes-7", 1) == b"out\nmore"
    assert a.output("codes-7", 2) == b"err\n"
    a.signal("codes-143", signal.SIGTERM)
    assert a.wait_exited("codes-143") == 143
    with pytest.raises(AgentError) as e:
        a.signal("codes-143", signal.SIGTERM)
    assert e.value.code == "conflict"


def test_output_larger_than_1_mib_arrives_whole(vm):
    a = vm.agent
    n = 1536 * 1024 + 7
    a.create("big", ["sh", "-c", f"yes abcdefghij | head -c {n}; yes 0123 | head -c 70000 >&2"])
    assert a.wait_exited("big", timeout=120) == 0
    assert a.output("big", 1) == (b"abcdefghij\n" * (n // 11 + 1))[:n]
    assert a.output("big", 2) == (b"0123\n" * 14000)[:70000]


def test_stdin_from_the_host_with_eof(vm):
    a = vm.agent
    data = bytes(range(256)) * 800  # 200 KiB: several proc.stdin frames, more than a pipe holds
    a.create("cat", ["cat"])
    a.stdin("cat", data)
    a.eof("cat")
    assert a.wait_exited("cat", timeout=60) == 0
    assert a.output("cat", 1) == data


def test_terminal_has_the_size_given_and_resize_changes_it(vm):
    a = vm.agent
    a.create("tty", ["sh", "-c", "stty size; read x; stty size; test -t 0 && test -t 1 && echo tty"], terminal=True,
             rows=24, cols=80)
    a.wait_output("tty", b"24 80\r\n")
    a.resize("tty", 50, 132)
    a.stdin("tty", b"go\n")
    assert a.wait_exited("tty") == 0
    out = a.output("tty", 1)
    assert b"50 132\r\n" in out and out.endswith(b"tty\r\n"), out
    assert a.output("tty", 2) == b""  # one stream: the pty's


def test_terminal_eof_ends_cat(vm):
    a = vm.agent
    a.create("tty-cat", ["cat"], terminal=True)
    a.stdin("tty-cat", b"abc\n")
    a.wait_output("tty-cat", b"abc\r\nabc\r\n")  # the echo, then cat's copy
    a.eof("tty-cat")
    assert a.wait_exited("tty-cat") == 0


def test_missing_executable_is_not_found_and_leaves_nothing(vm):
    a = vm.agent
    before = a.list()
    with pytest.raises(AgentError) as e:
        a.create("missing", ["no-such-program"], start=False)
    assert e.value.code == "not_found" and "no-such-program" in e.value.message
    after = a.list()
    assert "missing" not in {p["proc"] for p in after["procs"]}
    assert set(after["pids"]) <= set(before["pids"]), (before, after)
    # The name is free: a create that works takes it.
    a.create("missing", ["true"])
    assert a.wait_exited("missing") == 0


def test_created_process_runs_only_after_start_and_writes_reach_the_host(vm):
    a = vm.agent
    marker = vm.rootfs / "started-marker"
    created = a.create("init", ["sh", "-c", "echo ran > /started-marker"], start=False)
    procs = {p["proc"]: p for p in a.list()["procs"]}
    assert procs["init"]["state"] == "created" and procs["init"]["pid"] == created["pid"]
    # Given time to run, it has not: it waits before execve.
    time.sleep(1.5)
    assert not marker.exists()
    assert "init" not in a.exited
    a.start("init")
    with pytest.raises(AgentError) as e:
        a.start("init")
    assert e.value.code == "conflict"
    assert a.wait_exited("init") == 0
    # The root is the host's directory, read-write (no overlay).
    assert marker.read_text() == "ran\n"
    procs = {p["proc"]: p for p in a.list()["procs"]}
    assert procs["init"]["state"] == "exited" and procs["init"]["status"] == 0


def test_two_processes_at_once(vm):
    a = vm.agent
    # Each waits for the other's file: they can only finish if both run at the same time.
    a.create("pair-a", ["sh", "-c", "touch /tmp/pair-a; while [ ! -e /tmp/pair-b ]; do sleep 0.1; done; echo A"])
    a.create("pair-b", ["sh", "-c", "touch /tmp/pair-b; while [ ! -e /tmp/pair-a ]; do sleep 0.1; done; echo B"])
    assert a.wait_exited("pair-a") == 0 and a.wait_exited("pair-b") == 0
    assert a.output("pair-a") == b"A\n" and a.output("pair-b") == b"B\n"


def test_list_pids_include_descendants_and_signal_all(vm):
    a = vm.agent
    r = a.create("tree", ["sh", "-c", "sleep 300 & sleep 301 & echo started; wait"])
    a.wait_output("tree", b"started\n")
    listing = a.list()
    procs = {p["proc"]: p for p in listing["procs"]}
    assert procs["tree"]["state"] == "running" and r["pid"] in listing["pids"]
    assert 1 not in listing["pids"]  # not the agent
    # sh and its two sleeps at least
    assert len(set(listing["pids"])) >= 3, listing
    a.signal("tree", signal.SIGKILL, all=True)
    assert a.wait_exited("tree") == 128 + signal.SIGKILL
    a.wait(lambda: r["pid"] not in a.list()["pids"] and len(a.list()["pids"]) == 0, 30, "no process left")


def test_v1_exec_still_answers(vm):
    a = vm.agent
    f = a.request({"type": "exec", "argv": ["sh", "-c", "echo hi; exit 3"], "env": {}, "cwd": None,
                   "timeout_ms": 30000})
    assert f["type"] == "exec" and f["exit_status"] == 3 and f["stdout"] == b"hi\n", f


def test_user_groups_rlimits_cwd_env_and_no_new_privileges(vm):
    a = vm.agent
    a.create("user", ["sh", "-c", "id -u; id -g; id -G; ulimit -n; ulimit -Hn; pwd; echo $GREETING; "
                                  "grep NoNewPrivs /proc/self/status"],
             env=["PATH=/bin:/usr/bin", "GREETING=hi"], cwd="/tmp", uid=1000, gid=1001, additional_gids=[10, 20],
             rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}], no_new_privileges=True)
    assert a.wait_exited("user") == 0, a.output("user", 2)
    lines = a.output("user").decode().split("\n")
    assert lines[:7] == ["1000", "1001", "1001 10 20", "123", "456", "/tmp", "hi"], lines
    assert lines[7].split() == ["NoNewPrivs:", "1"], lines


def test_a_host_that_does_not_read_slows_output_without_losing_it_or_blocking_the_agent(vm):
    a = vm.agent
    # Far more than can be in flight between the process and this socket when nobody reads: the
    # agent's bound (1 MiB), the port's virtqueue (up to ~4 MiB), the socket buffers and the pipe;
    # and more than the agent's queue for the host (6 MiB): without back-pressure frames would drop.
    n = 24 << 20
    done = vm.rootfs / "flood-done"
    a.create("flood", ["sh", "-c", f"yes 0123456789abcdef | head -c {n}; touch /flood-done"])
    # Not reading: the agent stops reading the pipe, and still serves requests meanwhile (the
    # marker appears in the host's directory while we read nothing).
    a.send({"type": "proc.create", "id": 9000, "proc": "meanwhile", "args": ["touch", "/meanwhile-marker"],
            "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "uid": 0, "gid": 0, "terminal": False, "start": True})
    marker = vm.rootfs / "meanwhile-marker"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the agent did not serve a request while its output was not read"
        time.sleep(0.1)
    # The writer is held at its pipe while nobody reads: given time, it has not finished.
    time.sleep(10)
    assert not done.exists(), "the process wrote 24 MiB that nobody read: the agent buffered or dropped it"
    assert a.wait_exited("flood", timeout=300) == 0
    out = a.output("flood")
    assert len(out) == n and out == (b"0123456789abcdef\n" * (n // 17 + 1))[:n]
    assert done.exists()
    assert a.wait_exited("meanwhile") == 0


def test_created_terminal_process_starts_with_its_size(vm):
    a = vm.agent
    a.create("tty-init", ["sh", "-c", "stty size"], terminal=True, rows=30, cols=100, start=False)
    a.start("tty-init")
    assert a.wait_exited("tty-init") == 0
    assert a.output("tty-init") == b"30 100\r\n"


def test_64_processes_with_their_own_streams(vm):
    a = vm.agent
    names = [f"many-{k}" for k in range(64)]
    for n in names:
        a.create(n, ["cat"])
    for n in names:
        a.stdin(n, n.encode() * 100)
        a.eof(n)
    for n in names:
        assert a.wait_exited(n, timeout=120) == 0
        assert a.output(n) == n.encode() * 100
