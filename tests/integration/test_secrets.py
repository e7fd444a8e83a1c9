"""test_secrets.py: configs and secrets (issue 13): the REST API and its errors, the CLI and
husk apply's configs:, secrets encrypted at rest, and a secret reaching a kit-mode guest's
environment (the workload's and exec's) through deployment.resolve without ever showing up in
the database, a log, an event, instance.list or instance.json. A secret that does not exist
fails the deployment (SecretResolutionError) and starts nothing."""

import hashlib
import json
import shutil
import signal

from husk_stack import files_holding

SECRET = "s3cr3t-Vq9xZ-never-in-plain"  # unique enough that a match anywhere is a leak
# What the guest compares with: the command line is stored and logged, so it holds only a hash.
SECRET_SHA = hashlib.sha256(SECRET.encode()).hexdigest()
CHECK = 'test "$(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1)" = ' + SECRET_SHA


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def events(stack, name):
    r = stack.husk("deployment", "events", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []


def violations(r):
    return [v["field"] for v in r.json().get("violations", [])]


def test_secrets_api_errors_and_no_value_anywhere(stack):
    r = stack.api("POST", "/secrets", json={"name": "db-password", "value": SECRET})
    assert r.status == 201, r
    body = r.json()
    assert body["name"] == "db-password" and body["namespace"] == "default" and "value" not in body, body
    assert SECRET not in r.text
    sid = body["id"]

    # Metadata only, by id or by name.
    for path in (f"/secrets/{sid}", "/secrets/db-password", "/secrets/db-password?namespace=default"):
        r = stack.api("GET", path)
        assert r.status == 200 and r.json()["id"] == sid and SECRET not in r.text, (path, r)
    r = stack.api("GET", "/secrets")
    assert r.status == 200 and [s["name"] for s in r.json()] == ["db-password"] and SECRET not in r.text, r

    # Errors name the field, the name, the namespace.
    r = stack.api("POST", "/secrets", json={"name": "db-password", "value": "other"})
    assert r.status == 409 and "db-password" in r.json()["detail"], r
    r = stack.api("POST", "/secrets", json={"name": "Bad_Name", "value": 7})
    assert r.status == 422 and violations(r) == ["name", "value"], r
    r = stack.api("POST", "/secrets", json={"name": "empty", "value": ""})
    assert r.status == 422 and violations(r) == ["value"], r
    r = stack.api("GET", "/secrets/db-password?namespace=prod")
    assert r.status == 404 and '"db-password"' in r.json()["detail"] and '"prod"' in r.json()["detail"], r
    r = stack.api("GET", "/secrets/x?namespace=Not_A_Label")
    assert r.status == 400 and violations(r) == ["namespace"], r

    # The audit log has the create, never the value.
    r = stack.api("GET", "/audit?limit=1000")
    assert r.status == 200, r
    creates = [e for e in r.json() if e["action"] == "POST /secrets" and e["status"] == 201]
    assert [(e["namespace"], e["target"]) for e in creates] == [("default", "default/db-password")], r.json()
    assert SECRET not in r.text

    # At rest: sealed. The key file is 0600.
    key = stack.state_dir / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_size == 32
    assert files_holding(stack.dir, SECRET) == []

    r = stack.api("DELETE", "/secrets/db-password")
    assert r.status == 204, r
    r = stack.api("DELETE", f"/secrets/{sid}")
    assert r.status == 404, r


def test_configs_api(stack):
    r = stack.api("POST", "/configs", json={"name": "web", "namespace": "prod", "data": {"a.conf": "x=1\n"}})
    assert r.status == 201, r
    c = r.json()
    assert (c["namespace"], c["name"], c["data"], c["version"]) == ("prod", "web", {"a.conf": "x=1\n"}, 1), c
    assert stack.api("GET", "/namespaces/prod").status == 200  # made on the way, as apply does

    r = stack.api("PUT", "/configs/web?namespace=prod", json={"data": {"a.conf": "x=1\n"}})
    assert r.status == 200 and r.json()["version"] == 1 and r.headers["husk-apply-result"] == "unchanged", r
    r = stack.api("PUT", f"/configs/{c['id']}", json={"data": {"a.conf": "x=2\n", "b": "y"}})
    assert r.status == 200 and r.json()["version"] == 2 and r.headers["husk-apply-result"] == "updated", r
    r = stack.api("GET", "/configs/web?namespace=prod")
    assert r.status == 200 and r.json()["data"] == {"a.conf": "x=2\n", "b": "y"}, r
    assert [x["name"] for x in stack.api("GET", "/configs?namespace=prod").json()] == ["web"]
    assert stack.api("GET", "/configs?namespace=default").json() == []

    r = stack.api("POST", "/configs", json={"name": "web", "namespace": "prod", "data": {}})
    assert r.status == 409, r
    r = stack.api("POST", "/configs", json={"name": "bad", "data": {"../x": "1", "n": 2}})
    assert r.status == 422 and sorted(violations(r)) == ["data.../x", "data.n"], r
    r = stack.api("PUT", "/configs/web?namespace=prod", json={"data": []})
    assert r.status == 422 and violations(r) == ["data"], r
    r = stack.api("GET", "/configs/web")
    assert r.status == 404 and '"web"' in r.json()["detail"], r
    assert stack.api("DELETE", "/configs/web?namespace=prod").status == 204
    assert stack.api("GET", f"/configs/{c['id']}").status == 404


def test_cli_round_trips_and_apply_configs(stack, tmp_path):
    value_file = tmp_path / "pw"
    value_file.write_text(SECRET)
    r = stack.husk("secret", "create", "from-file", "--from-file", str(value_file))
    assert r.returncode == 0 and "secret default/from-file created" in r.stdout, r.stderr
    r = stack.husk("secret", "create", "from-stdin", "-n", "team", "--from-file", "-", input=SECRET + "-2")
    assert r.returncode == 0, r.stderr
    r = stack.husk("secret", "create", "from-stdin", "-n", "team", "--from-file", "-", input="again")
    assert r.returncode != 0 and "exists already" in r.stderr, r.stderr
    r = stack.husk("secret", "list")
    assert r.returncode == 0 and "from-file" in r.stdout and "from-stdin" in r.stdout and SECRET not in r.stdout
    r = stack.husk("secret", "list", "-n", "team", "-o", "json")
    assert [s["name"] for s in json.loads(r.stdout)] == ["from-stdin"]
    r = stack.husk("secret", "delete", "from-stdin", "-n", "team")
    assert r.returncode == 0, r.stderr
    r = stack.husk("secret", "delete", "from-stdin", "-n", "team")
    assert r.returncode != 0 and "no secret" in r.stderr, r.stderr

    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes 1;\n")
    r = stack.husk("config", "create", "site", "--from-literal", "mode=fast", "--from-file", str(conf))
    assert r.returncode == 0 and "config default/site created" in r.stdout, r.stderr
    r = stack.husk("config", "inspect", "site")
    assert json.loads(r.stdout)["data"] == {"mode": "fast", "nginx.conf": "worker_processes 1;\n"}, r.stdout
    r = stack.husk("config", "create", "site", "--from-literal", "mode=slow")
    assert r.returncode == 0 and "config default/site updated (version 2)" in r.stdout, r.stdout + r.stderr
    r = stack.husk("config", "list")
    assert r.returncode == 0 and "site" in r.stdout, r.stdout

    # husk apply: configs: created, then updated (never skipped), files: read next to the manifest.
    (tmp_path / "app").mkdir()
    (tmp_path / "app/settings.ini").write_text("[a]\nb = 1\n")
    manifest = tmp_path / "app/husk.yaml"
    manifest.write_text("configs:\n  app-settings:\n    namespace: team\n    data: {LEVEL: info}\n"
                        "    files: {settings.ini: settings.ini}\n")
    r = stack.husk("apply", "-f", str(manifest))
    assert r.returncode == 0 and "config team/app-settings created" in r.stdout, r.stdout + r.stderr
    r = stack.husk("apply", "-f", str(manifest))
    assert r.returncode == 0 and "config team/app-settings unchanged" in r.stdout, r.stdout + r.stderr
    (tmp_path / "app/settings.ini").write_text("[a]\nb = 2\n")
    r = stack.husk("apply", "-f", str(manifest))
    assert r.returncode == 0 and "config team/app-settings updated (version 2)" in r.stdout, r.stdout + r.stderr
    r = stack.husk("config", "inspect", "app-settings", "-n", "team")
    assert json.loads(r.stdout)["data"] == {"LEVEL": "info", "settings.ini": "[a]\nb = 2\n"}, r.stdout
    # A files: entry that cannot be read applies nothing.
    manifest.write_text("configs:\n  other:\n    files: [missing.txt]\n")
    r = stack.husk("apply", "-f", str(manifest))
    assert r.returncode != 0 and "missing.txt" in r.stderr and "Nothing was applied" in r.stderr, r.stderr
    assert stack.api("GET", "/configs/other").status == 404

    r = stack.husk("config", "delete", "site")
    assert r.returncode == 0, r.stderr
    assert files_holding(stack.dir, SECRET) == []


def test_secret_environment_in_kit_mode(stack, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(stack.kit_dir / "rootfs/hello", root, symlinks=True)
    r = stack.husk("secret", "create", "db-password", "--from-file", "-", input=SECRET)
    assert r.returncode == 0, r.stderr
    # The workload proves it has the value without printing it (its output is logged).
    manifest = (
        "deployments:\n"
        "  app:\n"
        f"    image: {root}\n"
        "    resources: {limits: {cpu: \"1\", memory: 128Mi}}\n"
        "    command: [/bin/sh, -c, '" + CHECK.replace("$", "$$") + " && echo workload-has-the-secret;"
        " echo plain=$$PLAIN; exec sleep 100000']\n"
        "    environment: {DB_PASSWORD: {secretRef: db-password}, PLAIN: visible}\n")
    r = stack.husk("apply", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stdout + r.stderr

    def ready():
        d = inspect(stack, "app")
        return d if d and d["status"] == "running" and d["ready_replicas"] >= 1 else None
    d = stack.wait_for(ready, timeout=120, what="app running")
    iid = d["instances"][0]["instance_id"]
    console = stack.instances_dir / iid / "console.log"
    stack.wait_for(lambda: console.exists() and "workload-has-the-secret" in console.read_text(errors="replace"),
                   timeout=60, what="the workload's proof on the console")

    r = stack.husk("deployment", "exec", "app", "--", "/bin/sh", "-c", CHECK + " && echo exec-has-it")
    assert (r.returncode, r.stdout) == (0, "exec-has-it\n"), r.stdout + r.stderr

    # Nowhere else: the database, every daemon log, logd's logs, instance.json, the console,
    # the events, inspect and instance.list.
    assert files_holding(stack.dir, SECRET) == []
    assert files_holding(stack.dir, "DB_PASSWORD=") == []
    record = json.loads((stack.instances_dir / iid / "instance.json").read_text())
    assert record.get("secret_environment") is True and record["environment"] == ["PLAIN=visible"], record
    assert SECRET not in stack.husk("deployment", "inspect", "app", "-o", "json").stdout
    assert SECRET not in json.dumps(events(stack, "app"))
    listed = stack.request("vmm-driver", "instance.list", {})
    assert SECRET not in repr(listed) and all("secret_environment" not in i for i in listed), listed
    assert stack.api("DELETE", f"/deployments/{d['id']}").status in (200, 202, 204)


def test_missing_secret_refused_at_apply_and_fails_the_deployment_when_deleted(stack, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(stack.kit_dir / "rootfs/hello", root, symlinks=True)
    # Each instance runs 4 s and exits: every start after the first is a new resolution.
    manifest = (
        "deployments:\n"
        "  lost:\n"
        f"    image: {root}\n"
        "    command: [/bin/sh, -c, 'sleep 4; exit 1']\n"
        "    environment: {TOKEN: {secretRef: no-such-secret}}\n")
    r = stack.husk("apply", "-f", "-", input=manifest)
    assert r.returncode != 0 and "environment.TOKEN" in r.stderr and '"no-such-secret" does not exist' in r.stderr, \
        r.stdout + r.stderr
    assert inspect(stack, "lost") is None

    assert stack.husk("secret", "create", "no-such-secret", "--value", "for-a-while").returncode == 0
    r = stack.husk("apply", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stdout + r.stderr
    stack.wait_for(lambda: [e for e in events(stack, "lost") if e["reason"] == "InstanceStarted"] or None,
                   timeout=60, what="the first start")
    assert stack.husk("secret", "delete", "no-such-secret").returncode == 0
    started = len([e for e in events(stack, "lost") if e["reason"] == "InstanceStarted"])

    def failed():
        d = inspect(stack, "lost")
        return d if d and d["status"] == "failed" else None
    d = stack.wait_for(failed, timeout=120, what="lost failed")
    assert "no-such-secret" in d["status_message"] and "environment.TOKEN" in d["status_message"], d
    evs = [e for e in events(stack, "lost") if e["reason"] == "SecretResolutionError"]
    assert len(evs) == 1 and "no-such-secret" in evs[0]["message"], events(stack, "lost")
    # Never started without the value: no start after the secret went, and nothing runs now.
    assert len([e for e in events(stack, "lost") if e["reason"] == "InstanceStarted"]) == started
    stack.wait_for(lambda: stack.request("vmm-driver", "instance.list", {}) == [] or None, timeout=30,
                   what="no instance left")


def test_a_wrong_key_stops_apiserver_and_the_right_one_reads_the_secrets(stack):
    assert stack.api("POST", "/secrets", json={"name": "kept", "value": SECRET}).status == 201
    key = stack.state_dir / "secrets.key"
    good = key.read_bytes()
    stack.kill_daemon("apiserver", signal.SIGTERM)
    key.write_bytes(bytes(32))  # another key, same size and mode
    try:
        stack.start_daemon("apiserver", timeout=10)
        started = True
    except Exception:
        started = False
    assert not started and stack.daemon_pid("apiserver") is None
    assert "is not the one this database's secrets were sealed with" in stack.log("apiserver"), stack.log_tail(
        "apiserver")

    key.write_bytes(good)
    stack.start_daemon("apiserver")
    stack.login_admin()
    r = stack.api("GET", "/secrets/kept")
    assert r.status == 200 and SECRET not in r.text, r


# A secret through cloud-init in disk mode: test_disk_mode.py's firmware boot (one boot serves it
# with the environment, volumes and ports).
