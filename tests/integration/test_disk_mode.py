"""test_disk_mode.py: disk images booted by their own firmware through husk (Ring's
cloud-hypervisor runtime, on the qemu runtime): what is not a bootable disk is refused at apply
with the reason, never booted as the kit; make image's image boots through OVMF with its own
copy-on-write disk and husk's cloud-init seed, serves its page on a published port, and leaves
nothing behind when deleted. Every wait polls with a deadline."""
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from husk_stack import BUILD, files_holding, netns_socket, require
from test_secrets import CHECK as SECRET_CHECK, SECRET

IMAGE = BUILD / "image" / "debian-12.raw"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Under TCG: OVMF, the kernel, systemd and cloud-init's four stages take 60-90 s on a quiet
# machine (test_image_boot measures them), and up to five minutes were seen with five guests
# booting on two cores; the deadline is for a guest that hangs. The tcp check's start_period
# covers the boot: failures before the page listens do not count.
BOOT_DEADLINE = 600.0


def apply(stack, text):
    return stack.husk("apply", "-f", "-", input=text)


# ---- nothing silent: refused at apply, no VM boots ------------------------------------------

def gpt_without_esp(path):
    with open(path, "wb") as f:
        f.truncate(8 << 20)
    # One Linux data partition: a valid GPT, nothing for firmware to boot.
    subprocess.run(["sfdisk", "-q", str(path)], input="label: gpt\n,,L\n", text=True, check=True,
                   capture_output=True)


@pytest.mark.require(shutil.which("sfdisk") is not None, "sfdisk not installed (Debian package fdisk)")
def test_unbootable_image_files_are_refused_at_apply(stack, tmp_path):
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    zeros = tmp_path / "zeros.raw"
    zeros.write_bytes(b"\0" * 65536)
    noesp = tmp_path / "noesp.raw"
    gpt_without_esp(noesp)
    for path, reason in ((empty, "empty file"), (zeros, "no GPT partition table"),
                         (noesp, "no EFI system partition")):
        r = stack.api("POST", "/deployments", json={"name": "disk", "image": str(path), "replicas": 1})
        assert r.status == 422, (path, r)
        [v] = r.json()["violations"]
        assert (v["field"], v["reason"]) == ("image", f"{path}: not a bootable disk: {reason}"), r
        # The CLI shows it as field: reason.
        out = apply(stack, f"deployments:\n  disk:\n    name: disk\n    image: {path}\n")
        assert out.returncode != 0 and f"image: {path}: not a bootable disk: {reason}" in out.stdout + out.stderr, \
            out.stdout + out.stderr
    # `boot: kit` boots the kit with the file as a plain disk: no firmware, no ESP needed.
    r = stack.api("POST", "/deployments", json={"name": "kitdisk", "image": str(noesp), "boot": "kit", "replicas": 0})
    assert r.status in (200, 201), r
    assert stack.instance_dirs() == []


# ---- firmware boot of make image's image ----------------------------------------------------

PORT = 18080
ENV = {"GREETING": "hello world", "QUOTED": "it's \"quoted\"", "PLAIN": "42"}


def base_digest(path):
    """size, mtime and a SHA-256 of every data extent (holes read as zeros, so this is the
    content's checksum without reading 1.5 GiB of holes)."""
    h = hashlib.sha256()
    st = os.stat(path)
    with open(path, "rb") as f:
        fd, off = f.fileno(), 0
        while off < st.st_size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            h.update(f"{data}:{hole}\n".encode())
            f.seek(data)
            left = hole - data
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            off = hole
    return st.st_size, st.st_mtime_ns, h.hexdigest()


def http_get(stack, port, path, timeout=5.0):
    sock = netns_socket(stack.netns)
    try:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return body if head.split(b" ")[1:2] == [b"200"] else None


def try_get(stack, port, path):
    try:
        return http_get(stack, port, path)
    except OSError:
        return None


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


