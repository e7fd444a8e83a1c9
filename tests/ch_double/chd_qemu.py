"""chd_qemu.py: the guest of a cloud-hypervisor VmConfig, run by QEMU (argv, spawn tied to the double, QMP).

The devices are CH's: a kernel payload boots on microvm (virtio-mmio, as the kit runs under the qemu
runtime), a firmware payload on q35 with the firmware in pflash (virtio-pci); disks, TAP net, serial,
virtio-fs, virtio-rng (CH always has one) and the agent's virtio-serial port that stands in for vsock.
"""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import threading

AGENT_PORT_NAME = "husk.agent"
PR_SET_PDEATHSIG = 1


def host_tsc_khz():
    """The TSC frequency to give a TCG guest (its PIT calibration fails on a busy host), or None."""
    env = os.environ.get("CH_DOUBLE_TSC_KHZ")
    if env:
        return int(env)
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split()) if "flags" in info else set()
    m = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", info, re.M)
    if not m or not {"constant_tsc", "nonstop_tsc"} <= flags:
        return None
    return int(float(m.group(1)) * 1000)


def image_format(path, declared):
    if declared:
        return {"Raw": "raw", "Qcow2": "qcow2", "Vhdx": "vhdx", "FixedVhd": "vpc"}.get(declared, "raw")
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
    except OSError:
        return "raw"


def firmware_vars(firmware):
    """OVMF_CODE*.fd -> its OVMF_VARS*.fd template, as vmm_qemu_firmware_vars(); None when not found."""
    base = os.path.basename(firmware)
    i = base.rfind("CODE")
    if i < 0:
        return None
    cand = os.path.join(os.path.dirname(firmware), base[:i] + "VARS" + base[i + 4 :])
    return cand if os.path.exists(cand) else None


def guest_cmdline(cmdline, accel):
    """CH's cmdline for this guest: husk.transport=vsock dropped (the agent must take the virtio-serial
    port that stands in for vsock here), the TSC frequency added under TCG."""
    words = [w for w in (cmdline or "").split() if w != "husk.transport=vsock"]
    if accel == "tcg" and not any(w.startswith("tsc_early_khz=") for w in words):
        khz = host_tsc_khz()
        if khz:
            words.append(f"tsc_early_khz={khz}")
    return " ".join(words)


