"""test_doctor.py: `husk doctor` against a live stack: every check of a healthy stack is ok, a
daemon that is down fails with the command that starts it, a missing VMM binary and a
world-writable state dir fail with theirs, and the exit code says whether something required
failed."""

import json
import os
import re

import yaml


def doctor(stack, *args):
    r = stack.husk("doctor", *args, timeout=60)
    return r


def lines(out):
    """{check: [(status, message, fix)]} from the table."""
    got = {}
    rows = out.rstrip("\n").splitlines()
    for k, line in enumerate(rows):
        m = re.match(r"^(ok|warn|fail)\s+(\S+(?: \S+)?)\s{2,}(.*)$", line)
        if not m:
            continue
        fix = None
        if k + 1 < len(rows) and rows[k + 1].lstrip().startswith("fix: "):
            fix = rows[k + 1].lstrip()[len("fix: "):]
        got.setdefault(m.group(2), []).append((m.group(1), m.group(3), fix))
    return got


def test_doctor_on_a_healthy_stack_then_broken_pieces(stack):
    r = doctor(stack, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    answer = json.loads(r.stdout)
    assert answer["ok"] is True
    by = {}
    for c in answer["checks"]:
        by.setdefault(c["check"], []).append(c)
    failed = [c for c in answer["checks"] if c["status"] == "fail"]
    assert not failed, failed
    for name in ("apiserver", "scheduler", "vmm-driver", "netd", "logd"):
        (c,) = by[f"husk-{name}"]
        assert c["status"] == "ok" and f"pid {stack.daemon_pid(name)}," in c["message"], c
    assert by["vmm-driver qemu"][0]["status"] == "ok" and "accel tcg" in by["vmm-driver qemu"][0]["message"]
    assert by["qemu"][0]["message"].endswith(")") and "QEMU emulator version" in by["qemu"][0]["message"]
    assert by["api"][0]["status"] == "ok" and by["kit"][0]["status"] == "ok"
    # The stack's config says accel: tcg, so KVM is not needed whatever /dev/kvm is like.
    assert by["kvm"][0]["status"] == "ok" and by["kvm"][0]["message"].startswith("accel tcg"), by["kvm"]
    assert all("fix" not in c for c in answer["checks"] if c["status"] == "ok")

    # A daemon that is down: a failure, the command that starts it, exit 1.
    stack.kill_daemon("netd")
    r = doctor(stack)
    assert r.returncode == 1, r.stdout
    got = lines(r.stdout)
    (status, message, fix), = got["husk-netd"]
    assert status == "fail" and "does not answer" in message, got["husk-netd"]
    assert fix.startswith("systemctl start husk-netd"), fix
    assert got["husk-scheduler"][0][0] == "ok"
    assert re.search(r"^\d+ ok, \d+ warnings?, 1 failure$", r.stdout, re.M), r.stdout
    stack.start_daemon("netd")

    # A config whose VMM binary does not exist, and a state dir anyone may write to.
    config = yaml.safe_load(stack.config_path.read_text())
    config.setdefault("runtime", {}).setdefault("qemu", {})["binary_path"] = "/nonexistent/qemu-system-x86_64"
    broken = stack.dir / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    mode = os.stat(stack.state_dir).st_mode & 0o7777
    os.chmod(stack.state_dir, mode | 0o002)
    try:
        r = doctor(stack, "--help")
        assert r.returncode == 0 and "Where each check runs" in r.stdout
        r = stack.exec(stack.bin_dir / "husk", "--config", broken, "doctor", timeout=60)
    finally:
        os.chmod(stack.state_dir, mode)
    assert r.returncode == 1, r.stdout
    got = lines(r.stdout)
    (status, message, fix), = got["qemu"]
    assert status == "fail" and message == "/nonexistent/qemu-system-x86_64 not found", got["qemu"]
    assert fix == f"install QEMU at /nonexistent/qemu-system-x86_64, or fix runtime.qemu.binary_path in {broken}"
    (state,) = [row for row in got["directories"] if f"state_dir {stack.state_dir}" in row[1]]
    assert state[0] == "fail" and state[2] == f"chmod o-w {stack.state_dir}", state
    # vmm-driver runs with its own config: its qemu is fine.
    assert got["vmm-driver qemu"][0][0] == "ok"