@pytest.mark.long
@pytest.mark.require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
@pytest.mark.require(OVMF_CODE.is_file() and OVMF_VARS.is_file(), "OVMF firmware not installed (Debian package ovmf)")
def test_image_boots_by_firmware_with_env_secret_volumes_ports_and_leaves_nothing(runtime_stack, tmp_path):
    """One boot serves what a disk-mode user relies on at first boot (a boot costs a minute of
    TCG): the environment and a secret through the cloud-init seed, bind volumes mounted by
    cloud-init, a published port, exec through the image's agent; then delete leaves nothing."""
    stack = runtime_stack
    before = base_digest(IMAGE)
    r = stack.husk("secret", "create", "db-password", "--from-file", "-", input=SECRET)
    assert r.returncode == 0, r.stdout + r.stderr
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given").write_text("from the host\n")
    volumes = json.dumps([{"type": "bind", "source": str(rw), "destination": "/srv/data", "permission": "rw"},
                          {"type": "bind", "source": str(ro), "destination": "/srv/ro", "permission": "ro"}])
    env = "\n".join(f"      {k}: {json.dumps(v)}" for k, v in ENV.items())
    text = f"""deployments:
  web:
    name: web
    runtime: {stack.runtime}
    image: {IMAGE}
    resources: {{limits: {{cpu: "1", memory: 1024Mi}}}}
    environment:
{env}
      DB_PASSWORD: {{secretRef: db-password}}
    volumes: {volumes}
    ports:
      - {{published: {PORT}, target: 8080}}
    health_checks:
      - {{type: tcp, port: 8080, interval: 2s, timeout: 2s, readiness: true, start_period: {int(BOOT_DEADLINE)}s}}
"""
    start = time.monotonic()
    r = apply(stack, text)
    assert r.returncode == 0, r.stdout + r.stderr

    def running():
        d = inspect(stack, "web")
        return d if d and d["status"] == "running" and d["ready_replicas"] >= 1 else None
    d = stack.wait_for(running, timeout=BOOT_DEADLINE, interval=1, what="web running (tcp 8080 passing)")
    print(f"\ndisk mode: apply to running {time.monotonic() - start:.1f} s")
    [inst] = [i for i in d["instances"] if i["state"] == "ready"]
    iid = inst["instance_id"]
    idir = stack.instances_dir / iid
    rec = json.loads((idir / "instance.json").read_text())
    assert rec["firmware_boot"] is True and rec["workload_mode"] is None, rec
    seed = idir / "seed.img"
    assert seed.stat().st_mode & 0o777 == 0o600
    disks = [p for p in idir.iterdir() if p.name.startswith("disk.")]
    assert len(disks) == 1 and disks[0].stat().st_mode & 0o777 == 0o600, disks

    # The guest's page through the published port: the environment (the secret's value with it,
    # as the guest's services get it), the host name.
    doc = json.loads(stack.wait_for(lambda: try_get(stack, PORT, "/env.json"), timeout=60, interval=1,
                                    what=f"the guest's page on 127.0.0.1:{PORT}"))
    assert doc["file"] == doc["service"] == {**ENV, "DB_PASSWORD": SECRET}, "the environment in the guest"
    assert doc["hostname"] == iid
    assert doc["files"]["/etc/husk/env"]["mode"] == "0600"
    html = try_get(stack, PORT, "/").decode()
    assert "hello world" in html and "it&#x27;s &quot;quoted&quot;" in html
    # The serial console reaches logd: the firmware and the guest kernel alike.
    logs = stack.husk("deployment", "logs", "web", "--tail", "2000")
    assert "Cloud-init" in logs.stdout, logs.stdout[-2000:] + logs.stderr

    # exec through husk-agent in the image, over the virtio-serial port. The command line is
    # stored and logged: it holds only the secret's hash.
    r = stack.husk("deployment", "exec", "web", "--", "sh", "-c",
                   f"stat -c '%a %U' /etc/husk/env && . /etc/husk/env && {SECRET_CHECK} && echo guest-has-it",
                   timeout=120)
    assert r.returncode == 0 and r.stdout == "600 root\nguest-has-it\n", r.stdout + r.stderr
    # The image ships the environment's drop-in as the seed writes it: no daemon-reload at boot.
    r = stack.husk("deployment", "exec", "web", "--", "sh", "-c",
                   "journalctl -b -o cat _PID=1 | grep -c '^Reloading' || true", timeout=60)
    assert r.returncode == 0 and r.stdout == "0\n", "systemd reloaded: " + r.stdout + r.stderr
    # On the host, the seed and the instance's own disk (the guest's files) alone hold the secret.
    leaks = [p for p in files_holding(stack.dir, SECRET)
             if Path(p).parent != idir or not (Path(p).name == "seed.img" or Path(p).name.startswith("disk."))]
    assert leaks == [], leaks

    # The bind volumes, mounted by cloud-init: written by the guest, read by the host; read-only.
    r = stack.husk("deployment", "exec", "web", "--", "sh", "-c",
                   "grep -E ' /srv/(data|ro) virtiofs ' /proc/mounts", timeout=60)
    assert "bind-0 /srv/data virtiofs rw" in r.stdout and "bind-1 /srv/ro virtiofs ro" in r.stdout, r.stdout + r.stderr
    r = stack.husk("deployment", "exec", "web", "--", "sh", "-c",
                   "echo from the disk guest > /srv/data/out && cat /srv/ro/given", timeout=60)
    assert r.returncode == 0 and r.stdout == "from the host\n", r.stdout + r.stderr
    assert (rw / "out").read_text() == "from the disk guest\n"
    r = stack.husk("deployment", "exec", "web", "--", "sh", "-c", "echo x > /srv/ro/new", timeout=60)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stdout + r.stderr

    pid = inst["pid"]
    r = stack.husk("deployment", "delete", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    stack.wait_for(lambda: not idir.exists() and inspect(stack, "web") is None, timeout=120, interval=0.5,
                   what="web deleted and its instance directory gone")
    assert not os.path.exists(f"/proc/{pid}"), f"its VMM ({stack.runtime}) still runs"
    stack.wait_for(lambda: not stack.virtiofsd_pids(), timeout=30, what="every virtiofsd reaped")
    assert stack.instance_dirs() == []
    assert files_holding(stack.dir, SECRET) == []
    assert base_digest(IMAGE) == before, "the base image changed"


@pytest.mark.long
@pytest.mark.require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
@pytest.mark.require(OVMF_CODE.is_file() and OVMF_VARS.is_file(), "OVMF firmware not installed (Debian package ovmf)")
def test_two_replicas_own_disks_and_a_job_that_powers_off_completes(stack):
    """Three VMs of one image at once: two replicas, each booting its own disk and seed, and a
    job whose guest powers itself off cleanly, which ends it `completed`."""
    check = f"{{type: tcp, port: 8080, interval: 2s, timeout: 2s, readiness: true, start_period: {int(BOOT_DEADLINE)}s}}"
    text = f"""deployments:
  pair:
    name: pair
    image: {IMAGE}
    replicas: 2
    resources: {{limits: {{cpu: "1", memory: 512Mi}}}}
    health_checks:
      - {check}
  once:
    name: once
    kind: job
    image: {IMAGE}
    resources: {{limits: {{cpu: "1", memory: 512Mi}}}}
"""
    start = time.monotonic()
    r = apply(stack, text)
    assert r.returncode == 0, r.stdout + r.stderr

    # The job: its guest powers off once its agent answers (the agent starts before cloud-init).
    def powered_off():
        r = stack.husk("deployment", "exec", "once", "-t", "20s", "--", "systemctl", "poweroff", timeout=60)
        d = inspect(stack, "once")
        return d if d and d["status"] in ("completed", "failed") else None
    d = stack.wait_for(powered_off, timeout=BOOT_DEADLINE, interval=5, what="the job's guest powered off")
    assert d["status"] == "completed", d
    print(f"\ndisk mode: job apply to completed {time.monotonic() - start:.1f} s")

    def both_running():
        d = inspect(stack, "pair")
        return d if d and d["status"] == "running" and d["ready_replicas"] == 2 else None
    d = stack.wait_for(both_running, timeout=2 * BOOT_DEADLINE, interval=2, what="pair's two replicas running")
    print(f"disk mode: two replicas apply to running {time.monotonic() - start:.1f} s")
    ids = sorted(i["instance_id"] for i in d["instances"] if i["state"] == "ready")
    pids = [i["pid"] for i in d["instances"] if i["state"] == "ready"]
    assert len(ids) == 2
    disks = set()
    for iid in ids:
        [disk] = [p for p in (stack.instances_dir / iid).iterdir() if p.name.startswith("disk.")]
        disks.add(disk.resolve())
        # Each booted its own disk with its own seed: its host name is its own id.
        r = stack.husk("deployment", "exec", "pair", "--instance", iid, "--", "hostname", timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == iid, r.stdout + r.stderr
    assert len(disks) == 2

    for name in ("pair", "once"):
        assert stack.husk("deployment", "delete", name).returncode == 0
    stack.wait_for(lambda: stack.instance_dirs() == [], timeout=120, interval=0.5, what="every instance directory gone")
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")], "a QEMU still runs"


# ---- boot: kit and kernel: with make image's image -------------------------------------------

KIT_KERNEL = BUILD / "kit" / "vmlinux"


def events(stack, name):
    r = stack.husk("deployment", "events", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []


def test_invalid_boot_is_a_422_naming_the_field(stack):
    r = stack.api("POST", "/deployments", json={"name": "b", "image": str(IMAGE), "boot": "uefi", "replicas": 0})
    assert r.status == 422, r
    [v] = r.json()["violations"]
    assert v["field"] == "boot" and v["reason"] == "\"uefi\" is not a boot mode: use \"firmware\" or \"kit\"", v
    r = stack.api("POST", "/deployments", json={"name": "b", "image": str(IMAGE), "boot": "firmware",
                                                "kernel": str(KIT_KERNEL), "replicas": 0})
    assert r.status == 422 and [v["field"] for v in r.json()["violations"]] == ["boot"], r
    assert stack.instance_dirs() == []


@pytest.mark.require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
def test_boot_kit_makes_the_disk_the_workloads_root(stack):
    """`boot: kit` (and `kernel:`) boot the kit (husk-agent as PID 1) with the image attached
    read-only; the agent mounts the disk's root file system (partition 2 of make image's image,
    after its EFI system partition) under a tmpfs overlay as the workload's root: the command and
    exec see the Debian 12 image, writes stay in the VM, the base never changes."""
    before = base_digest(IMAGE)
    text = f"""deployments:
  onkit:
    name: onkit
    image: {IMAGE}
    boot: kit
    resources: {{limits: {{cpu: "1", memory: 256Mi}}}}
  kjob:
    name: kjob
    kind: job
    image: {IMAGE}
    kernel: {KIT_KERNEL}
    resources: {{limits: {{cpu: "1", memory: 256Mi}}}}
    command: ["/bin/sh", "-c", "grep -q '^VERSION_CODENAME=bookworm' /etc/os-release && test -x /usr/local/bin/husk-envpage && echo x > /etc/written && exit 7"]
"""
    r = apply(stack, text)
    assert r.returncode == 0, r.stdout + r.stderr

    # The job ran its command from the disk: 7 only if the image's files were there.
    d = stack.wait_for(lambda: (lambda d: d if d and d["status"] in ("failed", "completed") else None)(
        inspect(stack, "kjob")), timeout=180, interval=1, what="the kernel: job ended")
    assert d["status"] == "failed" and d["status_message"] == "job exited with status 7", d
    assert d["exit_code"] == 7, d

    def running():
        d = inspect(stack, "onkit")
        return d if d and d["status"] == "running" and d["ready_replicas"] >= 1 else None
    d = stack.wait_for(running, timeout=180, interval=1, what="onkit running")
    [inst] = [i for i in d["instances"] if i["state"] == "ready"]
    rec = json.loads((stack.instances_dir / inst["instance_id"] / "instance.json").read_text())
    assert not rec.get("firmware_boot") and rec["workload_mode"] == "disk" and rec["boot"] == "kit", rec
    with open(f"/proc/{inst['pid']}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    assert "-kernel" in argv and f"file={IMAGE},if=none,id=disk0,format=raw,readonly=on" in argv, argv

    # exec runs in the disk's root: Debian 12's os-release, the agent as PID 1 of the kit.
    r = stack.husk("deployment", "exec", "onkit", "--", "cat", "/etc/os-release", timeout=60)
    assert r.returncode == 0 and 'VERSION_ID="12"' in r.stdout and "bookworm" in r.stdout, r.stdout + r.stderr
    r = stack.husk("deployment", "exec", "onkit", "--", "sh", "-c",
                   "cat /proc/1/comm; ls /usr/local/bin; echo w > /written && cat /written", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split()
    assert lines[0] == "init" and "husk-envpage" in lines and lines[-1] == "w", r.stdout

    for name in ("onkit", "kjob"):
        assert stack.husk("deployment", "delete", name).returncode == 0
    stack.wait_for(lambda: stack.instance_dirs() == [], timeout=120, interval=0.5, what="every instance directory gone")
    assert base_digest(IMAGE) == before, "the base image changed"


# ---- jobs whose guest does not power off -----------------------------------------------------

@pytest.mark.long
@pytest.mark.require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
@pytest.mark.require(OVMF_CODE.is_file() and OVMF_VARS.is_file(), "OVMF firmware not installed (Debian package ovmf)")
def test_disk_image_jobs_that_reset_or_panic_fail_with_the_reason(stack):
    """A firmware-booted job whose guest reboots (sysrq b: QEMU's -no-reboot makes that an exit
    with status 0, reason guest-reset) or panics (sysrq c: the pvpanic device makes it an exit,
    reason guest-panic, where Debian's kernel would otherwise hang in its panic) ends `failed`,
    the reason in its status message; a job whose guest powers off completes
    (test_two_replicas_own_disks_and_a_job_that_powers_off_completes)."""
    text = "deployments:\n" + "".join(f"""  {name}:
    name: {name}
    kind: job
    image: {IMAGE}
    resources: {{limits: {{cpu: "1", memory: 512Mi}}}}
""" for name in ("resets", "panics"))
    start = time.monotonic()
    r = apply(stack, text)
    assert r.returncode == 0, r.stdout + r.stderr

    def ended(name, key):
        def check():
            # The agent answers before udev started: the guest's pvpanic driver is loaded by udev
            # (by the time cloud-init runs a user's commands), so the panic waits for it. The exec
            # never returns; the VM ends.
            stack.husk("deployment", "exec", name, "-t", "150s", "--", "sh", "-c",
                       f"udevadm settle -t 140; sync; echo {key} > /proc/sysrq-trigger", timeout=200)
            d = inspect(stack, name)
            return d if d and d["status"] in ("completed", "failed") else None
        return check

    d = stack.wait_for(ended("resets", "b"), timeout=BOOT_DEADLINE, interval=5, what="the resetting job ended")
    assert d["status"] == "failed", d
    assert d["status_message"].startswith("job failed, the guest rebooted instead of powering off: instance ") \
        and "(guest-reset, status 0)" in d["status_message"], d
    assert d["exit_code"] is None, d
    [e] = d["exited_instances"]
    assert e["exit_reason"] == "guest-reset", e
    print(f"\ndisk mode: resetting job apply to failed {time.monotonic() - start:.1f} s")

    d = stack.wait_for(ended("panics", "c"), timeout=BOOT_DEADLINE, interval=5, what="the panicking job ended")
    assert d["status"] == "failed", d
    assert d["status_message"].startswith("job failed, the guest kernel panicked: instance ") \
        and "(guest-panic, status 0)" in d["status_message"], d
    [e] = d["exited_instances"]
    assert e["exit_reason"] == "guest-panic", e
    assert [x for x in events(stack, "panics") if x["reason"] == "InstanceCrashed"], events(stack, "panics")
    print(f"disk mode: panicking job apply to failed {time.monotonic() - start:.1f} s")

    for name in ("resets", "panics"):
        assert stack.husk("deployment", "delete", name).returncode == 0
    stack.wait_for(lambda: stack.instance_dirs() == [], timeout=120, interval=0.5, what="every instance directory gone")


# Ring's documented example (shared/reference/ring-cloud-hypervisor-runtime.txt), verbatim but
# for the image path: a Ring user's file applies unchanged.
RING_MY_VM = """# my-vm.yaml
deployments:
  my-app:
    name: my-app
    namespace: production
    runtime: cloud-hypervisor
    image: "/var/lib/ring/images/ubuntu-focal.raw"
    replicas: 1
    resources:
      limits:
        cpu: "2"            # \u2192 2 vCPUs (allocation, not cap; floor 1)
        memory: "512Mi"     # \u2192 VM RAM size (minimum 128 MiB)
    health_checks:
      - type: tcp
        port: 8080
        interval: 10s
        timeout: 5s
        threshold: 3
        on_failure: restart
"""


@pytest.mark.long
@pytest.mark.require(IMAGE.is_file(), f"{IMAGE} not built (make image)")
@pytest.mark.require(OVMF_CODE.is_file() and OVMF_VARS.is_file(), "OVMF firmware not installed (Debian package ovmf)")
def test_ring_my_vm_yaml_applies_unchanged_on_cloud_hypervisor(make_stack):
    from conftest import CH_DOUBLE

    stack = make_stack(cloud_hypervisor=str(CH_DOUBLE))
    text = RING_MY_VM.replace("/var/lib/ring/images/ubuntu-focal.raw", str(IMAGE))
    r = stack.husk("apply", "-f", "-", input=text)
    assert r.returncode == 0, r.stdout + r.stderr

    def running():
        r = stack.husk("deployment", "inspect", "my-app", "-n", "production", "-o", "json")
        d = json.loads(r.stdout) if r.returncode == 0 else None
        return d if d and d["status"] == "running" and d["ready_replicas"] == 1 else None
    d = stack.wait_for(running, timeout=BOOT_DEADLINE, interval=1, what="my-app running on cloud-hypervisor")
    [inst] = [i for i in d["instances"] if i["state"] == "ready"]
    rec = stack.instance(inst["instance_id"])
    assert rec["runtime"] == "cloud-hypervisor" and rec["cpus"] == 2 and rec["memory_mib"] == 512, rec
    assert rec["firmware_boot"] is True, rec
    # Its VMM is cloud-hypervisor's, booting the image's own copy by firmware with the seed.
    idir = stack.instances_dir / inst["instance_id"]
    assert (idir / "ch-api.sock").exists() and (idir / "seed.img").exists(), sorted(os.listdir(idir))
    # Its tcp check passes on the VM it started with: under TCG this image boots in 60-90 s,
    # longer than the example's check allows (3 failures 10 s apart, no start_period,
    # on_failure: restart), but failures of a guest still booting do not count.
    def passing():
        r = stack.husk("deployment", "health-checks", "my-app", "-n", "production", "-o", "json")
        checks = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []
        return checks if checks and all(c["status"] == "passing" for c in checks) else None
    [check] = stack.wait_for(passing, timeout=BOOT_DEADLINE, interval=2, what="my-app's tcp check passing")
    assert check["instance_id"] == inst["instance_id"] and check["type"] == "tcp", check
    r = stack.husk("deployment", "inspect", "my-app", "-n", "production", "-o", "json")
    assert json.loads(r.stdout)["restart_count"] == 0, r.stdout