def build_argv(cfg, names, qemu, accel):
    """QEMU's argv for VmConfig cfg (validated) and the fds it must inherit. names: the abstract
    socket names of QMP and the agent port; no file of QEMU's own is left even when the double is
    SIGKILLed (the firmware's variables live in a memfd)."""
    fds = []
    payload = cfg.get("payload", {})
    firmware = "firmware" in payload and "kernel" not in payload
    pci = firmware
    mem = cfg.get("memory", {"size": 512 << 20})
    mib = max(mem["size"] >> 20, 16)
    shared = bool(mem.get("shared", False))
    cpus = cfg.get("cpus", {"boot_vcpus": 1, "max_vcpus": 1})
    a = [qemu, "-name", "ch-double", "-nodefaults", "-no-user-config", "-display", "none"]
    if firmware:
        a += ["-machine", f"q35,accel={accel},memory-backend=mem"]
    else:
        a += ["-machine", f"microvm,accel={accel},memory-backend=mem", "-global", "virtio-mmio.force-legacy=false"]
    a += ["-smp", f"{cpus['boot_vcpus']},maxcpus={max(cpus['max_vcpus'], cpus['boot_vcpus'])}"]
    a += ["-m", str(mib), "-object", f"memory-backend-memfd,id=mem,size={mib}M,share={'on' if shared else 'off'}"]
    # A guest reset reboots the VM in place (CH re-creates it); a guest panic is only reported.
    a += ["-action", "panic=none"]
    a += ["-chardev", f"socket,id=qmp,path={names['qmp']},abstract=on,server=on,wait=off", "-mon", "chardev=qmp,mode=control"]
    dev = (lambda kind: f"{kind}-pci") if pci else (lambda kind: f"{kind}-device")
    if firmware:
        a += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={payload['firmware']}"]
        vars_src = firmware_vars(payload["firmware"])
        if vars_src:
            fd = os.memfd_create("ch-double-vars", 0)
            with open(vars_src, "rb") as f:
                os.write(fd, f.read())
            fds.append(fd)
            a += ["-drive", f"if=pflash,format=raw,unit=1,file=/dev/fd/{fd}"]
    else:
        a += ["-kernel", payload["kernel"]]
        if "initramfs" in payload:
            a += ["-initrd", payload["initramfs"]]
        a += ["-append", guest_cmdline(payload.get("cmdline"), accel)]

    serial = cfg.get("serial", {"mode": "Null"})
    mode = serial["mode"]
    if mode == "File":
        a += ["-serial", f"file:{serial['file']}"]
    elif mode == "Tty":
        a += ["-serial", "file:/dev/stdout"]
    elif mode == "Pty":
        a += ["-serial", "pty"]
    elif mode == "Socket":
        a += ["-chardev", f"socket,id=serial0,path={serial['socket']},server=on,wait=off", "-serial", "chardev:serial0"]
    else:
        a += ["-serial", "null"]

    for i, d in enumerate(cfg.get("disks") or []):
        ro = ",readonly=on" if d.get("readonly") else ""
        a += ["-drive", f"if=none,id=disk{i},format={image_format(d['path'], d.get('image_type'))},file={d['path']}{ro}"]
        a += ["-device", f"{dev('virtio-blk')},drive=disk{i}" + (f",serial={d['serial']}" if d.get("serial") else "")
              + (",bootindex=0" if pci and i == 0 else "")]
    for i, n in enumerate(cfg.get("net") or []):
        a += ["-netdev", f"tap,id=net{i},ifname={n['tap']},script=no,downscript=no"]
        a += ["-device", f"{dev('virtio-net')},netdev=net{i}" + (f",mac={n['mac']}" if n.get("mac") else "")
              + (",romfile=" if pci else "")]
    for i, f in enumerate(cfg.get("fs") or []):
        a += ["-chardev", f"socket,id=fs{i},path={f['socket']}"]
        a += ["-device", f"{'vhost-user-fs-pci' if pci else 'vhost-user-fs-device'},chardev=fs{i},tag={f['tag']}"]
    rng = cfg.get("rng") or {"src": "/dev/urandom"}
    a += ["-object", f"rng-random,id=rng0,filename={rng['src']}", "-device", f"{dev('virtio-rng')},rng=rng0"]
    console = cfg.get("console", {"mode": "Tty"})
    a += ["-device", dev("virtio-serial")]
    if console["mode"] in ("File", "Tty"):
        path = console.get("file") if console["mode"] == "File" else "/dev/stdout"
        a += ["-chardev", f"file,id=con0,path={path}", "-device", "virtconsole,chardev=con0"]
    if cfg.get("vsock"):
        a += ["-chardev", f"socket,id=agent,path={names['agent']},abstract=on,server=on,wait=off"]
        a += ["-device", f"virtserialport,chardev=agent,name={AGENT_PORT_NAME},id=agentport"]
    if cfg.get("pvpanic"):
        a += ["-device", "pvpanic-pci" if pci else "pvpanic"]
    return a, fds


def spawn(argv, fds, output):
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_parent():
        # QEMU must never outlive the double: SIGKILL when the thread that spawned it (the main
        # thread, which lives as long as the process) dies, and no window where that already happened.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                preexec_fn=die_with_parent, close_fds=True, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)


class Qmp:
    """QMP on QEMU's socket: commands from one thread, events to a callback from a reader thread."""

    def __init__(self, path, on_event):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.connect(path)
        self.rfile = self.sock.makefile("rb")
        json.loads(self.rfile.readline())  # greeting
        self.on_event = on_event
        self.replies = []
        self.cv = threading.Condition()
        self.sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        reply = json.loads(self.rfile.readline())
        if "return" not in reply:
            raise OSError(f"qmp_capabilities: {reply}")
        threading.Thread(target=self._read_loop, daemon=True, name="qmp").start()

    def _read_loop(self):
        try:
            for line in self.rfile:
                msg = json.loads(line)
                if "event" in msg:
                    self.on_event(msg)
                else:
                    with self.cv:
                        self.replies.append(msg)
                        self.cv.notify_all()
        except (OSError, ValueError):
            pass
        with self.cv:
            self.replies.append(None)
            self.cv.notify_all()

    def execute(self, cmd, args=None, timeout=5.0):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        with self.cv:
            self.replies = [r for r in self.replies if r is None]
            try:
                self.sock.sendall(json.dumps(msg).encode() + b"\n")
            except OSError as e:
                return {"error": {"desc": str(e)}}
            if not self.cv.wait_for(lambda: self.replies, timeout):
                return {"error": {"desc": "timeout"}}
            r = self.replies.pop(0)
            return r if r is not None else {"error": {"desc": "QMP closed"}}

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
