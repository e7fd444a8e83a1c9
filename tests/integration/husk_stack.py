"""husk_stack.py: a husk stack (deploy/husk-stack) as seen from a pytest test.

The daemons run inside the stack's private network namespace, so the API at 127.0.0.1:<port>
is only reachable from in there. Commands run there with `ip netns exec` (which execs them in
place: one process each), with the environment `husk-stack exec` gives; HTTP requests go over a
socket this process opens inside the namespace (see netns_socket), without a new process. Files
(instance dirs, logs, sockets) are shared with the test.
"""

import ctypes
import dataclasses
import http.client
import importlib.machinery
import importlib.util
import json as jsonlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "deploy" / "husk-stack"
BUILD = Path(os.environ.get("HUSK_BUILD") or REPO / "build").resolve()  # holds bin/ and kit/
PYTHON = "/usr/bin/python3"
DAEMONS = ("apiserver", "scheduler", "vmm-driver", "netd", "logd")


def _load_tool():
    """deploy/husk-stack as a module, so pid checks here are exactly the tool's."""
    loader = importlib.machinery.SourceFileLoader("husk_stack_tool", str(TOOL))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


stack_tool = _load_tool()


def require(condition, why):
    """Skip the calling test (or fixture) unless condition holds; under CI=true fail instead, so
    a CI run that cannot run a test says so rather than passing without it. As a marker:
    @pytest.mark.require(condition, why) (conftest.py applies it at set-up)."""
    import pytest

    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot run under CI=true: {why}", pytrace=False)
    pytest.skip(why)


def wait_for(predicate, timeout=30.0, interval=0.1, what=None):
    """Poll predicate() until it returns something truthy and return that, or raise TimeoutError
    after timeout seconds. Exceptions raised by predicate (AssertionError included) count as
    "not yet"; the last one is chained to the TimeoutError and named in its message."""
    deadline = time.monotonic() + timeout
    last, last_exc = None, None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last, last_exc = value, None
        except Exception as e:  # noqa: BLE001 - "not yet", reported on timeout
            last_exc = e
        left = deadline - time.monotonic()
        if left <= 0:
            desc = what or getattr(predicate, "__name__", repr(predicate))
            detail = f"last error: {last_exc!r}" if last_exc else f"last value: {last!r}"
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {desc} ({detail})") from last_exc
        time.sleep(min(interval, left))


@dataclasses.dataclass
class ApiResponse:
    status: int
    headers: dict  # lower-case names
    body: bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return jsonlib.loads(self.body)

    def __repr__(self):
        t = self.text
        return f"<ApiResponse {self.status} {t[:500]!r}{'...' if len(t) > 500 else ''}>"


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def enter_netns(netns):
    """Move the calling thread (only: setns(2) is per thread) into the named network namespace
    (/run/netns/NETNS); what it creates afterwards, sockets and child processes, lives there.
    Call it from a thread of its own that ends soon after."""
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {netns}: {os.strerror(e)}")
    finally:
        os.close(fd)


