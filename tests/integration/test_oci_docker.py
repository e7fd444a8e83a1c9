"""test_oci_docker.py: husk-oci as a Docker runtime. dockerd (docker.io) runs in a private network
namespace with a temp data-root, no bridge and no iptables, on the session's private containerd
(oci_world), with `husk` under `runtimes` and the kit in its `runtimeArgs` (Docker prepends them
as global flags). The busybox image is `docker import`ed. Each scenario runs with `--runtime runc`
(the baseline) and `--runtime husk`."""

import json
import os
import shutil
import signal
import subprocess

import pytest

from husk_stack import BUILD, require, wait_for

# On one worker: one dockerd serves the module's tests (conftest.py).
pytestmark = pytest.mark.xdist_group("oci-docker")

RUNTIMES = ("runc", "husk")
TERM_LOOP = "trap 'exit 143' TERM; while :; do sleep 0.2; done"


class Docker:
    def __init__(self, world):
        self.world = world
        self.dir = world.dir / "docker"
        self.sock = self.dir / "docker.sock"
        self.proc = None

    def start(self):
        self.dir.mkdir()
        kit = BUILD / "kit"
        cfg = {
            "data-root": str(self.dir / "data"),
            "exec-root": str(self.dir / "exec"),
            "pidfile": str(self.dir / "docker.pid"),
            "hosts": [f"unix://{self.sock}"],
            "containerd": str(self.world.sock),
            "bridge": "none",
            "iptables": False,
            "ip6tables": False,
            "ip-forward": False,
            "ip-masq": False,
            "userland-proxy": False,
            "runtimes": {"husk": {"path": str(BUILD / "bin" / "husk-oci"),
                                  "runtimeArgs": ["--kernel", str(kit / "vmlinux"), "--initrd", str(kit / "initrd.gz"),
                                                  "--accel", "tcg"]}},
        }
        (self.dir / "daemon.json").write_text(json.dumps(cfg))
        # A network namespace of its own (unshare -n, not `ip netns exec`: that one also remounts
        # /sys, and dockerd then finds no cgroups).
        with open(self.dir / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(["unshare", "-n", "dockerd", "--config-file", str(self.dir / "daemon.json")],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.docker("version").returncode == 0, timeout=60, what="dockerd to answer")
        with open(self.world.dir / "rootfs.tar", "rb") as tar:
            r = subprocess.run(["docker", "-H", f"unix://{self.sock}", "import", "-", "busybox:latest"], stdin=tar,
                               capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return self

    def docker(self, *args, input=None, timeout=180):
        return subprocess.run(["docker", "-H", f"unix://{self.sock}", *args], input=input, capture_output=True,
                              text=True, timeout=timeout)

    def close(self):
        if self.proc and self.proc.poll() is None:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        mounts = [line.split()[1] for line in open("/proc/self/mounts").read().splitlines()
                  if line.split()[1].startswith(str(self.dir) + "/")]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def docker(oci_world):
    require(shutil.which("dockerd") and shutil.which("docker"), "docker.io is not installed (deploy/install-deps.sh)")
    d = Docker(oci_world)
    try:
        yield d.start()
    finally:
        d.close()


def both(fn):
    return {rt: fn(rt) for rt in RUNTIMES}


def test_docker_run_output_and_exit_code(docker):
    res = both(lambda rt: docker.docker("run", "--rm", "--runtime", rt, "--network", "none", "busybox", "sh", "-c",
                                        "echo hi; exit 6"))
    for rt, r in res.items():
        assert (r.returncode, r.stdout) == (6, "hi\n"), f"{rt}: {r.returncode} {r.stdout!r} {r.stderr!r}"


def test_docker_files_hostname_exec_top_stop(docker):
    def scenario(rt):
        name = f"dk-{rt}"
        try:
            r = docker.docker("run", "-d", "--name", name, "--hostname", "boxy", "--runtime", rt, "--network", "none",
                              "busybox", "sh", "-c", TERM_LOOP)
            assert r.returncode == 0, f"{rt}: {r.stderr}"
            wait_for(lambda: docker.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true",
                     timeout=120, what=f"{name} running")
            e = docker.docker("exec", name, "sh", "-c", "hostname; cat /etc/hostname; grep -q localhost /etc/hosts && echo hosts; exit 2")
            top = docker.docker("top", name)
            s = docker.docker("stop", name)
            code = docker.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
            return (e.returncode, e.stdout, top.returncode, len(top.stdout.splitlines()) >= 2, s.returncode, code)
        finally:
            docker.docker("rm", "-f", name)

    res = both(scenario)
    assert res["runc"] == (2, "boxy\nboxy\nhosts\n", 0, True, 0, "143")
    assert res["husk"] == res["runc"]
