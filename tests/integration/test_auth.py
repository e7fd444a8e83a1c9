"""test_auth.py: the API is closed by default (issue 14): login, logout and revocation over
REST and the CLI, and the local unix socket where the kernel tells who connects (root is
admin, members of apiserver.socket_group operators, anyone else refused)."""

import http.client
import json
import os
import signal
import socket
import subprocess

from husk_stack import PYTHON, wait_for

NOBODY = 65534  # uid and gid of nobody/nogroup on Debian


def test_api_is_closed_and_logout_revokes(stack):
    r = stack.api("GET", "/deployments", auth=False)
    assert r.status == 401, r
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:husk:problem:unauthorized"
    assert stack.api("GET", "/healthz", auth=False).status == 200

    r = stack.api("POST", "/login", json={"username": "admin", "password": "not-the-password"}, auth=False)
    assert r.status == 401 and r.headers["content-type"] == "application/problem+json", r
    r = stack.api("POST", "/login", json={"username": "admin", "password": stack.admin_password()}, auth=False)
    assert r.status == 200, r
    token = r.json()["token"]
    mine = {"Authorization": f"Bearer {token}"}
    r = stack.api("GET", "/users/me", headers=mine)
    assert r.status == 200 and r.json()["username"] == "admin" and r.json()["role"] == "admin", r
    assert stack.api("GET", "/deployments", headers=mine).status == 200

    assert stack.api("POST", "/logout", headers=mine).status == 204
    r = stack.api("GET", "/deployments", headers=mine)
    assert r.status == 401, r
    # The harness's own session is another one: still good.
    assert stack.api("GET", "/deployments").status == 200
    # The password never reaches the log; the file's path does.
    log = stack.log("apiserver")
    assert stack.admin_password() not in log
    assert str(stack.state_dir / "admin-password") in log
    assert (stack.state_dir / "admin-password").stat().st_mode & 0o777 == 0o600


