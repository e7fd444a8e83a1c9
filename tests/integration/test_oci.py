"""test_oci.py: husk-oci as containerd's runtime (`ctr run --runc-binary`), each scenario run with
runc (/usr/sbin/runc, the baseline) and with husk-oci (each container in a TCG microVM), both
expected to give the same outputs and exit codes. The private containerd and the busybox image
are the session's (conftest.py's oci_world)."""

import subprocess
import time

import pytest

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
