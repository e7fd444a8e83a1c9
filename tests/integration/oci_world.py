"""oci_world.py: a private containerd with a busybox image, for husk-oci's tests (test_oci.py).

OciWorld builds a busybox OCI image with umoci from /bin/busybox (busybox-static), starts
Debian's containerd on its own config, root, state, socket and opt dir in a short temp dir (CRI
disabled), and imports the image with `ctr images import`. `ctr(...)` runs ctr against it in a
namespace of its own; `runtime(name)` gives the --runc-binary and --runc-root of "runc"
(/usr/sbin/runc, the baseline) or "husk" (build/bin/husk-oci behind a wrapper that prepends
the kit and `--accel tcg`, as Docker's runtimeArgs do). Nothing is left behind: close() deletes
every task and container, ends the shims containerd started for this world (by pid, found by
their --address) and containerd itself, and removes the directory.
"""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from husk_stack import wait_for

BUSYBOX = "/bin/busybox"
RUNC = "/usr/sbin/runc"
IMAGE = "docker.io/library/busybox:latest"
NAMESPACE = "husk-oci-test"


class OciWorld:
    def __init__(self, build):
        self.build = Path(build)
        # Short: husk-oci's sockets live under it (sun_path is 108 bytes).
        self.dir = Path(tempfile.mkdtemp(prefix="/tmp/ho-"))
        self.sock = self.dir / "c.sock"
        self.containerd = None
        self.log = self.dir / "containerd.log"

    # ---- setup ------------------------------------------------------------------------------

    def start(self):
        self._image()
        cfg = self.dir / "containerd.toml"
        cfg.write_text(f"""version = 2
root = "{self.dir}/root"
state = "{self.dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.dir}/c.ttrpc.sock"
[debug]
  address = "{self.dir}/c.debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.dir}/opt"
""")
        self._containerd()
        r = self.ctr("images", "import", "--base-name", "docker.io/library/busybox", str(self.dir / "image.tar"))
        assert r.returncode == 0, f"ctr images import: {r.stderr}"
        r = self.ctr("images", "ls", "-q")
        assert IMAGE in r.stdout.split(), f"image not imported: {r.stdout!r}"
        self._wrapper()
        return self

    def _containerd(self):
        with open(self.log, "ab") as log:
            self.containerd = subprocess.Popen(["containerd", "--config", str(self.dir / "containerd.toml")],
                                               stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                               start_new_session=True)
        wait_for(lambda: self.ctr("version").returncode == 0, timeout=30, what="containerd to answer")

    def restart_containerd(self):
        """containerd stopped (SIGTERM) and started again; the shims and their tasks live on."""
        self.containerd.terminate()
        self.containerd.wait(timeout=30)
        self._containerd()

    def _image(self):
        """busybox as an OCI image: umoci layout, one layer with /bin/busybox and its applets."""
        layout, bundle = self.dir / "layout", self.dir / "unpacked"

        def umoci(*args):
            subprocess.run(["umoci", *args], check=True, capture_output=True, text=True)

        umoci("init", "--layout", str(layout))
        umoci("new", "--image", f"{layout}:latest")
        umoci("unpack", "--image", f"{layout}:latest", str(bundle))
        rootfs = bundle / "rootfs"
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
            (rootfs / d).mkdir(exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
        for a in applets:
            if a != "busybox" and not (rootfs / "bin" / a).exists():
                os.symlink("busybox", rootfs / "bin" / a)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (rootfs / "etc" / "group").write_text("root:x:0:\n")
        # The same files as a plain tar, for `docker import` (test_oci_docker.py).
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(self.dir / "rootfs.tar"), "."], check=True)
        umoci("repack", "--image", f"{layout}:latest", str(bundle))
        umoci("config", "--image", f"{layout}:latest", "--config.cmd", "/bin/sh",
              "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        subprocess.run(["tar", "-C", str(layout), "-cf", str(self.dir / "image.tar"), "."], check=True)
        shutil.rmtree(bundle)

    def _wrapper(self):
        """husk-oci with the kit: ctr's --runc-binary takes a path, not arguments."""
        kit = self.build / "kit"
        w = self.dir / "husk-oci"
        # HUSK_OCI_FAKE_QEMU=1: oci_fake_qemu.py stands in for QEMU and the guest (a debugging aid
        # for the holder's logic: processes then run on the host).
        fake = f"--qemu {Path(__file__).resolve().parent}/oci_fake_qemu.py " if os.environ.get(
            "HUSK_OCI_FAKE_QEMU") == "1" else ""
        w.write_text("#!/bin/sh\n"
                     f"exec {self.build}/bin/husk-oci --kernel {kit}/vmlinux --initrd {kit}/initrd.gz "
                     f"--accel tcg {fake}{os.environ.get('HUSK_OCI_FLAGS', '')} \"$@\"\n")
        w.chmod(0o755)
        self.husk_oci = w

    # ---- use ------------------------------------------------------------------------------------

    def runtime(self, name):
        """ctr run's options for a runtime: its binary and a --root of this world's."""
        binary = RUNC if name == "runc" else str(self.husk_oci)
        return ["--runc-binary", binary, "--runc-root", str(self.dir / f"{name}-root")]

    def ctr(self, *args, input=None, timeout=120):
        return subprocess.run(["ctr", "--address", str(self.sock), "-n", NAMESPACE, *args], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def task_status(self, cid):
        r = self.ctr("task", "ls")
        for line in r.stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return f[2] if len(f) > 2 else None
        return None

    def cleanup_container(self, cid):
        """Whatever a test left of cid: its task killed and deleted, the container deleted."""
        if self.task_status(cid):
            self.ctr("task", "kill", "-s", "SIGKILL", cid)
            try:
                wait_for(lambda: self.task_status(cid) in ("STOPPED", None), timeout=30)
            except TimeoutError:
                pass
            self.ctr("task", "delete", "--force", cid)
        self.ctr("container", "delete", cid)

    # ---- teardown ---------------------------------------------------------------------------------

    def _our_pids(self):
        """Processes of this world: those naming its directory on their command line (the shims by
        their --address, husk-oci's holders by their --root) and all their descendants (QEMU and
        virtiofsd under a holder, whatever their command line)."""
        parent, ours = {}, set()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmd = (p / "cmdline").read_bytes()
                parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if str(self.dir).encode() in cmd and int(p.name) != os.getpid():
                ours.add(int(p.name))
        grew = True
        while grew:
            more = {pid for pid, pp in parent.items() if pp in ours and pid not in ours}
            ours |= more
            grew = bool(more)
        if self.containerd:
            ours.discard(self.containerd.pid)
        return ours

    def close(self):
        if self.containerd and self.containerd.poll() is None:
            r = self.ctr("containers", "ls", "-q")
            for cid in r.stdout.split():
                self.cleanup_container(cid)
            self.ctr("images", "rm", IMAGE)
        for pid in self._our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.containerd and self.containerd.poll() is None:
            self.containerd.terminate()
            try:
                self.containerd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.containerd.kill()
                self.containerd.wait()
        # Mounts containerd may have left (snapshots of killed tasks), then the files.
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.dir) + "/")]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