def test_cli_exit_code_2_on_a_bad_credential(stack):
    r = stack.husk("deployment", "list")
    assert r.returncode == 0, r.stderr
    r = stack.exec(stack.bin_dir / "husk", "deployment", "list",
                   env={"HUSK_TOKEN": "husk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Unauthorized (401)" in r.stderr and "not valid" in r.stderr, r.stderr


def test_cli_as_root_uses_the_local_socket(stack):
    sock = stack.dir / "run" / "api.sock"
    assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o660
    # No token at all: over the socket, root is admin.
    r = stack.exec(stack.bin_dir / "husk", "deployment", "list", env={"HUSK_TOKEN": ""})
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = stack.exec(stack.bin_dir / "husk", "apply", "-f", "-", env={"HUSK_TOKEN": ""},
                   input=json.dumps({"deployments": {"idle": {"image": "/srv/none", "replicas": 0}}}))
    assert r.returncode == 0, (r.stdout, r.stderr)
    # As `husk-stack exec` runs it, with nothing but the stack's config.
    r = stack.exec("husk", "deployment", "list", "-o", "json", tool=True)
    assert r.returncode == 0 and [d["name"] for d in json.loads(r.stdout)] == ["idle"], (r.stdout, r.stderr)


def _get_over_socket(path, target="/users/me"):
    """GET target over the unix socket at path, as this process: (status, JSON body)."""
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(path))

    c = Conn("local", timeout=10)
    try:
        c.request("GET", target)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


# Runs as another user: prints "<status> <role or title>", or "refused <errno name>".
AS_OTHER = r"""
import http.client, json, socket, sys, errno
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(sys.argv[1])
try:
    c = Conn("local", timeout=10)
    c.request("GET", "/users/me")
    r = c.getresponse()
    body = json.loads(r.read())
    print(r.status, body.get("role") or body.get("title"))
except OSError as e:
    print("refused", errno.errorcode.get(e.errno, e.errno))
"""


def _as_other(path, gid):
    r = subprocess.run([PYTHON, "-c", AS_OTHER, str(path)], capture_output=True, text=True, timeout=30,
                       user=NOBODY, group=gid, extra_groups=[])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_local_socket_peer_credentials(stack):
    sock = stack.dir / "run" / "api.sock"
    # Let others reach the socket's directory at all (mkdtemp made the stack dir 0700).
    os.chmod(stack.dir, 0o711)
    os.chmod(stack.dir / "run", 0o711)

    status, me = _get_over_socket(sock)
    assert status == 200 and me["role"] == "admin" and me["via"] == "local" and me["username"] == "uid:0", me

    # No socket_group: the file is root's group; another uid in that group connects but is refused.
    assert _as_other(sock, 0) == "403 Forbidden"
    assert _as_other(sock, NOBODY) == "refused EACCES"

    # With a socket_group, its members are operators; others cannot even connect.
    text = stack.config_path.read_text()
    assert "\napiserver:\n" in text
    stack.config_path.write_text(text.replace("\napiserver:\n", "\napiserver:\n  socket_group: nogroup\n"))
    stack.restart_daemon("apiserver")
    wait_for(lambda: sock.exists(), timeout=10, what="the socket after the restart")
    assert sock.stat().st_gid == NOBODY and sock.stat().st_mode & 0o777 == 0o660
    assert _as_other(sock, NOBODY) == "200 operator"
    assert _as_other(sock, 0) == "refused EACCES"
    status, me = _get_over_socket(sock)
    assert status == 200 and me["role"] == "admin", me


def test_cli_login_context_logout(stack, tmp_path):
    conf = tmp_path / "cli.json"
    env = {"HUSK_TOKEN": "", "HUSK_CLI_CONFIG": str(conf)}
    husk = stack.bin_dir / "husk"

    r = stack.exec(husk, "login", "--password-stdin", input="wrong-password\n", env=env)
    assert r.returncode == 2 and "Unauthorized (401)" in r.stderr, (r.stdout, r.stderr)
    assert not conf.exists()

    r = stack.exec(husk, "login", "--username", "admin", "--password-stdin", input=stack.admin_password() + "\n",
                   env=env)
    assert r.returncode == 0 and "as admin (admin); context default" in r.stdout, (r.stdout, r.stderr)
    assert conf.stat().st_mode & 0o777 == 0o600
    saved = json.loads(conf.read_text())
    assert saved["current"] == "default" and saved["contexts"]["default"]["host"] == stack.host, saved
    token = saved["contexts"]["default"]["token"]
    assert stack.api("GET", "/users/me", headers={"Authorization": f"Bearer {token}"}).status == 200

    r = stack.exec(husk, "context", "list", env=env)
    assert r.returncode == 0 and r.stdout.splitlines()[1].split() == ["*", "default", stack.host, "admin"], r.stdout
    assert stack.exec(husk, "context", "use", "nope", env=env).returncode == 4
    r = stack.exec(husk, "--context", "nope", "deployment", "list", env=env)
    assert r.returncode == 2 and "no context 'nope'" in r.stderr, r.stderr
    assert stack.exec(husk, "deployment", "list", env=env).returncode == 0

    # Logout ends the session on the server, not only in the file.
    r = stack.exec(husk, "logout", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "token" not in json.loads(conf.read_text())["contexts"]["default"]
    assert stack.api("GET", "/users/me", headers={"Authorization": f"Bearer {token}"}).status == 401
    r = stack.exec(husk, "logout", env=env)
    assert r.returncode == 2 and "not logged in" in r.stderr, r.stderr


def test_users_roles_and_the_last_admin(stack):
    husk = stack.bin_dir / "husk"
    r = stack.exec(husk, "user", "create", "vera", "--role", "viewer", "--password-stdin", input="veras-secret\n")
    assert r.returncode == 0 and "User vera: viewer (created)" in r.stdout, (r.stdout, r.stderr)
    r = stack.api("POST", "/login", json={"username": "vera", "password": "veras-secret"}, auth=False)
    assert r.status == 200, r
    vera = r.json()["token"]

    # A viewer reads, and is told why it may not write (exit 2, the problem's message).
    r = stack.exec(husk, "deployment", "list", env={"HUSK_TOKEN": vera})
    assert r.returncode == 0, r.stderr
    r = stack.exec(husk, "apply", "-f", "-", env={"HUSK_TOKEN": vera},
                   input=json.dumps({"deployments": {"web": {"image": "/srv/none", "replicas": 0}}}))
    assert r.returncode == 2 and "Forbidden (403)" in r.stderr and "deployments:write" in r.stderr, r.stderr
    r = stack.exec(husk, "user", "create", "eve", "--role", "admin", "--password-stdin", input="eves-secret\n",
                   env={"HUSK_TOKEN": vera})
    assert r.returncode == 2 and "for admins" in r.stderr, r.stderr

    # A role change ends her session at once.
    r = stack.exec(husk, "user", "set", "vera", "--role", "operator")
    assert r.returncode == 0 and "vera: operator" in r.stdout, (r.stdout, r.stderr)
    assert stack.api("GET", "/users/me", headers={"Authorization": f"Bearer {vera}"}).status == 401
    r = stack.exec(husk, "user", "list", "-o", "json")
    assert {u["username"]: u["role"] for u in json.loads(r.stdout)} == {"admin": "admin", "vera": "operator"}

    # The last admin can be neither demoted nor deleted (409: exit 5).
    r = stack.exec(husk, "user", "set", "admin", "--role", "viewer")
    assert r.returncode == 5 and "last admin" in r.stderr, r.stderr
    r = stack.exec(husk, "user", "delete", "admin")
    assert r.returncode == 5, r.stderr
    assert stack.api("GET", "/users/me").json()["role"] == "admin"
    r = stack.exec(husk, "user", "delete", "vera")
    assert r.returncode == 0, r.stderr
    assert stack.exec(husk, "user", "delete", "vera").returncode == 4


def test_cli_tokens_bound_to_a_namespace(stack):
    husk = stack.bin_dir / "husk"
    manifest = {"deployments": {"web": {"image": "/srv/none", "replicas": 0},
                                "api": {"namespace": "prod", "image": "/srv/none", "replicas": 0}}}
    assert stack.husk("apply", "-f", "-", input=json.dumps(manifest)).returncode == 0

    r = stack.exec(husk, "token", "create", "ci", "--scope", "deployments:read", "--namespace", "prod",
                   "--expires-in", "30d")
    assert r.returncode == 0 and "shown only now" in r.stderr, (r.stdout, r.stderr)
    token = r.stdout.strip()
    r = stack.exec(husk, "deployment", "list", "-o", "json", env={"HUSK_TOKEN": token})
    assert r.returncode == 0 and [d["name"] for d in json.loads(r.stdout)] == ["api"], (r.stdout, r.stderr)
    r = stack.exec(husk, "deployment", "inspect", "web", "-n", "default", env={"HUSK_TOKEN": token})
    assert r.returncode == 4, (r.stdout, r.stderr)
    r = stack.exec(husk, "deployment", "delete", "api", "-n", "prod", env={"HUSK_TOKEN": token})
    assert r.returncode == 2 and "deployments:write" in r.stderr, r.stderr

    listed = json.loads(stack.exec(husk, "token", "list", "-o", "json").stdout)
    assert [(t["name"], t["scopes"], t["namespaces"]) for t in listed] == [("ci", ["deployments:read"], ["prod"])]
    assert "token" not in listed[0] and listed[0]["expires_at"]
    r = stack.exec(husk, "token", "rotate", listed[0]["id"])
    assert r.returncode == 0, r.stderr
    fresh = r.stdout.strip()
    assert stack.exec(husk, "deployment", "list", env={"HUSK_TOKEN": token}).returncode == 2
    assert stack.exec(husk, "deployment", "list", env={"HUSK_TOKEN": fresh}).returncode == 0
    assert stack.exec(husk, "token", "delete", listed[0]["id"]).returncode == 0
    assert stack.exec(husk, "deployment", "list", env={"HUSK_TOKEN": fresh}).returncode == 2
    assert stack.exec(husk, "token", "delete", listed[0]["id"]).returncode == 4


def test_namespace_audit_from_the_cli(stack):
    husk = stack.bin_dir / "husk"
    manifest = {"deployments": {"api": {"namespace": "prod", "image": "/srv/none", "replicas": 0}}}
    assert stack.husk("apply", "-f", "-", input=json.dumps(manifest)).returncode == 0
    assert stack.husk("deployment", "delete", "api", "-n", "prod").returncode == 0
    r = stack.exec(husk, "namespace", "audit", "prod", "-o", "json")
    assert r.returncode == 0, r.stderr
    actions = [(e["actor"], e["action"], e["status"]) for e in json.loads(r.stdout)]
    # apply checks (dryRun) before it applies: both are asked for, both are recorded.
    assert actions == [("admin", "POST /deployments", 200), ("admin", "POST /deployments", 201),
                       ("admin", "DELETE /deployments/{id}", 204)], actions
    r = stack.exec(husk, "namespace", "audit", "prod")
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:4] == ["TIME", "ACTOR", "VIA", "ACTION"], r.stdout


def _self_signed(tmp_path, name="127.0.0.1"):
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=IP:{name}"],
                   check=True, capture_output=True)
    return key, cert


