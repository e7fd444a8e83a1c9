"""test_kit_mode.py: kit mode end to end with real VMs (tcg): the workload runs from a rootfs or an
OCI bundle directory through husk-agent, reports its exit status, takes environment: and exec."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from husk_stack import netns_socket

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HUSK_BUILD", REPO / "build"))
FUZZER = BUILD / "fuzz/fuzz_agent_frame"


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def apply(stack, name, image, kind="worker", command=None, environment=None, extra=""):
    lines = [f"deployments:", f"  {name}:", f"    name: {name}", f"    kind: {kind}", f"    runtime: {stack.runtime}",
             f"    image: {image}", "    resources: {limits: {cpu: \"1\", memory: 128Mi}}"]
    if command is not None:
        lines.append(f"    command: {json.dumps(command)}")
    if environment is not None:
        lines.append(f"    environment: {json.dumps(environment)}")
    text = "\n".join(lines) + "\n" + extra
    r = stack.husk("apply", "-f", "-", input=text)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def wait_status(stack, name, status, timeout=120):
    def done():
        d = inspect(stack, name)
        return d if d and d["status"] == status else None
    return stack.wait_for(done, timeout=timeout, what=f"{name} {status}")


def wait_ready(stack, name, timeout=120):
    def ready():
        d = inspect(stack, name)
        return d if d and d["status"] == "running" and d["ready_replicas"] >= 1 else None
    return stack.wait_for(ready, timeout=timeout, what=f"{name} running")


def rootfs(stack, tmp_path, name="root"):
    """A copy of the kit's busybox rootfs in the test's own directory."""
    dst = tmp_path / name
    shutil.copytree(stack.kit_dir / "rootfs/hello", dst, symlinks=True)
    return dst


def tree(path):
    """Every entry under path with its type, size and mtime: what a guest write would change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def console(stack, d):
    """Console logs of the deployment's instances, concatenated."""
    text = ""
    for i in d["instances"]:
        p = stack.instances_dir / i["instance_id"] / "console.log"
        if p.exists():
            text += p.read_text(errors="replace")
    return text


def job_exit_code(d):
    codes = [i["exit_status"] for i in d["instances"] if i["state"] == "exited"]
    assert len(codes) == 1, d["instances"]
    return codes[0]


