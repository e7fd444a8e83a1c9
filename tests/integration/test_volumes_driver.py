"""test_volumes_driver.py: volumes over virtio-fs at vmm-driver's level, driven over its bus as
proto/SCHEMA.md describes: one virtiofsd per volume, each mounted by husk-agent at its destination
in the workload's root (kit mode, real QEMU under TCG), config and secret files given directly in
instance.create, read-only shares that really refuse writes, and every virtiofsd reaped with the
instance and after a vmm-driver restart."""
import os
import stat
import subprocess

import pytest

from test_vmm_driver import BOOT_TIMEOUT, EVENT_TIMEOUT, KIT, driver, pid_alive, wait_until  # noqa: F401
from test_vmm_driver import pytestmark  # noqa: F401

ROOTFS = os.path.join(KIT, "rootfs", "hello")


def sh(driver, iid, script):
    r = driver.must("instance.exec", {"instance_id": iid, "argv": ["/bin/sh", "-c", script], "timeout_ms": 20000})
    return r["exit_status"], r["stdout"].decode(), r["stderr"].decode()


def files_dir(driver, iid):
    return os.path.join(driver.dir, "run", "volume-files", iid)


def mount_type(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[2]
    return None


@pytest.fixture(autouse=True)
def no_leftover_mounts(driver):
    """A failed test must not leave its tmpfs mounted under the driver's temp dir."""
    yield
    with open("/proc/self/mounts") as f:
        left = [line.split()[1] for line in f if line.split()[1].startswith(driver.dir + "/")]
    for m in left:
        subprocess.run(["umount", "-l", m], check=False)
    assert not left, f"left mounted: {left}"


def volume_fs_pids(driver, iid):
    return [e["pid"] for e in driver.record(iid).get("volume_fs", [])]


def spec_with_volumes(driver, iid, tmp):
    rw, ro = os.path.join(tmp, "rw"), os.path.join(tmp, "ro")
    os.makedirs(rw)
    os.makedirs(ro)
    # The read-write share is given through a symlink: virtiofsd gets the directory it names.
    os.symlink(rw, os.path.join(tmp, "rw-link"))
    with open(os.path.join(ro, "given"), "w") as f:
        f.write("from the host\n")
    volumes = [
        {"type": "bind", "tag": "bind-0", "destination": "/data", "readonly": False,
         "source": os.path.join(tmp, "rw-link")},
        {"type": "bind", "tag": "bind-1", "destination": "/srv/ro", "readonly": True, "source": ro},
        {"type": "config", "tag": "cfg-2", "destination": "/etc/app", "readonly": True, "source": "app",
         "files": [{"name": "app.conf", "mode": 0o644, "data": b"listen 8080\n"},
                   {"name": "extra.conf", "mode": 0o600, "data": b"x=1\n"}]},
        {"type": "secret", "tag": "sec-3", "destination": "/run/secrets/db-password", "readonly": True,
         "source": "db-password", "files": [{"name": "db-password", "mode": 0o400, "data": b"s3cr3t-value"}]},
    ]
    s = driver.spec(iid, image=ROOTFS, command=["/bin/sleep", "100000"], volumes=volumes)
    del s["kernel"]
    return s, rw, ro


def test_volumes_mounted_by_the_agent_and_reaped(driver):
    iid = "b00000000001"
    tmp = os.path.join(driver.dir, "vols")
    s, rw, ro = spec_with_volumes(driver, iid, tmp)
    inst = driver.must("instance.create", s)
    # Neither the answer nor any event carries a file's data.
    assert all("files" not in v for v in inst["volumes"]), inst["volumes"]
    driver.wait_event("instance.ready", iid, timeout=BOOT_TIMEOUT)

    pids = volume_fs_pids(driver, iid)
    assert len(pids) == 4 and all(p > 0 and pid_alive(p) for p in pids), driver.record(iid)
    assert all("files" not in v for v in driver.record(iid)["volumes"])
    with open(os.path.join(driver.instances_dir, iid, "instance.json")) as f:
        assert "s3cr3t" not in f.read()
    # The files live on a tmpfs of the instance's own under the runtime dir, never on a disk.
    files = files_dir(driver, iid)
    assert os.path.ismount(files) and mount_type(files) == "tmpfs", files
    st = os.stat(os.path.join(files, "sec-3", "db-password"))
    assert stat.S_IMODE(st.st_mode) == 0o400

    # The workload is started once the mounts are there: wait for its start, then look.
    wait_until(lambda: driver.record(iid).get("workload_started"), EVENT_TIMEOUT, "the workload's start")

    # bind rw: the guest writes, the host reads.
    assert sh(driver, iid, "echo written in the guest > /data/out") == (0, "", "")
    wait_until(lambda: os.path.exists(os.path.join(rw, "out")), EVENT_TIMEOUT, "the guest's file on the host")
    with open(os.path.join(rw, "out")) as f:
        assert f.read() == "written in the guest\n"

    # bind ro: readable, and a write fails in the guest.
    assert sh(driver, iid, "cat /srv/ro/given")[:2] == (0, "from the host\n")
    code, _, err = sh(driver, iid, "echo x > /srv/ro/new")
    assert code != 0 and "Read-only file system" in err, (code, err)
    assert os.listdir(ro) == ["given"]

    # config: a directory of files with their modes; secret: one file on its destination, 0400.
    code, out, _ = sh(driver, iid, "cat /etc/app/app.conf /etc/app/extra.conf; stat -c '%a %n' /etc/app/*.conf")
    assert code == 0 and out == "listen 8080\nx=1\n644 /etc/app/app.conf\n600 /etc/app/extra.conf\n", out
    code, out, _ = sh(driver, iid, "cat /run/secrets/db-password; echo; stat -c '%a' /run/secrets/db-password")
    assert code == 0 and out == "s3cr3t-value\n400\n", out
    code, _, err = sh(driver, iid, "echo y > /etc/app/app.conf")
    assert code != 0, err

    # Stop and remove: every virtiofsd goes, and the files with the directory.
    driver.must("instance.stop", {"instance_id": iid, "remove": True})
    driver.wait_event("instance.removed", iid, timeout=EVENT_TIMEOUT + 5)
    wait_until(lambda: not any(pid_alive(p) for p in pids), EVENT_TIMEOUT, "every volume's virtiofsd gone")
    assert not os.path.exists(os.path.join(driver.instances_dir, iid))
    assert not os.path.exists(files) and mount_type(files) is None
    assert os.path.exists(os.path.join(rw, "out"))  # a bind source is the user's: kept


def test_volume_virtiofsd_reaped_after_a_restart(driver):
    iid = "b00000000002"
    tmp = os.path.join(driver.dir, "vols")
    s, rw, ro = spec_with_volumes(driver, iid, tmp)
    driver.must("instance.create", s)
    driver.wait_event("instance.ready", iid, timeout=BOOT_TIMEOUT)
    pids = volume_fs_pids(driver, iid)
    assert len(pids) == 4 and all(pid_alive(p) for p in pids)

    driver.kill9()
    driver.start()
    driver.wait_event("instance.adopted", iid)
    assert all(pid_alive(p) for p in pids)  # the VM and its shares outlive vmm-driver
    driver.must("instance.stop", {"instance_id": iid, "remove": True})
    driver.wait_event("instance.removed", iid, timeout=EVENT_TIMEOUT + 5)
    wait_until(lambda: not any(pid_alive(p) for p in pids), EVENT_TIMEOUT, "every volume's virtiofsd gone")
    assert not os.path.exists(files_dir(driver, iid)) and mount_type(files_dir(driver, iid)) is None


def test_volume_refusals(driver):
    iid = "b00000000003"
    base = driver.spec(iid, image=ROOTFS)
    del base["kernel"]
    cases = [
        ([{"type": "bind", "tag": "bind-0", "destination": "/d", "readonly": False,
           "source": os.path.join(driver.dir, "missing")}], "volumes[0].source"),
        ([{"type": "bind", "tag": "bind-0", "destination": "/d", "readonly": False, "source": driver.dir},
          {"type": "bind", "tag": "bind-1", "destination": "/d", "readonly": False, "source": driver.dir}],
         "volumes[1].destination"),
    ]
    for volumes, field in cases:
        with pytest.raises(Exception) as e:
            driver.must("instance.create", dict(base, volumes=volumes))
        assert getattr(e.value, "code", None) == "invalid" and field in e.value.message, e.value
    # A malformed volume (relative destination) is refused by the decoder.
    with pytest.raises(Exception) as e:
        driver.must("instance.create", dict(base, volumes=[
            {"type": "bind", "tag": "bind-0", "destination": "d", "readonly": False, "source": driver.dir}]))
    assert getattr(e.value, "code", None) == "invalid", e.value
    assert driver.must("instance.list", {}) == []
