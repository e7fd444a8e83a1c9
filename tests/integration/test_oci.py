"""test_oci.py: husk-oci as containerd's runtime (`ctr run --runc-binary`), each scenario run with
runc (/usr/sbin/runc, the baseline) and with husk-oci (each container in a TCG microVM), both
expected to give the same outputs and exit codes. The private containerd and the busybox image
are the session's (conftest.py's oci_world)."""

import os
import signal
import subprocess
from pathlib import Path

from husk_stack import wait_for
from oci_world import IMAGE

RUNTIMES = ("runc", "husk")
# A process that ends with 143 on SIGTERM under both: under runc it is PID 1 of its pid
# namespace, which the kernel only signals through a handler.
TERM_LOOP = "trap 'exit 143' TERM; while :; do sleep 0.2; done"


def run(world, rt, cid, *args, input=None, rm=True, extra=()):
    """ctr run (attached) of the busybox image under runtime rt; the container is gone after."""
    try:
        return world.ctr("run", *(["--rm"] if rm else []), *world.runtime(rt), *extra, IMAGE, f"{cid}-{rt}", *args,
                         input=input)
    finally:
        world.cleanup_container(f"{cid}-{rt}")


def both(fn):
    """fn(rt) for runc then husk: {rt: result}."""
    return {rt: fn(rt) for rt in RUNTIMES}


def test_stdout_stderr_and_exit_codes(oci_world):
    for args, code in ((["sh", "-c", "echo out; echo err >&2"], 0), (["sh", "-c", "echo seven; exit 7"], 7),
                       (["true"], 0)):
        res = both(lambda rt: run(oci_world, rt, "codes", *args))
        for rt, r in res.items():
            assert r.returncode == code, f"{rt}: {args}: exit {r.returncode}, stderr {r.stderr!r}"
        assert res["husk"].stdout == res["runc"].stdout, args
        assert res["husk"].stderr == res["runc"].stderr, args
    assert res["husk"].stdout == ""  # `true` says nothing


def test_output_streams_are_separate(oci_world):
    res = both(lambda rt: run(oci_world, rt, "streams", "sh", "-c", "echo out; echo err >&2"))
    for rt, r in res.items():
        assert r.stdout == "out\n", rt
        assert r.stderr == "err\n", rt


def test_sigterm_via_kill_gives_143(oci_world):
    def scenario(rt):
        cid = f"term-{rt}"
        p = subprocess.Popen(["ctr", "--address", str(oci_world.sock), "-n", "husk-oci-test", "run", "--rm",
                              *oci_world.runtime(rt), IMAGE, cid, "sh", "-c", TERM_LOOP],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: oci_world.task_status(cid) == "RUNNING", timeout=120, what=f"{cid} running")
            r = oci_world.ctr("task", "kill", cid)
            assert r.returncode == 0, r.stderr
            out, err = p.communicate(timeout=60)
            return p.returncode, out, err
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            oci_world.cleanup_container(cid)

    res = both(scenario)
    for rt, (code, out, err) in res.items():
        assert code == 143, f"{rt}: exit {code}, stderr {err!r}"
    assert res["husk"] == res["runc"]


def test_detached_run_task_ls_kill_delete(oci_world):
    def scenario(rt):
        cid = f"detach-{rt}"
        seen = []
        try:
            r = oci_world.ctr("run", "-d", *oci_world.runtime(rt), IMAGE, cid, "sh", "-c", TERM_LOOP)
            seen.append(("run", r.returncode, r.stdout))
            assert r.returncode == 0, f"{rt}: {r.stderr}"
            seen.append(("ls", wait_for(lambda: oci_world.task_status(cid) == "RUNNING", timeout=120)))
            r = oci_world.ctr("task", "kill", cid)
            seen.append(("kill", r.returncode))
            wait_for(lambda: oci_world.task_status(cid) == "STOPPED", timeout=60, what=f"{cid} stopped")
            r = oci_world.ctr("task", "delete", cid)
            seen.append(("task delete", r.returncode, r.stdout.strip()))
            r = oci_world.ctr("container", "delete", cid)
            seen.append(("container delete", r.returncode))
            seen.append(("gone", oci_world.task_status(cid)))
            return seen
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"][-1] == ("gone", None)
    assert res["husk"] == res["runc"]


def test_exec_exit_code_and_stdin_from_a_pipe(oci_world):
    def scenario(rt):
        cid = f"exec-{rt}"
        try:
            r = oci_world.ctr("run", "-d", *oci_world.runtime(rt), IMAGE, cid, "sh", "-c", TERM_LOOP)
            assert r.returncode == 0, f"{rt}: {r.stderr}"
            wait_for(lambda: oci_world.task_status(cid) == "RUNNING", timeout=120)
            e = oci_world.ctr("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "tr a-z A-Z; echo done >&2; exit 5",
                              input="hello from a pipe\n")
            return e.returncode, e.stdout, e.stderr
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"] == (5, "HELLO FROM A PIPE\n", "done\n")
    assert res["husk"] == res["runc"]


def test_failing_create_shows_the_runtime_message(oci_world):
    res = both(lambda rt: run(oci_world, rt, "missing", "/bin/no-such-program"))
    for rt, r in res.items():
        assert r.returncode != 0, rt
        assert "OCI runtime create failed" in r.stderr, f"{rt}: {r.stderr!r}"
        assert "/bin/no-such-program" in r.stderr, f"{rt}: {r.stderr!r}"
    # Nothing left behind: the container is gone, and husk-oci's root holds nothing.
    assert not list((oci_world.dir / "husk-root").glob("*/*")), "husk-oci left a container directory"


