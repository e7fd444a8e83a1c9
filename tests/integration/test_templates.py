"""test_templates.py: VM templates (vmm_driver.templates) end to end with real VMs (tcg): a kit VM
saved at agent-ready, clones restored from it with their own identity (hostname, address,
entropy), a template invalidated by a rebuilt kit, a damaged one falling back to a cold boot."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from husk_stack import netns_socket


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def apply(stack, name, image, replicas=1, kind="worker", command=None, extra=""):
    lines = ["deployments:", f"  {name}:", f"    name: {name}", f"    kind: {kind}", "    runtime: qemu",
             f"    image: {image}", f"    replicas: {replicas}",
             "    resources: {limits: {cpu: \"1\", memory: 128Mi}}"]
    if command is not None:
        lines.append(f"    command: {json.dumps(command)}")
    r = stack.husk("apply", "-f", "-", input="\n".join(lines) + "\n" + extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def wait_ready(stack, name, n=1, timeout=180):
    def ready():
        d = inspect(stack, name)
        return d if d and d["status"] == "running" and d["ready_replicas"] >= n else None
    return stack.wait_for(ready, timeout=timeout, what=f"{name} with {n} ready")


def records(stack, d):
    return [stack.instance(i["instance_id"]) for i in d["instances"]]


def exec_in(stack, name, iid, *cmd):
    r = stack.husk("deployment", "exec", name, "--instance", iid, "--", *cmd, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def page_through(stack, port):
    """The page the deployment serves through the published port (127.0.0.1 in the stack's
    namespace), or None."""
    try:
        sock = netns_socket(stack.netns)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        sock.close()
        return data if b"up" in data.split(b"\r\n\r\n", 1)[-1] else None
    except OSError:
        return None


@pytest.fixture
def kit(tmp_path, stack_kit_dir):
    """The test's own kit: a copy of the initrd (which the test may rebuild), the rest linked."""
    dst = tmp_path / "kit"
    dst.mkdir()
    os.symlink(stack_kit_dir / "vmlinux", dst / "vmlinux")
    os.symlink(stack_kit_dir / "rootfs", dst / "rootfs")
    shutil.copy2(stack_kit_dir / "initrd.gz", dst / "initrd.gz")
    return dst


@pytest.fixture
def stack_kit_dir():
    return Path(os.environ.get("HUSK_BUILD", Path(__file__).resolve().parents[2] / "build")).resolve() / "kit"


@pytest.fixture
def tstack(make_stack, kit, tmp_path):
    """A stack whose vmm-driver makes templates for qemu, in the test's directory."""
    stack = make_stack(kit_dir=kit)
    text = stack.config_path.read_text()
    templates = tmp_path / "templates"
    stack.templates_dir = templates
    stack.config_path.write_text(text.replace(
        "vmm_driver:\n", f"vmm_driver:\n  templates: {{qemu: true, dir: {json.dumps(str(templates))}}}\n", 1))
    stack.restart_daemon("vmm-driver")
    return stack


def templates(stack):
    """{key: template.json} of the complete templates."""
    out = {}
    if stack.templates_dir.exists():
        for p in stack.templates_dir.iterdir():
            info = p / "template.json"
            if not p.name.startswith(".") and info.exists():
                out[p.name] = json.loads(info.read_text())
    return out


def listed(stack):
    """The keys vmm-driver has taken in (template.list): a template on disk may not be yet."""
    return [t["key"] for t in stack.request("vmm-driver", "template.list")]


def rootfs(stack, tmp_path, name="root"):
    dst = tmp_path / name
    shutil.copytree(stack.kit_dir / "rootfs/hello", dst, symlinks=True)
    return dst


def warm_up(stack, root):
    """A first instance boots cold and has the template made; returns its key."""
    apply(stack, "first", root, command=["/bin/sleep", "100000"])
    wait_ready(stack, "first")
    keys = stack.wait_for(lambda: listed(stack), timeout=240, what="a template made")
    d = inspect(stack, "first")
    assert not any(r.get("template") for r in records(stack, d)), "the first instance was no clone"
    return next(iter(keys))


