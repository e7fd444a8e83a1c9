"""test_reload.py: SIGHUP reloads every daemon safely (issue 10).

The stack runs the daemons built with ASan+UBSan (`make san-daemons`, build/san/bin). While an
exec, a log follower and an apply are in flight, each daemon in turn gets SIGHUP and says it
reloaded; then the exec answered correctly, the follower kept getting every line, the applied
deployment runs, a new follower and a new exec work, every daemon is the same process as
before and no sanitizer reported anything. On main, the apiserver freed the config its
civetweb workers still read (heap-use-after-free in route_deployment_logs and the exec client)."""

import json
import re
import shutil
import signal
import threading

import pytest

from husk_stack import BUILD, DAEMONS
from test_logs import Follower

SAN_BIN = BUILD / "san" / "bin"


@pytest.fixture
def san_stack(make_stack, tmp_path, monkeypatch):
    missing = [d for d in DAEMONS if not (SAN_BIN / f"husk-{d}").exists()]
    if missing:
        pytest.fail(f"sanitized daemons missing in {SAN_BIN} ({', '.join(missing)}): run `make san-daemons`")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in DAEMONS:
        (bin_dir / f"husk-{d}").symlink_to(SAN_BIN / f"husk-{d}")
    (bin_dir / "husk").symlink_to(BUILD / "bin" / "husk")
    # Leaks at exit are not this test's subject; any other report stops the daemon.
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1")
    monkeypatch.setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return make_stack(bin_dir=bin_dir, timeout=60)


def apply(stack, name, image, command):
    text = "\n".join(["deployments:", f"  {name}:", f"    name: {name}", "    kind: worker", f"    image: {image}",
                      "    resources: {limits: {cpu: \"1\", memory: 128Mi}}", f"    command: {json.dumps(command)}"])
    return stack.husk("apply", "-f", "-", input=text + "\n", timeout=120)


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_ready(stack, name, timeout=180):
    def ready():
        d = inspect(stack, name)
        return d if d and d["status"] == "running" and d["ready_replicas"] >= 1 else None
    return stack.wait_for(ready, timeout=timeout, what=f"{name} running and ready")


def ticks(entries):
    return [int(m.group(1)) for e in entries if (m := re.search(r"tick (\d+)$", e["message"]))]


def exec_rest(stack, dep_id, script, out):
    try:
        out["resp"] = stack.api("POST", f"/deployments/{dep_id}/exec", json={"command": ["/bin/sh", "-c", script]},
                                timeout=60)
    except ConnectionError as e:  # the apiserver died under it
        out["resp"] = e


def sanitizer_reports(stack):
    return {d: stack.log(d) for d in DAEMONS
            if "AddressSanitizer" in stack.log(d) or "runtime error:" in stack.log(d)}


def test_sighup_every_daemon_with_exec_follower_and_apply_in_flight(san_stack, tmp_path):
    stack = san_stack
    root = tmp_path / "root"
    shutil.copytree(stack.kit_dir / "rootfs/hello", root, symlinks=True)
    r = apply(stack, "ticker", root, ["/bin/sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"])
    assert r.returncode == 0, r.stdout + r.stderr
    d = wait_ready(stack, "ticker")
    pids = {name: stack.daemon_pid(name) for name in DAEMONS}
    assert all(pids.values()), pids

    follower = Follower(stack, "ticker")
    try:
        follower.wait_count(stack, 5, timeout=60)
        # In flight: an exec that takes a while, the follower, and an apply of a second deployment.
        ex = {}
        exec_thread = threading.Thread(target=exec_rest, args=(stack, d["id"], "sleep 3; echo done", ex))
        exec_thread.start()
        applied = {}
        apply_thread = threading.Thread(
            target=lambda: applied.update(r=apply(stack, "second", root, ["/bin/sleep", "100000"])))
        apply_thread.start()

        for name in DAEMONS:
            before = stack.log(name).count("Reloaded ")
            stack.kill_daemon(name, signal.SIGHUP, wait=False)
            stack.wait_for(lambda: stack.log(name).count("Reloaded ") > before, timeout=15,
                           what=f"husk-{name} to log its reload")
        seen = len(follower.entries)

        exec_thread.join(timeout=90)
        apply_thread.join(timeout=150)
        assert not exec_thread.is_alive() and not apply_thread.is_alive()
        assert not isinstance(ex["resp"], Exception) and ex["resp"].status == 200, \
            f"exec in flight: {ex['resp']!r}; sanitizer reports: {list(sanitizer_reports(stack))}"
        assert ex["resp"].json()["stdout"] == "done\n", ex["resp"]
        assert applied["r"].returncode == 0, applied["r"].stdout + applied["r"].stderr
        wait_ready(stack, "second")

        # The follower goes on after the reloads, every line once and in order.
        follower.wait_count(stack, seen + 10, timeout=60)
        t = ticks(follower.entries)
        assert t == list(range(t[0], t[0] + len(t))), t
    finally:
        follower.stop()

    # After the reloads: a new follower and a new exec work (main answered 500 and 503).
    again = Follower(stack, "ticker", "--tail", "1")
    try:
        again.wait_count(stack, 3, timeout=60)
    finally:
        again.stop()
    resp = stack.api("POST", f"/deployments/{d['id']}/exec", json={"command": ["/bin/echo", "after"]}, timeout=60)
    assert resp.status == 200 and resp.json()["stdout"] == "after\n", resp

    assert {name: stack.daemon_pid(name) for name in DAEMONS} == pids, "a daemon died or was restarted"
    reports = sanitizer_reports(stack)
    assert not reports, "sanitizer reports:\n" + "\n".join(f"--- {k}\n{v[-4000:]}" for k, v in reports.items())