def spawn_virtiofsd(source, sock_path, cwd=None):
    """virtiofsd exporting source as vmm-driver starts it (vmm_fs.c): its socket made and
    listening here and handed over (--fd), so that a VMM may connect at once. A Popen."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(sock_path))
        os.chmod(sock_path, 0o600)
        listener.listen(1)
        return subprocess.Popen(["/usr/lib/qemu/virtiofsd", f"--fd={listener.fileno()}", "-o", f"source={source}",
                                 "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "no_posix_lock"],
                                pass_fds=(listener.fileno(),), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        listener.close()


def netns_socket(netns, family=socket.AF_INET, type=socket.SOCK_STREAM):
    """A socket created inside the named network namespace (/run/netns/NETNS); it stays there
    wherever it is used from. A thread of its own enters the namespace (setns(2) changes only the
    calling thread's) and ends right after, so this process's other threads never leave theirs."""
    out = {}

    def make():
        try:
            enter_netns(netns)
            out["sock"] = socket.socket(family, type)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=make, name=f"netns-{netns}")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class _NetnsHTTPConnection(http.client.HTTPConnection):
    """http.client, not urllib: no proxy environment variables, no redirects, every status
    returned. Its socket is made inside the namespace."""

    def __init__(self, netns, port, timeout):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._netns = netns

    def connect(self):
        sock = netns_socket(self._netns)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class StackError(RuntimeError):
    pass


class Stack:
    """One stack directory. Attributes: dir, config_path, state_dir, instances_dir, logs_dir,
    bin_dir, kit_dir; after up(): netns, port, host ("http://127.0.0.1:<port>")."""

    def __init__(self, dir, bin_dir, kit_dir, api_port=None, log_level=None, cloud_hypervisor=None):
        self.dir = Path(dir)
        # The cloud-hypervisor binary the stack's config enables (the double), None: qemu only.
        self.cloud_hypervisor = cloud_hypervisor
        # The runtime this stack's tests deploy with (runtime_stack parametrizes it).
        self.runtime = "qemu"
        # Where the cloud-hypervisor double writes every way husk broke CH's contract.
        self.ch_violations = self.dir / "ch-violations.log"
        self.bin_dir = Path(bin_dir)
        self.kit_dir = Path(kit_dir)
        self.config_path = self.dir / "config.yaml"
        self.state_dir = self.dir / "state"
        self.instances_dir = self.state_dir / "instances"
        self.logs_dir = self.dir / "logs"
        self._api_port = api_port
        self._log_level = log_level
        self.netns = stack_tool.netns_name(os.path.abspath(self.dir))
        self.port = self.host = None
        self.token = None  # the test admin's session, from login_admin()

    def __repr__(self):
        return f"<Stack {self.dir}>"

    # ---- the tool ---------------------------------------------------------------------------

    def tool(self, *args, check=True, timeout=120, input=None):
        """Run deploy/husk-stack COMMAND --dir DIR ARGS... and return the CompletedProcess."""
        cmd = [PYTHON, str(TOOL), args[0], "--dir", str(self.dir), *map(str, args[1:])]
        # Daemons started by the tool pass this on to the VMMs vmm-driver spawns.
        env = {**os.environ, "CH_DOUBLE_VIOLATIONS": str(self.ch_violations)}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=env,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def up(self, timeout=30.0):
        args = ["up", "--bin", self.bin_dir, "--kit", self.kit_dir, "--timeout", timeout]
        if self._api_port:
            args += ["--api-port", self._api_port]
        if self._log_level:
            args += ["--log-level", self._log_level]
        if self.cloud_hypervisor:
            args += ["--cloud-hypervisor", self.cloud_hypervisor]
        r = self.tool(*args, timeout=timeout + 30)
        rec = self.record()
        self.netns, self.port, self.host = rec["netns"], rec["api_port"], rec["api_host"]
        if self.token is None:
            self.login_admin()
        return r

    def admin_password(self):
        """The first admin's password, which apiserver wrote at its first start."""
        return (self.state_dir / "admin-password").read_text().strip()

    def login_admin(self):
        """Log in as the first admin once; every later stack.api() and stack.husk() call sends
        that session (pass auth=False, or an Authorization header, to send something else)."""
        r = self.api("POST", "/login", json={"username": "admin", "password": self.admin_password()}, auth=False)
        if r.status != 200:
            raise StackError(f"logging in as the test admin failed: {r!r}")
        self.token = r.json()["token"]
        return self.token

    def auth_header(self):
        """{"Authorization": "Bearer <the test admin's session>"}, for requests made by hand."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def down(self, purge=False):
        return self.tool("down", *(["--purge"] if purge else []), timeout=120)

    def status(self):
        """`husk-stack status --json` as a dict (daemons: {name: {up, pid, log}}, vms, ...)."""
        return jsonlib.loads(self.tool("status", "--json", check=False).stdout)

    def record(self):
        """DIR/stack.json."""
        with open(self.dir / "stack.json") as f:
            return jsonlib.load(f)

    # ---- inside the namespace ---------------------------------------------------------------

    def exec_env(self):
        """The environment `husk-stack exec` gives a command in the namespace."""
        rec = self.record()
        env = {k: v for k, v in os.environ.items() if k not in stack_tool.SYSTEMD_ENV}
        env.update(HUSK_CONFIG=str(self.config_path), HUSK_HOST=rec["api_host"], HUSK_KIT_DIR=rec["kit"],
                   HUSK_STACK_DIR=str(self.dir), HUSK_NETNS=rec["netns"],
                   PATH=rec["bin"] + os.pathsep + os.environ.get("PATH", os.defpath))
        if self.token:  # the CLI acts as the test admin
            env["HUSK_TOKEN"] = self.token
        return env

    def exec(self, *cmd, input=None, timeout=60, check=False, env=None, tool=False):
        """Run cmd inside the namespace; text in, text out. `ip netns exec` execs cmd in place,
        so this is one process; tool=True goes through `husk-stack exec` instead (which is
        what it tests)."""
        cmd = [str(c) for c in cmd]
        if tool:
            full = [PYTHON, str(TOOL), "exec", "--dir", str(self.dir), "--", *cmd]
            env = None if env is None else {**os.environ, **env}
        else:
            env = {**self.exec_env(), **(env or {})}
            if shutil.which(cmd[0], path=env["PATH"]) is None:  # as husk-stack exec says it
                return subprocess.CompletedProcess(cmd, 127, "", f"husk-stack: exec: {cmd[0]}: command not found\n")
            full = [stack_tool.ip_binary(), "netns", "exec", self.netns, *cmd]
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL, env=env)
        if check and r.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def husk(self, *args, input=None, timeout=60, check=False):
        """Run the CLI (BIN/husk ARGS...) against this stack; returns the CompletedProcess."""
        return self.exec(self.bin_dir / "husk", *args, input=input, timeout=timeout, check=check)

    def api(self, method, path, json=None, data=None, headers=None, timeout=10.0, auth=True):
        """One HTTP request to the apiserver. json: a body to send as application/json; data:
        raw str/bytes. Sent as the test admin unless auth is false or headers carry an
        Authorization of their own. Returns ApiResponse(status, headers, body) for every HTTP
        status; raises ConnectionError when no HTTP answer came (refused, reset, timed out)."""
        headers = dict(headers or {})
        if auth and not any(k.lower() == "authorization" for k in headers):
            headers.update(self.auth_header())
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        c = _NetnsHTTPConnection(self.netns, self.port, timeout)
        try:
            c.request(method.upper(), path, body=body, headers=headers)
            r = c.getresponse()
            return ApiResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionError(f"{method.upper()} {path}: {type(e).__name__}: {e}") from e
        finally:
            c.close()

    def wait_for(self, predicate, timeout=30.0, interval=0.1, what=None):
        return wait_for(predicate, timeout=timeout, interval=interval, what=what)

    def request(self, daemon, method, args=None, timeout=10.0):
        """One bus request (SCHEMA.md) to a daemon's ipc:// request socket, which lives in the
        filesystem and so is reachable from here; returns the result, raises StackError on an
        error reply and TimeoutError when none came."""
        from netd_util import request

        r = request(f"ipc://{self.dir}/run/{daemon}.requests", method, args or {}, timeout_ms=int(timeout * 1000))
        if "error" in r:
            raise StackError(f"{method}: {r['error']}")
        return r["result"]

    def scheduler_status(self, run_pass=False):
        """scheduler.status: {passes, pass_scheduled}; run_pass queues a reconcile pass."""
        return self.request("scheduler", "scheduler.status", {"pass": bool(run_pass)})

    def wait_passes(self, n=2, holds=None, timeout=60.0):
        """Wait until the scheduler completed n more reconcile passes, each started after this
        call (asking for them, so no resync tick is waited for): "it decided and nothing happened"
        without a sleep. With holds, check holds() at every poll and return False as soon as it
        fails; True otherwise."""
        # Every pass counted has ended (its calls too); one may be in flight while the request is
        # served, started before it: one more than n makes n that started after.
        target = self.scheduler_status(run_pass=True)["passes"] + n + 1

        def done():
            if holds is not None and not holds():
                return "failed"
            st = self.scheduler_status(run_pass=True)
            return "done" if st["passes"] >= target else None
        return wait_for(done, timeout=timeout, interval=0.05, what=f"{n} more scheduler passes") == "done"

    def processes(self):
        """Pids of every process in the stack's namespace."""
        return stack_tool.netns_pids(self.netns)

    def virtiofsd_pids(self):
        """Pids of the virtiofsd processes in the stack's namespace."""
        pids = []
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
            except OSError:
                continue
            if argv0.endswith(b"virtiofsd"):
                pids.append(pid)
        return pids

    # ---- VMs --------------------------------------------------------------------------------

    def instance_dirs(self):
        """Instance directories (<state>/instances/<id>), sorted."""
        try:
            return sorted(p for p in self.instances_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def instance(self, instance_id):
        """instance.json of one instance as a dict, or None if it has none (yet)."""
        try:
            with open(self.instances_dir / instance_id / "instance.json") as f:
                return jsonlib.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def qemu_pids(self):
        """Pids of the live VMM processes recorded in instance dirs' instance.json (start time
        verified, command line or cwd naming the instance), sorted."""
        return sorted(pid for _, pid, _ in stack_tool.Stack(str(self.dir)).vms())

    # ---- daemons ----------------------------------------------------------------------------

    def daemon_pid(self, name):
        """Pid of the running daemon, None if it is not running."""
        st = stack_tool.Stack(str(self.dir))
        st.load()
        return st.daemon(name)["pid"] if st.daemon_alive(name) else None

    def kill_daemon(self, name, sig=signal.SIGKILL, wait=None, timeout=15.0):
        """Send sig to the daemon (pid and start time from stack.json). Waits until it is gone
        when wait is true (default: for SIGKILL, SIGTERM and SIGINT). Returns its pid."""
        assert name in DAEMONS, name
        st = stack_tool.Stack(str(self.dir))
        st.load()
        d = st.daemon(name)
        t = stack_tool.Target(f"husk-{name}", d["pid"], d["start_time"]) if d else None
        if not t or not t.pin():
            raise StackError(f"husk-{name} is not running")
        try:
            t.signal(sig)
            if wait is None:
                wait = sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
            if wait and stack_tool.wait_gone([t], timeout):
                raise StackError(f"husk-{name} (pid {t.pid}) still runs {timeout:g} s after {signal.Signals(sig).name}")
        finally:
            t.close()
        return t.pid

    def start_daemon(self, name, timeout=30.0):
        """(Re)start one daemon inside the namespace, wait for its READY=1; returns its pid."""
        assert name in DAEMONS, name
        self.tool("start", "--timeout", timeout, name, timeout=timeout + 30)
        return self.daemon_pid(name)

    def restart_daemon(self, name, sig=signal.SIGTERM, timeout=30.0):
        self.kill_daemon(name, sig)
        return self.start_daemon(name, timeout=timeout)

    def log(self, name):
        """Everything DIR/logs/<name>.log holds (all starts of that daemon)."""
        try:
            return (self.logs_dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, name, lines=40):
        return "\n".join(self.log(name).splitlines()[-lines:])


def files_holding(root, needle):
    """Every file under root whose bytes hold needle (grep -a -r -l)."""
    hits = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            try:
                if p.is_file() and needle.encode() in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def print_log_tails(stack, lines=40, file=sys.stdout):
    for name in DAEMONS:
        print(f"--- {stack.logs_dir / (name + '.log')} (last {lines} lines) ---", file=file)
        print(stack.log_tail(name, lines) or "(empty)", file=file)
