"""husk_stack.py: a husk stack (deploy/husk-stack) as seen from a pytest test.

The daemons run inside the stack's private network namespace, so the API at 127.0.0.1:<port>
is only reachable from in there: every command and HTTP request goes through
`husk-stack exec`. Files (instance dirs, logs, sockets) are shared with the test.
"""

import base64
import dataclasses
import importlib.machinery
import importlib.util
import json as jsonlib
import os
import signal
import subprocess
import sys
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


# Runs inside the namespace: one HTTP request described on stdin, the answer as JSON on stdout.
# http.client, not urllib: no proxy environment variables, no redirects, every status returned.
_HTTP_CLIENT = r"""
import base64, http.client, json, sys
q = json.load(sys.stdin)
try:
    c = http.client.HTTPConnection("127.0.0.1", q["port"], timeout=q["timeout"])
    c.request(q["method"], q["path"], body=None if q["body"] is None else base64.b64decode(q["body"]),
              headers=q["headers"])
    r = c.getresponse()
    out = {"status": r.status, "headers": {k.lower(): v for k, v in r.getheaders()},
           "body": base64.b64encode(r.read()).decode()}
except (OSError, http.client.HTTPException) as e:
    out = {"error": "%s: %s" % (type(e).__name__, e)}
json.dump(out, sys.stdout)
"""


class StackError(RuntimeError):
    pass


class Stack:
    """One stack directory. Attributes: dir, config_path, state_dir, instances_dir, logs_dir,
    bin_dir, kit_dir; after up(): netns, port, host ("http://127.0.0.1:<port>")."""

    def __init__(self, dir, bin_dir, kit_dir, api_port=None, log_level=None):
        self.dir = Path(dir)
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

    def __repr__(self):
        return f"<Stack {self.dir}>"

    # ---- the tool ---------------------------------------------------------------------------

    def tool(self, *args, check=True, timeout=120, input=None):
        """Run deploy/husk-stack COMMAND --dir DIR ARGS... and return the CompletedProcess."""
        cmd = [PYTHON, str(TOOL), args[0], "--dir", str(self.dir), *map(str, args[1:])]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
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
        r = self.tool(*args, timeout=timeout + 30)
        rec = self.record()
        self.netns, self.port, self.host = rec["netns"], rec["api_port"], rec["api_host"]
        return r

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

    def exec(self, *cmd, input=None, timeout=60, check=False, env=None):
        """Run cmd inside the namespace (`husk-stack exec`); text in, text out."""
        full = [PYTHON, str(TOOL), "exec", "--dir", str(self.dir), "--", *map(str, cmd)]
        r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           env=None if env is None else {**os.environ, **env})
        if check and r.returncode != 0:
            raise StackError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def husk(self, *args, input=None, timeout=60, check=False):
        """Run the CLI (BIN/husk ARGS...) against this stack; returns the CompletedProcess."""
        return self.exec(self.bin_dir / "husk", *args, input=input, timeout=timeout, check=check)

    def api(self, method, path, json=None, data=None, headers=None, timeout=10.0):
        """One HTTP request to the apiserver. json: a body to send as application/json; data:
        raw str/bytes. Returns ApiResponse(status, headers, body) for every HTTP status;
        raises ConnectionError when no HTTP answer came (refused, reset, timed out)."""
        headers = dict(headers or {})
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        q = {"method": method.upper(), "path": path, "port": self.port, "timeout": timeout,
             "headers": headers, "body": None if body is None else base64.b64encode(body).decode()}
        r = self.exec(PYTHON, "-c", _HTTP_CLIENT, input=jsonlib.dumps(q), timeout=timeout + 30)
        try:
            out = jsonlib.loads(r.stdout)
        except ValueError:
            raise StackError(f"HTTP helper failed ({r.returncode}): {r.stdout}{r.stderr}") from None
        if "error" in out:
            raise ConnectionError(f"{method.upper()} {path}: {out['error']}")
        return ApiResponse(out["status"], out["headers"], base64.b64decode(out["body"]))

    def wait_for(self, predicate, timeout=30.0, interval=0.1, what=None):
        return wait_for(predicate, timeout=timeout, interval=interval, what=what)

    def processes(self):
        """Pids of every process in the stack's namespace."""
        return stack_tool.netns_pids(self.netns)

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


def print_log_tails(stack, lines=40, file=sys.stdout):
    for name in DAEMONS:
        print(f"--- {stack.logs_dir / (name + '.log')} (last {lines} lines) ---", file=file)
        print(stack.log_tail(name, lines) or "(empty)", file=file)
