"""test_logs.py: husk-logd end to end: a real VM's console queried with levels, streams and
filters through REST and the CLI; a follower that gets every line once across rotations, a
logd SIGKILL and both ways a VMM may open its capture file; bounded disk; what stays after an
instance exits and what goes with its deployment.

Most tests play the VMM themselves (a "fake VM": an instance directory with instance.json and a
console.log the test writes, as QEMU's `-serial file:` does) so that they control the bytes,
the pace and the open flags; the scheduler is stopped in those so it starts no real VM for the
deployment they create."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from datetime import datetime, timezone

import pytest

from husk_stack import stack_tool


# ---- helpers ---------------------------------------------------------------------------------

def apply(stack, name, command=None, replicas=1):
    lines = ["deployments:", f"  {name}:", f"    name: {name}", f"    runtime: {stack.runtime}", f"    replicas: {replicas}",
             f"    image: {stack.kit_dir}/rootfs/hello", "    resources: {limits: {cpu: \"1\", memory: 128Mi}}"]
    if command is not None:
        lines.append(f"    command: {json.dumps(command)}")
    r = stack.husk("apply", "-f", "-", input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(stack.husk("deployment", "inspect", name, "-o", "json", check=True).stdout)
    return d["id"]


def cli_logs(stack, name, *args):
    """`husk deployment logs NAME -o json ARGS...` as a list of entries."""
    r = stack.husk("deployment", "logs", name, "-o", "json", *args, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def api_logs(stack, dep_id, **query):
    q = urllib.parse.urlencode(query)
    return stack.api("GET", f"/deployments/{dep_id}/logs" + (f"?{q}" if q else ""), timeout=60)


def messages(entries):
    return [e["message"] for e in entries]


def parse_ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def quiet(stack):
    """No scheduler: deployments get no real VM; the tests' fake VMs are all there is."""
    stack.kill_daemon("scheduler", signal.SIGTERM)


def set_rotation(stack, max_bytes, backups):
    """Rotation settings for the qemu runtime, then a logd restart to read them."""
    out = []
    for line in stack.config_path.read_text().splitlines():
        out.append(line)
        if line.startswith("    accel:"):
            out += [f"    max_console_log_bytes: {max_bytes}", f"    max_console_log_backups: {backups}"]
    stack.config_path.write_text("\n".join(out) + "\n")
    stack.kill_daemon("logd", signal.SIGTERM)
    stack.start_daemon("logd")


def store_dir(stack, dep_id, instance_id=None):
    d = stack.state_dir / "logs" / "deployments" / dep_id
    return d / instance_id if instance_id else d