def detached(world, rt, cid, *args):
    r = world.ctr("run", "-d", *world.runtime(rt), IMAGE, cid, *args)
    assert r.returncode == 0, f"{rt}: {r.stderr}"
    wait_for(lambda: world.task_status(cid) == "RUNNING", timeout=120, what=f"{cid} running")


def task_pid(world, cid):
    for line in world.ctr("task", "ls").stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return int(f[1])
    return None


def test_pause_resume_and_ps(oci_world):
    def scenario(rt):
        cid = f"pause-{rt}"
        seen = []
        try:
            detached(oci_world, rt, cid, "sh", "-c", TERM_LOOP)
            pid = task_pid(oci_world, cid)
            ps = oci_world.ctr("task", "ps", cid)
            seen.append(("ps lists the task", ps.returncode, str(pid) in ps.stdout.split()))
            r = oci_world.ctr("task", "pause", cid)
            seen.append(("pause", r.returncode, wait_for(lambda: oci_world.task_status(cid) == "PAUSED", 30)))
            r = oci_world.ctr("task", "resume", cid)
            seen.append(("resume", r.returncode, wait_for(lambda: oci_world.task_status(cid) == "RUNNING", 30)))
            r = oci_world.ctr("task", "kill", cid)
            seen.append(("kill", r.returncode))
            wait_for(lambda: oci_world.task_status(cid) == "STOPPED", timeout=60)
            return seen
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"] == [("ps lists the task", 0, True), ("pause", 0, True), ("resume", 0, True), ("kill", 0)]
    assert res["husk"] == res["runc"]


def test_detached_exec_killed(oci_world):
    def scenario(rt):
        cid = f"xkill-{rt}"
        try:
            detached(oci_world, rt, cid, "sh", "-c", TERM_LOOP)
            r = oci_world.ctr("task", "exec", "-d", "--exec-id", "bg", cid, "sh", "-c", TERM_LOOP)
            assert r.returncode == 0, f"{rt}: {r.stderr}"
            before = len(oci_world.ctr("task", "ps", cid).stdout.splitlines())
            r = oci_world.ctr("task", "kill", "--exec-id", "bg", cid)
            # The exec's process goes; the task keeps running.
            wait_for(lambda: len(oci_world.ctr("task", "ps", cid).stdout.splitlines()) < before, timeout=60,
                     what=f"{rt}: the exec gone from task ps")
            return r.returncode, oci_world.task_status(cid)
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"] == (0, "RUNNING")
    assert res["husk"] == res["runc"]


def test_terminal_run_under_script(oci_world):
    def scenario(rt):
        cid = f"tty-{rt}"
        cmd = " ".join(["ctr", "--address", str(oci_world.sock), "-n", "husk-oci-test", "run", "-t", "--rm",
                        *oci_world.runtime(rt), IMAGE, cid, "sh", "-c", "'echo hi; exit 3'"])
        try:
            r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=180)
            return r.returncode, "hi" in r.stdout
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"] == (3, True)
    assert res["husk"] == res["runc"]


def test_vmm_killed_ends_the_task(oci_world):
    """husk only: the VMM dies under a running container: the task stops, delete succeeds, and
    husk-oci's root holds nothing of it."""
    cid = "vmmkill-husk"
    try:
        detached(oci_world, "husk", cid, "sh", "-c", TERM_LOOP)
        holder = task_pid(oci_world, cid)
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == holder]
        vmm = [c for c in children if _comm(c).startswith(("qemu", "oci_fake_qemu", "python"))]
        assert vmm, f"no VMM among the holder's children {[(c, _comm(c)) for c in children]}"
        os.kill(vmm[0], signal.SIGKILL)
        wait_for(lambda: oci_world.task_status(cid) == "STOPPED", timeout=60, what="the task stopped")
        r = oci_world.ctr("task", "delete", cid)
        assert r.returncode == 0, r.stderr
        r = oci_world.ctr("container", "delete", cid)
        assert r.returncode == 0, r.stderr
        assert not (oci_world.dir / "husk-root" / "husk-oci-test" / cid).exists()
        assert not list((oci_world.dir / "husk-root").glob(f"*/{cid}"))
    finally:
        oci_world.cleanup_container(cid)


def _ppid(p):
    try:
        return int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_exec_terminal_under_script(oci_world):
    def scenario(rt):
        cid = f"xtty-{rt}"
        try:
            detached(oci_world, rt, cid, "sh", "-c", TERM_LOOP)
            cmd = " ".join(["ctr", "--address", str(oci_world.sock), "-n", "husk-oci-test", "task", "exec", "-t",
                            "--exec-id", "t1", cid, "sh", "-c", "'tty >/dev/null && echo on-a-tty; exit 4'"])
            r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=180)
            return r.returncode, "on-a-tty" in r.stdout
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"] == (4, True)
    assert res["husk"] == res["runc"]


def test_containerd_restarted_while_a_task_runs(oci_world):
    def scenario(rt):
        cid = f"restart-{rt}"
        try:
            detached(oci_world, rt, cid, "sh", "-c", TERM_LOOP)
            oci_world.restart_containerd()
            seen = [("after restart", oci_world.task_status(cid))]
            e = oci_world.ctr("task", "exec", "--exec-id", "after", cid, "sh", "-c", "echo still here")
            seen.append(("exec", e.returncode, e.stdout))
            r = oci_world.ctr("task", "kill", cid)
            seen.append(("kill", r.returncode))
            wait_for(lambda: oci_world.task_status(cid) == "STOPPED", timeout=60, what=f"{cid} stopped")
            return seen
        finally:
            oci_world.cleanup_container(cid)

    res = both(scenario)
    assert res["runc"] == [("after restart", "RUNNING"), ("exec", 0, "still here\n"), ("kill", 0)]
    assert res["husk"] == res["runc"]