def events(stack, name):
    r = stack.husk("deployment", "events", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []


def test_job_exit_3_fails_with_code_3(runtime_stack, tmp_path):
    stack = runtime_stack
    root = rootfs(stack, tmp_path)
    apply(stack, "three", root, kind="job", command=["/bin/sh", "-c", "echo about to fail; exit 3"])
    d = wait_status(stack, "three", "failed")
    # The scheduler removed the exited instance; the code stays in the status message.
    assert d["status_message"] == "job exited with status 3", d
    text = stack.husk("deployment", "inspect", "three", check=True).stdout
    assert "failed (job exited with status 3)" in text, text


def test_image_that_is_a_symlink_runs_as_its_target(stack, tmp_path):
    """Issue 20: a symlinked image (here a relative link to a link to the rootfs) runs exactly as
    its target: it was a crash loop on "cannot start virtiofsd ... No child processes"."""
    root = rootfs(stack, tmp_path)
    (tmp_path / "current").symlink_to("root")
    (tmp_path / "app").symlink_to(tmp_path / "current")
    apply(stack, "linked", tmp_path / "app", kind="job",
          command=["/bin/sh", "-c", "test -x /bin/busybox && exit 3"])
    d = wait_status(stack, "linked", "failed")
    assert d["status_message"] == "job exited with status 3", d
    assert d["image"] == str(tmp_path / "app"), d  # the user's path is kept; only the VM got the target
    assert not [e for e in events(stack, "linked") if e["reason"] == "InstanceCrashed"]


def test_job_killed_by_sigkill_reports_137(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    apply(stack, "killed", root, kind="job", command=["/bin/sh", "-c", "kill -9 $$$$"])  # husk apply: $$ is a literal $
    d = wait_status(stack, "killed", "failed")
    assert d["status_message"] == "job exited with status 137", d


def test_job_exit_0_completes(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    apply(stack, "ok", root, kind="job", command=["/bin/true"])
    d = wait_status(stack, "ok", "completed")
    assert d["status_message"] == "job exited with status 0", d


def test_exec_stdout_exit_code_and_environment(runtime_stack, tmp_path):
    stack = runtime_stack
    root = rootfs(stack, tmp_path)
    apply(stack, "svc", root, command=["/bin/sh", "-c", "echo workload sees GREETING=$GREETING; exec sleep 100000"],
          environment={"GREETING": "hello from husk", "PORT": 8080})
    d = wait_ready(stack, "svc")

    # The workload got environment: (its first line is on the console, marked as the workload's).
    stack.wait_for(lambda: "husk-workload: workload sees GREETING=hello from husk" in console(stack, d),
                   timeout=30, what="the workload's line on the console")

    r = stack.husk("deployment", "exec", "svc", "--", "/bin/sh", "-c",
                   "echo out:$GREETING:$PORT; echo err >&2; exit 5")
    assert r.returncode == 5, r.stdout + r.stderr
    assert r.stdout == "out:hello from husk:8080\n"
    assert r.stderr == "err\n"

    # exec's own -e overrides, and it runs in the workload's root (hostname = instance id).
    iid = d["instances"][0]["instance_id"]
    r = stack.husk("deployment", "exec", "svc", "--instance", iid, "-e", "GREETING=override", "--",
                   "/bin/sh", "-c", "echo $GREETING $(hostname)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"override {iid}\n"

    # Several at once, multiplexed on one channel.
    procs = [stack.husk("deployment", "exec", "svc", "--", "/bin/sh", "-c", f"sleep 0.{k}; echo {k}; exit {k}")
             for k in range(1, 4)]
    for k, r in zip(range(1, 4), procs):
        assert (r.returncode, r.stdout) == (k, f"{k}\n")

    # Through REST, with stdin and a timeout that fires.
    resp = stack.api("POST", f"/deployments/{d['id']}/exec", json={"command": ["/bin/cat"], "stdin": "piped"})
    assert resp.status == 200 and resp.json()["stdout"] == "piped", resp.text()
    # Output beyond 1 MiB is cut and said to be.
    resp = stack.api("POST", f"/deployments/{d['id']}/exec",
                     json={"command": ["/bin/sh", "-c", "head -c 1500000 /dev/zero | tr '\\0' a; echo done >&2"]},
                     timeout=60)
    body = resp.json()
    assert resp.status == 200 and body["truncated"] is True and body["exit_status"] == 0, resp.text()[:300]
    assert body["stdout"] == "a" * (1 << 20) and body["stderr"] == "done\n"
    resp = stack.api("POST", f"/deployments/{d['id']}/exec", json={"command": ["/bin/sleep", "30"], "timeout": "1s"})
    body = resp.json()
    assert resp.status == 200 and body["timed_out"] is True and body["exit_status"] == 137, body


def test_command_health_check_and_published_port(runtime_stack, tmp_path):
    """The agent runs a command health check in the guest (over virtio-serial or hybrid vsock),
    and a published port reaches the guest's server, on either runtime."""
    stack = runtime_stack
    root = rootfs(stack, tmp_path)
    apply(stack, "web", root, command=["/bin/sh", "-c", "echo up > /tmp/index.html && exec httpd -f -p 80 -h /tmp"],
          extra="""    ports: [{published: 18125, target: 80}]
    health_checks:
      - {type: command, command: ["/bin/sh", "-c", "test -s /tmp/index.html"], interval: 1s, timeout: 5s,
         readiness: true, start_period: 60s}
""")
    d = wait_ready(stack, "web")

    def passing():
        r = stack.husk("deployment", "health-checks", "web", "-o", "json")
        checks = json.loads(r.stdout) if r.returncode == 0 else []
        ok = [c for c in checks if c["type"] == "command" and c["history"] and c["history"][-1]["ok"]]
        return ok or None
    stack.wait_for(passing, timeout=60, what="the command check passing (run by husk-agent in the guest)")

    def page():
        try:
            s = netns_socket(stack.netns)
            s.settimeout(5)
            s.connect(("127.0.0.1", 18125))
            s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            s.close()
            return data if b"up" in data.split(b"\r\n\r\n", 1)[-1] else None
        except OSError:
            return None
    assert stack.wait_for(page, timeout=60, what="the page through 127.0.0.1:18125")
    assert len(d["instances"]) == 1


def test_exec_errors_name_husk_agent_and_transport(runtime_stack, tmp_path):
    stack = runtime_stack
    root = rootfs(stack, tmp_path)
    apply(stack, "frozen", root, command=["/bin/sleep", "100000"])
    d = wait_ready(stack, "frozen")
    r = stack.husk("deployment", "exec", "frozen", "--instance", "ffffffffffff", "--", "/bin/true")
    assert r.returncode != 0 and "no instance ffffffffffff" in r.stderr, r.stderr
    # A guest that does not answer: the error says who did not, and over what.
    pid = d["instances"][0]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        r = stack.husk("deployment", "exec", "frozen", "--timeout", "1s", "--", "/bin/true", timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.returncode != 0
    transport = {"qemu": "virtio-serial", "cloud-hypervisor": "hybrid vsock"}[stack.runtime]
    assert "husk-agent" in r.stderr and transport in r.stderr, r.stderr


def test_writes_to_root_leave_host_directory_untouched(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    before = tree(root)
    apply(stack, "writer", root, kind="job",
          command=["/bin/sh", "-c", "echo x > /new-file && rm -rf /bin/ls && mkdir /etc/newdir && "
                   "echo changed > /etc/hostname-file && test -f /new-file && test ! -e /bin/ls"])
    d = wait_status(stack, "writer", "completed")
    assert d["status_message"] == "job exited with status 0", d
    assert tree(root) == before


def test_oci_bundle_args_env_cwd_honoured(stack, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    rootfs(stack, bundle, "rootfs")
    (bundle / "rootfs/work").mkdir()
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "echo bundle cwd=$(pwd) FROM=$FROM OVER=$OVER; exec sleep 100000"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM=bundle", "OVER=bundle"],
            "cwd": "/work",
            "capabilities": {"bounding": ["CAP_KILL"]},
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "ignored",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    apply(stack, "bundle", bundle, environment={"OVER": "deployment"})
    d = wait_ready(stack, "bundle")
    stack.wait_for(lambda: "husk-workload: bundle cwd=/work FROM=bundle OVER=deployment" in console(stack, d),
                   timeout=30, what="the bundle's process on the console")
    r = stack.husk("deployment", "exec", "bundle", "--", "/bin/sh", "-c", "pwd; echo $FROM")
    assert (r.returncode, r.stdout) == (0, "/work\nbundle\n"), r.stderr
    # What a VM cannot apply is reported, not silently dropped.
    log = (stack.logs_dir / "vmm-driver.log").read_text()
    assert "OCI bundle fields ignored in a VM:" in log and "linux.namespaces" in log and "mounts" in log


def test_vmm_driver_restart_keeps_kit_instance_and_delete_leaves_nothing(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    apply(stack, "keep", root, command=["/bin/sh", "-c", "echo up; exec sleep 100000"])
    d = wait_ready(stack, "keep")
    assert len(stack.virtiofsd_pids()) == 1
    stack.kill_daemon("vmm-driver")
    stack.start_daemon("vmm-driver")
    # Re-adopted: the agent refuses a second start, exec still reaches it, and the workload runs once.
    r = stack.husk("deployment", "exec", "keep", "--", "/bin/sh", "-c", "ps | grep -c '[s]leep 100000'")
    assert (r.returncode, r.stdout) == (0, "1\n"), r.stdout + r.stderr
    assert [i["instance_id"] for i in inspect(stack, "keep")["instances"]] == [i["instance_id"] for i in d["instances"]]
    assert stack.husk("deployment", "delete", "keep").returncode == 0
    stack.wait_for(lambda: stack.husk("deployment", "inspect", "keep").returncode == 4, timeout=60,
                   what="keep gone")
    stack.wait_for(lambda: not stack.virtiofsd_pids() and not stack.instance_dirs(), timeout=30,
                   what="no virtiofsd and no instance directory left")


def vmm_call(stack, method, args, timeout=15.0):
    """One request to vmm-driver over its ROUTER socket, as SCHEMA.md describes it."""
    import msgpack
    import time
    import zmq
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"ipc://{stack.dir}/run/vmm-driver.requests")
    try:
        s.send_multipart([b"", method.encode(), msgpack.packb(
            {"id": 1, "deadline": int(time.time() * 1000) + int(timeout * 1000), "args": args})])
        assert s.poll(int(timeout * 1000)), f"{method}: no reply"
        return msgpack.unpackb(s.recv_multipart()[2], raw=False)
    finally:
        s.close()


def test_workload_status_and_signal_a_worker_is_replaced(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    apply(stack, "sig", root, command=["/bin/sleep", "100000"])
    d = wait_ready(stack, "sig")
    iid = d["instances"][0]["instance_id"]
    # Ready is the agent's; the workload's start goes to it after that, so wait for it.
    def running():
        st = vmm_call(stack, "instance.workload", {"instance_id": iid})["result"]
        assert st["state"] == "running" and st["started"] is True and st["pid"] > 1, st
        return st
    stack.wait_for(running, timeout=30, what="the workload running")
    assert vmm_call(stack, "instance.signal", {"instance_id": iid, "signal": 15}) == {"id": 1, "result": {}}
    # A worker whose workload ends is a crash: replaced by a new instance.
    def replaced():
        cur = inspect(stack, "sig")
        ids = [i["instance_id"] for i in cur["instances"] if i["state"] == "ready"]
        return cur if ids and iid not in ids else None
    stack.wait_for(replaced, timeout=90, what="a new instance after the workload's exit")
    log = (stack.logs_dir / "vmm-driver.log").read_text()
    assert f"Instance {iid}: workload exited with status 143" in log


def test_command_refused_for_firmware_disk_image(stack, tmp_path):
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 4096)
    text = f"""deployments:
  disk:
    name: disk
    image: {disk}
    command: ["/bin/true"]
"""
    r = stack.husk("apply", "-f", "-", input=text)
    assert r.returncode != 0
    assert "kit mode" in r.stdout + r.stderr, r.stdout + r.stderr


def test_disk_image_with_boot_kit_runs_command_from_the_disk(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    (root / "marker").write_text("from the disk\n")
    disk = tmp_path / "disk.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(disk), "32M"], check=True)
    before = disk.read_bytes()
    text = f"""deployments:
  ondisk:
    name: ondisk
    kind: job
    boot: kit
    image: {disk}
    command: ["/bin/sh", "-c", "grep -q 'from the disk' /marker && echo x > /new && exit 4"]
    resources: {{limits: {{cpu: "1", memory: 128Mi}}}}
"""
    r = stack.husk("apply", "-f", "-", input=text)
    assert r.returncode == 0, r.stdout + r.stderr
    d = wait_status(stack, "ondisk", "failed")
    assert d["status_message"] == "job exited with status 4", d
    assert disk.read_bytes() == before


@pytest.mark.require(FUZZER.exists(), "make fuzz builds the fuzzer")
def test_agent_frame_decoders_survive_the_fuzzer(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    r = subprocess.run([str(FUZZER), "-max_total_time=10", "-max_len=65536", str(corpus)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("sysrq", ["b", "c"], ids=["reset", "panic"])
def test_guest_reset_or_panic_ends_the_vm(runtime_stack, tmp_path, sysrq):
    """A guest that resets (or panics into a reset, panic=-1) ends its VM, as a reboot is the
    scheduler's decision: QEMU runs with -no-reboot; cloud-hypervisor reboots in place, so
    vmm-driver ends it on its event monitor's `rebooting` (or `panic`) record."""
    stack = runtime_stack
    root = rootfs(stack, tmp_path)
    apply(stack, "flaky", root, command=["/bin/sh", "-c", f"sleep 2; echo {sysrq} > /proc/sysrq-trigger"])
    first = wait_ready(stack, "flaky")["instances"][0]["instance_id"]

    def exited():
        return [e for e in events(stack, "flaky")
                if e["reason"] == "InstanceExited" and first in e["message"]] or None
    [e] = stack.wait_for(exited, timeout=60, what=f"instance {first} exited after its guest's sysrq {sysrq}")
    # A reset is no clean end (a job that did it failed). A panic reboots the kit's kernel at
    # once (panic=-1; the kit loads no pvpanic driver to say so first): a reset on both runtimes.
    assert f"instance {first} exited (guest-reset, status" in e["message"], e