def test_replicas_are_clones_with_their_own_identity(tstack, tmp_path):
    stack = tstack
    root = rootfs(stack, tmp_path)
    key = warm_up(stack, root)

    apply(stack, "web", root, replicas=3, command=["/bin/sleep", "100000"])
    d = wait_ready(stack, "web", n=3)
    recs = records(stack, d)
    assert [r.get("template") for r in recs] == [key] * 3, recs
    # The bus says so too (instance.list through the API's view).
    assert all(i.get("template") == key for i in d["instances"]), d["instances"]

    ids = [i["instance_id"] for i in d["instances"]]
    hostnames = [exec_in(stack, "web", iid, "hostname").strip() for iid in ids]
    assert hostnames == ids, hostnames
    addrs = [exec_in(stack, "web", iid, "/bin/sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'").strip()
             for iid in ids]
    assert addrs == [f"{r['address']}/30" for r in recs] and len(set(addrs)) == 3, addrs
    rand = [exec_in(stack, "web", iid, "/bin/sh", "-c", "head -c 32 /dev/urandom | od -An -tx1") for iid in ids]
    assert len(set(rand)) == 3, rand
    # The wall clock is the host's, not the template's.
    clock = [int(exec_in(stack, "web", iid, "date", "+%s")) for iid in ids]
    import time
    assert all(abs(c - time.time()) < 30 for c in clock), clock

    # A published port to a clone (a host port forwards to one replica).
    apply(stack, "svc", root, command=["/bin/sh", "-c", "echo up > /tmp/index.html && exec httpd -f -p 80 -h /tmp"],
          extra="    ports: [{published: 18126, target: 80}]\n")
    s = wait_ready(stack, "svc")
    assert s["instances"][0].get("template") == key, s["instances"]

    assert stack.wait_for(lambda: page_through(stack, 18126), timeout=60, what="the page through 127.0.0.1:18126")

    # A job on a clone: its exit code.
    apply(stack, "job", root, kind="job", command=["/bin/sh", "-c", "echo from-clone; exit 7"])

    def done():
        j = inspect(stack, "job")
        return j if j and j["status"] == "failed" else None
    j = stack.wait_for(done, timeout=180, what="the job's exit")
    assert j["exit_code"] == 7, j
    # It ran on a clone: vmm-driver said which template it took its identity from.
    assert "cold" not in stack.log("vmm-driver"), stack.log_tail("vmm-driver")
    r = stack.husk("deployment", "logs", "job")
    assert "from-clone" in r.stdout, r.stdout + r.stderr

    # Delete: nothing left but the template.
    for name in ("web", "svc", "job", "first"):
        assert stack.husk("deployment", "delete", name).returncode == 0
    stack.wait_for(lambda: not stack.instance_dirs() and not stack.qemu_pids(), timeout=120, what="every instance gone")
    assert list(templates(stack)) == [key]

    # The bus lists it with its size and age, and drops it on request.
    listed = stack.request("vmm-driver", "template.list")
    assert [t["key"] for t in listed] == [key], listed
    assert listed[0]["size_bytes"] > 1 << 20 and listed[0]["made_at"] > 0 and "initrd" in listed[0]["profile"], listed
    assert stack.request("vmm-driver", "template.drop", {"key": key}) == {}
    assert stack.request("vmm-driver", "template.list") == [] and not templates(stack)


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def events(stack, name):
    r = stack.husk("deployment", "events", name, "-o", "json")
    return r.stdout if r.returncode == 0 else ""


def ready_instance(stack, name):
    d = wait_ready(stack, name)
    assert len(d["instances"]) == 1, d["instances"]
    return d["instances"][0], stack.instance(d["instances"][0]["instance_id"])