def _serve_tls(stack, key, cert):
    text = stack.config_path.read_text()
    assert "\napiserver:\n" in text
    stack.config_path.write_text(text.replace("\napiserver:\n", f"\napiserver:\n  tls: {{cert: {json.dumps(str(cert))}, "
                                                                f"key: {json.dumps(str(key))}}}\n"))
    stack.kill_daemon("apiserver", signal.SIGTERM)
    return stack.tool("start", "--timeout", 15, "apiserver", check=False, timeout=60)


def test_tls_serves_https_and_the_cli_verifies_it(stack, tmp_path):
    """apiserver.tls: HTTPS on apiserver.listen, terminated by apiserver itself (Debian's
    civetweb 1.15 crashes on TLS with OpenSSL 3, apiserver_tls.c); the CLI verifies the server
    against --ca-file and never skips the check; plain HTTP to the port is told what to use."""
    key, cert = _self_signed(tmp_path)
    r = _serve_tls(stack, key, cert)
    assert r.returncode == 0, (r.stdout, r.stderr, stack.log_tail("apiserver"))
    url = f"https://127.0.0.1:{stack.port}"
    assert f"REST API listening on {url}" in stack.log("apiserver")

    conf = tmp_path / "cli.json"
    # The stack's own HUSK_HOST (plain http) would override the context login makes.
    env = {"HUSK_TOKEN": "", "HUSK_HOST": "", "HUSK_CLI_CONFIG": str(conf)}
    husk = stack.bin_dir / "husk"
    # A client that does not hold our certificate's issuer refuses the server.
    r = stack.exec(husk, "--host", url, "login", "--password-stdin", input=stack.admin_password() + "\n", env=env)
    assert r.returncode == 3 and "certificate" in r.stderr.lower(), (r.stdout, r.stderr)
    assert not conf.exists()
    # With --ca-file: login, then every request of the context goes over TLS.
    r = stack.exec(husk, "--host", url, "--ca-file", cert, "login", "--password-stdin",
                   input=stack.admin_password() + "\n", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = stack.exec(husk, "namespace", "create", "tls-made", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = stack.exec(husk, "namespace", "list", env=env)
    assert r.returncode == 0 and "tls-made" in r.stdout, (r.stdout, r.stderr)
    # The audit log names the TLS client's address, not the relay's internal hop.
    r = stack.exec(husk, "namespace", "audit", "tls-made", "-o", "json", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    created = [e for e in json.loads(r.stdout) if e["action"] == "POST /namespaces"]
    assert created and created[0]["source"] == "127.0.0.1" and created[0]["actor"] == "admin", r.stdout

    # A connection that never speaks holds no one up; plain HTTP gets a plain answer.
    idle = stack.exec(PYTHON, "-c", IDLE_THEN_PLAIN_HTTP, str(stack.port), timeout=60)
    assert idle.returncode == 0, (idle.stdout, idle.stderr)
    assert idle.stdout.startswith("HTTP/1.1 400") and "this port serves HTTPS" in idle.stdout, idle.stdout
    r = stack.exec("curl", "-sS", "--cacert", cert, f"{url}/healthz")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "ok", (r.stdout, r.stderr)

    # The local socket still works beside TLS (root needs no password there).
    r = stack.exec(husk, "deployment", "list", env={"HUSK_TOKEN": "", "HUSK_HOST": ""})
    assert r.returncode == 0, (r.stdout, r.stderr)


IDLE_THEN_PLAIN_HTTP = """
import socket, sys
port = int(sys.argv[1])
idle = socket.create_connection(("127.0.0.1", port))      # says nothing at all
plain = socket.create_connection(("127.0.0.1", port), timeout=20)
plain.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
data = b""
while True:
    chunk = plain.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode())
"""


def test_tls_with_a_key_that_is_not_the_certificates_is_refused(stack, tmp_path):
    key, _ = _self_signed(tmp_path, "127.0.0.1")
    _, other_cert = _self_signed(tmp_path, "127.0.0.2")
    r = _serve_tls(stack, key, other_cert)
    assert r.returncode != 0
    log = stack.log("apiserver")
    assert f"apiserver.tls.key: cannot use {key} with the certificate in {other_cert}" in log, log
    assert "key values mismatch" in log, log
    assert stack.daemon_pid("apiserver") is None


def test_cli_namespaces(stack):
    husk = stack.bin_dir / "husk"
    assert stack.exec(husk, "namespace", "create", "team-a").returncode == 0
    assert stack.exec(husk, "namespace", "create", "team-a").returncode == 5
    manifest = {"deployments": {"web": {"namespace": "team-a", "image": "/srv/none", "replicas": 0}}}
    assert stack.husk("apply", "-f", "-", input=json.dumps(manifest)).returncode == 0
    r = stack.exec(husk, "namespace", "list")
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert ["team-a", "1"] in rows and ["default", "0"] in rows, r.stdout
    r = stack.exec(husk, "namespace", "delete", "team-a")
    assert r.returncode == 5 and "cascade" in r.stderr, r.stderr
    r = stack.exec(husk, "namespace", "delete", "team-a", "--cascade")
    assert r.returncode == 0, r.stderr
    assert stack.exec(husk, "namespace", "delete", "team-a").returncode == 4


def test_apply_creates_the_namespaces_block_first(stack):
    """namespaces: in a manifest: created before the deployments that go into them, left alone
    when they exist; a caller who may not create namespaces applies nothing."""
    husk = stack.bin_dir / "husk"
    manifest = {"namespaces": {"shop": {"name": "shop"}, "tools": None},
                "deployments": {"web": {"namespace": "shop", "image": "/srv/none", "replicas": 0}}}
    r = stack.husk("apply", "-f", "-", input=json.dumps(manifest))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.splitlines()[:2] == ["namespace shop created", "namespace tools created"], r.stdout
    assert "deployment web created" in r.stdout, r.stdout
    rows = [line.split()[:2] for line in stack.exec(husk, "namespace", "list").stdout.splitlines()[1:]]
    assert ["shop", "1"] in rows and ["tools", "0"] in rows, rows

    r = stack.husk("apply", "-f", "-", input=json.dumps(manifest))
    assert r.returncode == 0 and r.stdout.splitlines()[:2] == ["namespace shop unchanged", "namespace tools unchanged"]

    # A token that may write deployments but not create namespaces: refused before any deployment.
    r = stack.exec(husk, "token", "create", "deployer", "--scope", "deployments:write", "--scope", "deployments:read")
    assert r.returncode == 0, r.stderr
    other = {"namespaces": ["lab"], "deployments": {"db": {"namespace": "shop", "image": "/srv/none", "replicas": 0}}}
    r = stack.exec(husk, "apply", "-f", "-", input=json.dumps(other), env={"HUSK_TOKEN": r.stdout.strip()})
    assert r.returncode == 2 and "namespace lab" in r.stderr and "No deployment was applied" in r.stderr, r.stderr
    names = [d["name"] for d in stack.api("GET", "/deployments").json()]
    assert names == ["web"], names