def disk_usage(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total


class FakeVM:
    """An instance directory as vmm-driver makes it, and a VMM writing its console."""

    def __init__(self, stack, dep_id, append=True):
        self.id = secrets.token_hex(6)
        self.dir = stack.instances_dir / self.id
        self.dir.mkdir(mode=0o700, parents=True)
        self.dep_id = dep_id
        self._record("running")
        # QEMU's `-serial file:` opens without O_APPEND (O_TRUNC); other VMMs may append.
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        self.fd = os.open(self.dir / "console.log", flags, 0o600)

    def _record(self, state):
        tmp = self.dir / "instance.json.tmp"
        tmp.write_text(json.dumps({"instance_id": self.id, "deployment_id": self.dep_id, "runtime": "qemu",
                                   "state": state}))
        os.rename(tmp, self.dir / "instance.json")

    def write(self, data):
        data = data.encode() if isinstance(data, str) else data
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def exit(self):
        os.close(self.fd)
        self.fd = -1
        self._record("exited")

    def remove(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        shutil.rmtree(self.dir)


class Follower:
    """`husk deployment logs NAME -f -o json` running in the stack's namespace, its lines
    collected as they come."""

    def __init__(self, stack, name, *args):
        self.proc = subprocess.Popen([stack_tool.ip_binary(), "netns", "exec", stack.netns,
                                      str(stack.bin_dir / "husk"), "deployment", "logs", name, "-f", "-o", "json",
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=stack.exec_env())
        self.entries = []
        self.arrivals = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                self.entries.append(json.loads(line))
                self.arrivals.append(time.monotonic())

    def wait_count(self, stack, n, timeout=60):
        stack.wait_for(lambda: len(self.entries) >= n, timeout=timeout,
                       what=f"{n} lines at the follower (has {len(self.entries)})")

    def stop(self):
        # Our own child, by pid (ip netns exec execs into husk).
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._t.join(timeout=5)
        return self.proc.stderr.read()


def numbered(prefix, start, n, width=60):
    return [f"{prefix} {i:07d} {'x' * width}" for i in range(start, start + n)]


def write_paced(vm, lines, chunk=50, pause=0.005):
    for i in range(0, len(lines), chunk):
        vm.write("".join(line + "\r\n" for line in lines[i:i + chunk]))
        time.sleep(pause)


# ---- a real VM -----------------------------------------------------------------------------------

def test_boot_output_queryable_with_levels(runtime_stack):
    stack = runtime_stack
    # A healthy quiet boot prints no kernel line (only errors reach the console); sysrq's header is
    # a kernel line at info level that reaches it whatever the console level.
    dep = apply(stack, "talker", command=[
        "/bin/sh", "-c",
        "echo h > /proc/sysrq-trigger; echo 'ERROR: disk failure'; echo '[warn] low memory' >&2; echo 'info: started'; "
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"])

    def started():
        es = cli_logs(stack, "talker")
        return es if "tick 3" in messages(es) else None
    entries = stack.wait_for(started, timeout=120, what="the workload's lines in the logs")
    iid = entries[0]["instance"]
    assert {e["instance"] for e in entries} == {iid}
    for e in entries:
        assert set(e) == {"instance", "stream", "level", "timestamp", "message"}
    stamps = [parse_ts(e["timestamp"]) for e in entries]
    assert stamps == sorted(stamps)

    # Boot output: the kernel's and the agent's lines are the system stream.
    system = [e for e in entries if e["stream"] == "system"]
    assert any(m.startswith("husk-agent: ready") for m in messages(system)), messages(system)
    # The kernel prints its syslog priority (console_msg_format=syslog), which sets the level.
    kernel = [e for e in system if re.match(r"<[0-7]>\[ *[0-9.]+\] ", e["message"])]
    assert kernel, "no kernel line"
    levels = {"0": "error", "1": "error", "2": "error", "3": "error", "4": "warning", "5": "info",
              "6": "info", "7": "debug"}
    assert all(e["level"] == levels[e["message"][1]] for e in kernel), kernel
    # The workload's stdout and stderr, prefix removed, with their levels.
    by_msg = {e["message"]: e for e in entries}
    assert (by_msg["ERROR: disk failure"]["stream"], by_msg["ERROR: disk failure"]["level"]) == ("workload", "error")
    assert (by_msg["[warn] low memory"]["stream"], by_msg["[warn] low memory"]["level"]) == ("workload", "warning")
    assert (by_msg["info: started"]["stream"], by_msg["info: started"]["level"]) == ("workload", "info")
    assert by_msg["tick 1"]["level"] == "unknown"

    # REST: level floor, tail, since, instance.
    r = api_logs(stack, dep, level="warning")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert {e["level"] for e in r.json()} <= {"error", "warning"}
    assert {"ERROR: disk failure", "[warn] low memory"} <= set(messages(r.json()))
    r = api_logs(stack, dep, tail=3)
    assert len(r.json()) == 3 and r.json()[-1]["message"].startswith("tick")
    ticks = [e for e in api_logs(stack, dep).json() if e["message"].startswith("tick")]
    since = api_logs(stack, dep, since=ticks[1]["timestamp"]).json()
    assert since and all(parse_ts(e["timestamp"]) >= parse_ts(ticks[1]["timestamp"]) for e in since)
    assert "ERROR: disk failure" not in messages(since)
    assert api_logs(stack, dep, since="10m").json()[0]["message"] == entries[0]["message"]
    assert messages(api_logs(stack, dep, instance=iid, tail=1).json())[0].startswith("tick")
    assert api_logs(stack, dep, instance="0123456789ab").json() == []

    # The CLI: text, and a follower that sees new lines as the workload writes them.
    r = stack.husk("deployment", "logs", "talker", "--tail", "1", "--level", "error", check=True)
    assert r.stdout == "ERROR: disk failure\n"
    last = int(messages(cli_logs(stack, "talker", "--tail", "1"))[0].split()[1])
    f = Follower(stack, "talker", "--tail", "0")
    try:
        stack.wait_for(lambda: any(m == f"tick {last + 2}" for m in messages(f.entries)), timeout=30,
                       what="a new tick at the follower")
    finally:
        f.stop()
    got = [int(m.split()[1]) for m in messages(f.entries)]
    assert got == list(range(got[0], got[0] + len(got))) and got[0] > last

    # Refusals.
    assert api_logs(stack, "no-such-deployment").status == 404
    for bad in ({"tail": "-1"}, {"tail": "x"}, {"level": "loud"}, {"since": "yesterday"}, {"instance": "nope"},
                {"follow": "maybe"}, {"colour": "red"}):
        r = api_logs(stack, dep, **bad)
        assert r.status == 400, (bad, r)
    r = stack.husk("deployment", "logs", "talker", "--level", "loud")
    assert r.returncode == 2


# ---- fake VMs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("append", [True, False], ids=["o_append", "no_o_append"])
def test_follower_gets_every_line_once_across_rotations(stack, append):
    max_bytes, backups = 64 * 1024, 2
    quiet(stack)
    set_rotation(stack, max_bytes, backups)
    dep = apply(stack, "flood")
    vm = FakeVM(stack, dep, append=append)
    vm.write("first line\r\n")
    stack.wait_for(lambda: messages(cli_logs(stack, "flood")) == ["first line"], timeout=20)

    f = Follower(stack, "flood")
    f.wait_count(stack, 1)
    lines = numbered("line", 0, 3 * max_bytes // 70 + 100)  # 3x the rotation size
    write_paced(vm, lines)
    try:
        f.wait_count(stack, 1 + len(lines))
        # Nothing more may come: a line written last arrives last, after any duplicate would.
        vm.write("the end\r\n")
        f.wait_count(stack, 2 + len(lines))
    finally:
        err = f.stop()
    assert messages(f.entries) == ["first line"] + lines + ["the end"], err

    # Rotated: only the newest (backups+1) files' worth is kept, and it is the tail.
    kept = messages(cli_logs(stack, "flood"))
    assert len(kept) < len(lines) and kept == (lines + ["the end"])[-len(kept):]
    names = sorted(p.name for p in store_dir(stack, dep, vm.id).iterdir())
    assert names == ["console.log", "console.log.1", "console.log.2", "console.seq"], names
    # Disk use: (backups+1) x max_bytes for the store, plus what the capture file still holds
    # (logd punches holes behind its offset every max_bytes/4, at least 64 KiB; one read of
    # 64 KiB may be in flight).
    assert disk_usage(store_dir(stack, dep)) <= (backups + 1) * max_bytes + 16 * 1024
    assert os.stat(vm.dir / "console.log").st_blocks * 512 <= 64 * 1024 + 64 * 1024 + 4096
    assert os.stat(vm.dir / "console.log").st_size >= sum(len(x) + 2 for x in lines)
    vm.remove()


def test_logd_sigkill_mid_stream_loses_and_repeats_nothing(stack):
    quiet(stack)
    set_rotation(stack, 4 * 1024 * 1024, 2)  # the whole history fits: it can be compared
    dep = apply(stack, "steady")
    vm = FakeVM(stack, dep, append=False)
    f = Follower(stack, "steady")
    before, during, after = numbered("a", 0, 3000), numbered("b", 0, 2000), numbered("c", 0, 3000)
    try:
        write_paced(vm, before[:1500])
        stack.wait_for(lambda: any(m == before[100] for m in messages(f.entries)), timeout=30)
        # Mid-stream, with lines in flight: SIGKILL, lines written while it is down, restart.
        t = threading.Thread(target=write_paced, args=(vm, before[1500:]))
        t.start()
        time.sleep(0.05)
        stack.kill_daemon("logd", signal.SIGKILL)
        t.join()
        write_paced(vm, during)
        stack.start_daemon("logd")
        write_paced(vm, after)
        f.wait_count(stack, 8000, timeout=90)
        # Nothing more may come: a line written last arrives last, after any duplicate would.
        vm.write("the end\r\n")
        f.wait_count(stack, 8001)
    finally:
        err = f.stop()
    want = before + during + after + ["the end"]
    assert messages(f.entries) == want, err
    # The store too (the JSON array streamed over several pages).
    r = api_logs(stack, dep)
    assert r.status == 200
    assert messages(r.json()) == want
    assert "Capturing the consoles of 1 instances" in stack.log("logd")
    vm.remove()


def test_instance_removed_while_logd_is_down_keeps_its_lines(stack):
    quiet(stack)
    dep = apply(stack, "gone")
    vm = FakeVM(stack, dep)
    vm.write("before the kill\r\n")
    stack.wait_for(lambda: messages(cli_logs(stack, "gone")) == ["before the kill"], timeout=20)
    stack.kill_daemon("logd", signal.SIGKILL)
    vm.write("while logd is down\r\nlast words without a newline")
    vm.exit()
    vm.remove()  # as vmm-driver does once the VMM exited
    stack.start_daemon("logd")
    want = ["before the kill", "while logd is down", "last words without a newline"]
    stack.wait_for(lambda: messages(cli_logs(stack, "gone")) == want, timeout=20)
    assert list((stack.state_dir / "logs" / "spool").iterdir()) == []


def test_exited_instances_kept_bounded_and_purged_with_the_deployment(stack):
    quiet(stack)
    dep = apply(stack, "loop")
    vms = []
    for k in range(5):  # a crash loop: each instance prints a line and dies
        vm = FakeVM(stack, dep)
        vm.write(f"attempt {k} starting\r\nattempt {k} failed")
        stack.wait_for(lambda: f"attempt {k} starting" in messages(cli_logs(stack, "loop")), timeout=20)
        vm.exit()
        vm.remove()
        vms.append(vm)
        time.sleep(0.05)
    # The newest 3 (logd.retained_instances) stay readable, partial last lines included.
    want = [m for k in (2, 3, 4) for m in (f"attempt {k} starting", f"attempt {k} failed")]
    stack.wait_for(lambda: messages(cli_logs(stack, "loop")) == want, timeout=20)
    assert sorted(p.name for p in store_dir(stack, dep).iterdir()) == sorted(v.id for v in vms[2:])
    assert {e["instance"] for e in cli_logs(stack, "loop")} == {v.id for v in vms[2:]}

    # Deleted, then purged by the scheduler: the logs go, and a follower is told.
    f = Follower(stack, "loop", "--tail", "0")
    time.sleep(0.5)
    assert stack.husk("deployment", "delete", "loop").returncode == 0
    stack.start_daemon("scheduler")
    stack.wait_for(lambda: not store_dir(stack, dep).exists(), timeout=30, what="the logs purged")
    stack.wait_for(lambda: f.proc.poll() is not None, timeout=30, what="the follower to end")
    assert f.proc.returncode == 0, f.stop()
    assert api_logs(stack, dep).status == 404


def test_deployment_purged_while_logd_is_down_goes_when_it_is_back(stack):
    quiet(stack)
    dep = apply(stack, "missed")
    vm = FakeVM(stack, dep)
    vm.write("soon gone\r\n")
    stack.wait_for(lambda: messages(cli_logs(stack, "missed")) == ["soon gone"], timeout=20)
    vm.exit()
    vm.remove()
    stack.wait_for(lambda: not (stack.state_dir / "logs" / "spool" / f"{vm.id}.console").exists(), timeout=20)
    stack.kill_daemon("logd", signal.SIGKILL)
    assert stack.husk("deployment", "delete", "missed").returncode == 0
    stack.start_daemon("scheduler")
    stack.wait_for(lambda: api_logs(stack, dep).status == 404, timeout=30, what="the deployment purged")
    assert store_dir(stack, dep).exists()
    # Back: it asks apiserver which deployments still exist, without waiting on the answer.
    stack.start_daemon("logd")
    stack.wait_for(lambda: not store_dir(stack, dep).exists(), timeout=30, what="the logs purged")
    assert "is gone from apiserver: purging its logs" in stack.log("logd")