@pytest.mark.long
def test_damaged_template_and_rebuilt_kit_boot_cold(tstack, tmp_path, kit):
    stack = tstack
    root = rootfs(stack, tmp_path)
    key = warm_up(stack, root)
    tdir = stack.templates_dir / key

    # A template whose state file changed since it was saved: dropped, the instance boots cold
    # (and says why), and the template is made again.
    state = (tdir / "state").read_bytes()
    (tdir / "state").write_bytes(state[:1000] + bytes(len(state) - 1000))
    apply(stack, "damaged", root, command=["/bin/sleep", "100000"])
    i, rec = ready_instance(stack, "damaged")
    assert not rec.get("template") and not i.get("template"), rec
    assert "is damaged" in events(stack, "damaged") or "is damaged" in stack.log("vmm-driver")
    stack.wait_for(lambda: key in listed(stack), timeout=240, what="the template made again")

    # A template that passes the checks but does not restore (its state is garbage that matches
    # its recorded checksum): the clone is killed and the instance boots cold, never fails.
    info = json.loads((tdir / "template.json").read_text())
    garbage = b"QEVM" + bytes(range(256)) * 64
    (tdir / "state").write_bytes(garbage)
    info["state_sum"] = "%016x" % fnv1a(garbage)
    (tdir / "template.json").write_text(json.dumps(info))
    stack.restart_daemon("vmm-driver")  # it reads template.json at start
    apply(stack, "garbage", root, command=["/bin/sleep", "100000"])
    i, rec = ready_instance(stack, "garbage")
    assert not rec.get("template"), rec
    assert "did not restore" in stack.log("vmm-driver"), stack.log_tail("vmm-driver")
    stack.wait_for(lambda: key in listed(stack), timeout=240, what="the template made again")
    apply(stack, "clone", root, command=["/bin/sleep", "100000"])
    i, rec = ready_instance(stack, "clone")
    assert rec.get("template") == key, rec

    # The kit rebuilt (a new initrd file): the old template is never restored; a new one
    # replaces it.
    initrd = kit / "initrd.gz"
    tmp = kit / "initrd.gz.new"
    shutil.copy(initrd, tmp)
    os.replace(tmp, initrd)
    apply(stack, "rebuilt", root, command=["/bin/sleep", "100000"])
    i, rec = ready_instance(stack, "rebuilt")
    assert not rec.get("template"), rec
    new = stack.wait_for(lambda: [k for k in listed(stack) if k != key], timeout=240, what="a new template")
    stack.wait_for(lambda: list(templates(stack)) == new == listed(stack), timeout=30, what="the old template removed")
    apply(stack, "rebuilt2", root, command=["/bin/sleep", "100000"])
    i, rec = ready_instance(stack, "rebuilt2")
    assert rec.get("template") == new[0], rec


def test_volumes_reach_a_clone_over_9p(tstack, tmp_path):
    """A clone's memory is a private copy, which vhost-user virtio-fs cannot serve: its volumes are
    virtio-9p devices of the template's, served by QEMU from the same directories, with the same
    read-write and read-only guarantees."""
    stack = tstack
    root = rootfs(stack, tmp_path)
    data, conf = tmp_path / "data", tmp_path / "conf"
    data.mkdir()
    conf.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    (conf / "app.conf").write_text("setting = 1\n")
    vols = (f"    volumes: [{{type: bind, source: {data}, destination: /data}}, "
            f"{{type: bind, source: {conf}, destination: /etc/app, permission: ro}}]\n")
    # The first instance of this profile (two volumes) boots cold and has its template made.
    apply(stack, "first", root, command=["/bin/sleep", "100000"], extra=vols)
    wait_ready(stack, "first")
    key = stack.wait_for(lambda: listed(stack), timeout=240, what="a template made")[0]
    assert "volumes 9p 2" in stack.request("vmm-driver", "template.list")[0]["profile"]

    apply(stack, "vols", root, command=["/bin/sleep", "100000"], extra=vols)
    i, rec = ready_instance(stack, "vols")
    assert rec.get("template") == key, rec
    iid = i["instance_id"]
    assert exec_in(stack, "vols", iid, "cat", "/data/hello.txt") == "from the host\n"
    exec_in(stack, "vols", iid, "/bin/sh", "-c", "echo from-guest > /data/out.txt")
    assert (data / "out.txt").read_text() == "from-guest\n"
    # Uncached: what the host writes later, the guest reads.
    (data / "later.txt").write_text("later\n")
    assert exec_in(stack, "vols", iid, "cat", "/data/later.txt") == "later\n"
    assert exec_in(stack, "vols", iid, "cat", "/etc/app/app.conf") == "setting = 1\n"
    r = stack.husk("deployment", "exec", "vols", "--instance", iid, "--", "/bin/sh", "-c", "echo x > /etc/app/new",
                   timeout=120)
    assert r.returncode != 0 and not (conf / "new").exists(), r.stdout + r.stderr
    # No virtiofsd: QEMU serves the volumes itself.
    assert not any(v.get("pid") for v in rec.get("volume_fs", []) or []), rec
    assert "cold" not in stack.log("vmm-driver"), stack.log_tail("vmm-driver")


@pytest.fixture
def pstack(make_stack, kit, tmp_path):
    """A stack whose vmm-driver keeps a warm pool of two paused clones per template."""
    stack = make_stack(kit_dir=kit)
    text = stack.config_path.read_text()
    stack.templates_dir = tmp_path / "templates"
    stack.config_path.write_text(text.replace(
        "vmm_driver:\n",
        f"vmm_driver:\n  templates: {{qemu: true, pool: 2, dir: {json.dumps(str(stack.templates_dir))}}}\n", 1))
    stack.restart_daemon("vmm-driver")
    return stack


def pool_dirs(stack):
    return sorted(p.name for p in stack.instances_dir.iterdir() if p.name.startswith(".pool-"))


def pooled(stack, key, n):
    """template.list says n paused clones of key are ready."""
    return any(t["key"] == key and t["pool"] == n for t in stack.request("vmm-driver", "template.list"))


def test_warm_pool_serves_applies_and_refills(pstack, tmp_path):
    stack = pstack
    root = rootfs(stack, tmp_path)
    key = warm_up(stack, root)
    stack.wait_for(lambda: pooled(stack, key, 2), timeout=240, what="two clones in the pool")
    first_pool = pool_dirs(stack)
    assert len(first_pool) == 2, first_pool
    # Each ran once through a placeholder identity before it paused (its TCG translated what a
    # take runs).
    for name in first_pool:
        console = (stack.instances_dir / name / "console.log").read_text(errors="replace")
        assert "identity taken (instance husk-pool-warm-up)" in console, console[-2000:]
    # husk node get lists the template with its pool.
    node = json.loads(stack.husk("node", "get", "-o", "json").stdout)
    assert [(t["key"], t["pool"]) for t in node["templates"]] == [(key, 2)], node
    table = stack.husk("node", "get").stdout
    assert key in table and "2 ready" in table, table

    # Two replicas take both paused clones: their own identity, address and random state.
    (root / "marker").write_text("from the image\n")
    apply(stack, "web", root, replicas=2, command=["/bin/sleep", "100000"])
    d = wait_ready(stack, "web", n=2)
    recs = records(stack, d)
    assert [(r.get("template"), r.get("pool")) for r in recs] == [(key, True)] * 2, recs
    ids = [i["instance_id"] for i in d["instances"]]
    assert [exec_in(stack, "web", iid, "hostname").strip() for iid in ids] == ids
    addrs = [exec_in(stack, "web", iid, "/bin/sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'").strip()
             for iid in ids]
    assert addrs == [f"{r['address']}/30" for r in recs] and len(set(addrs)) == 2, addrs
    rand = [exec_in(stack, "web", iid, "/bin/sh", "-c", "head -c 32 /dev/urandom | od -An -tx1") for iid in ids]
    assert len(set(rand)) == 2, rand
    # The image is bound in each clone's own mount namespace, never in the host's.
    assert str(stack.instances_dir) not in Path("/proc/self/mountinfo").read_text()
    # The image is the deployment's, read-only under the overlay as in kit mode.
    assert exec_in(stack, "web", ids[0], "cat", "/marker") == "from the image\n"
    r = stack.husk("deployment", "exec", "web", "--instance", ids[0], "--", "/bin/sh", "-c",
                   "echo x > /marker.new && cat /marker.new", timeout=120)
    assert r.returncode == 0 and r.stdout == "x\n", r.stdout + r.stderr
    assert not (root / "marker.new").exists(), "a write reached the image"

    # The pool refills in the background, with new clones.
    stack.wait_for(lambda: pooled(stack, key, 2), timeout=240, what="the pool refilled")
    assert not set(pool_dirs(stack)) & set(first_pool)

    # A job from the pool: its logs and exit code; a published port to a pool clone.
    apply(stack, "job", root, kind="job", command=["/bin/sh", "-c", "echo from-pool; exit 7"])

    def done():
        j = inspect(stack, "job")
        return j if j and j["status"] == "failed" else None
    j = stack.wait_for(done, timeout=180, what="the job's exit")
    assert j["exit_code"] == 7, j
    assert "from-pool" in stack.husk("deployment", "logs", "job").stdout
    apply(stack, "svc", root, command=["/bin/sh", "-c", "echo up > /tmp/index.html && exec httpd -f -p 80 -h /tmp"],
          extra="    ports: [{published: 18127, target: 80}]\n")
    s = wait_ready(stack, "svc")
    assert stack.instance(s["instances"][0]["instance_id"]).get("pool") is True

    assert stack.wait_for(lambda: page_through(stack, 18127), timeout=60, what="the page through 127.0.0.1:18127")

    # A vmm-driver restart: the running clones are adopted, the old pool's clones ended and
    # their directories removed, a new pool made.
    stack.wait_for(lambda: pooled(stack, key, 2), timeout=240, what="the pool refilled again")
    before = pool_dirs(stack)
    stack.restart_daemon("vmm-driver")
    stack.wait_for(lambda: pooled(stack, key, 2), timeout=240, what="a pool after the restart")
    assert not set(pool_dirs(stack)) & set(before)
    assert exec_in(stack, "web", ids[1], "hostname").strip() == ids[1]

    # A SIGHUP resizes the pool at once: shrunk, off, on again; a size over the bound is refused
    # and changes nothing.
    def set_pool(n):
        stack.config_path.write_text(re.sub(r"pool: \d+", f"pool: {n}", stack.config_path.read_text(), count=1))
        stack.tool("kill", "--signal", "HUP", "vmm-driver")
    set_pool(1)
    stack.wait_for(lambda: pooled(stack, key, 1) and len(pool_dirs(stack)) == 1, timeout=60, what="a pool of one")
    set_pool(0)
    stack.wait_for(lambda: not pool_dirs(stack) and pooled(stack, key, 0), timeout=60, what="no pool")
    set_pool(3)
    stack.wait_for(lambda: pooled(stack, key, 3), timeout=240, what="a pool of three")
    set_pool(17)
    stack.wait_for(lambda: "templates.pool: must be at most 16, got 17" in stack.log("vmm-driver"), timeout=30,
                   what="the reload refused")
    assert pooled(stack, key, 3) and len(pool_dirs(stack)) == 3, pool_dirs(stack)
    assert exec_in(stack, "web", ids[0], "hostname").strip() == ids[0]

    # Delete, then drop the template: nothing left, no clone, no QEMU.
    for name in ("web", "svc", "job", "first"):
        assert stack.husk("deployment", "delete", name).returncode == 0
    stack.wait_for(lambda: not [p for p in stack.instance_dirs() if not p.name.startswith(".")], timeout=120,
                   what="every instance gone")
    assert stack.request("vmm-driver", "template.drop", {"key": key}) == {}
    stack.wait_for(lambda: not pool_dirs(stack) and not stack.qemu_pids(), timeout=60, what="the pool ended")
