"""test_volumes.py: volumes over virtio-fs through the whole stack (husk apply, real VMs in kit mode
under TCG): a bind volume the guest writes and the host reads, a read-only one whose write fails
in the guest, a named volume whose file survives delete and re-apply, /volumes and `husk volume`,
every virtiofsd reaped on delete, and each validation rule with its 422."""

import json
import os

from test_kit_mode import inspect, rootfs, wait_ready


def apply(stack, name, image, volumes, command, replicas=1):
    text = "\n".join([
        "deployments:", f"  {name}:", f"    name: {name}", f"    image: {image}", f"    replicas: {replicas}",
        "    resources: {limits: {cpu: \"1\", memory: 128Mi}}", f"    command: {json.dumps(command)}",
        f"    volumes: {json.dumps(volumes)}"]) + "\n"
    r = stack.husk("apply", "-f", "-", input=text)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def sh(stack, name, script):
    return stack.husk("deployment", "exec", name, "--", "/bin/sh", "-c", script)


def delete_and_wait(stack, name):
    r = stack.husk("deployment", "delete", name)
    assert r.returncode == 0, r.stdout + r.stderr
    stack.wait_for(lambda: inspect(stack, name) is None and not stack.qemu_pids(), timeout=60,
                   what=f"{name} gone")


def test_bind_volumes_rw_and_ro(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given").write_text("from the host\n")
    apply(stack, "binds", root, [
        {"type": "bind", "source": str(rw), "destination": "/data", "permission": "rw"},
        {"type": "bind", "source": str(ro), "destination": "/srv/ro", "permission": "ro"},
    ], ["/bin/sh", "-c", "echo written by the workload > /data/from-workload; exec sleep 100000"])
    d = wait_ready(stack, "binds")
    assert [v["destination"] for v in d["spec"]["volumes"]] == ["/data", "/srv/ro"], d["spec"]
    text = stack.husk("deployment", "inspect", "binds").stdout
    assert f"Volumes:     bind {rw} -> /data (rw)\n             bind {ro} -> /srv/ro (ro)\n" in text, text
    # One virtiofsd for the image, one per volume.
    assert len(stack.virtiofsd_pids()) == 3

    # The shell creates the file before echo writes into it: wait for its content.
    stack.wait_for(lambda: (rw / "from-workload").exists() and (rw / "from-workload").read_text(), timeout=30,
                   what="the workload's file on the host")
    assert (rw / "from-workload").read_text() == "written by the workload\n"
    r = sh(stack, "binds", "echo written by exec > /data/from-exec && cat /srv/ro/given")
    assert r.returncode == 0 and r.stdout == "from the host\n", r.stdout + r.stderr
    assert (rw / "from-exec").read_text() == "written by exec\n"

    r = sh(stack, "binds", "echo x > /srv/ro/new")
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stdout + r.stderr
    assert sorted(os.listdir(ro)) == ["given"]

    delete_and_wait(stack, "binds")
    stack.wait_for(lambda: not stack.virtiofsd_pids(), timeout=30, what="every virtiofsd reaped")
    assert (rw / "from-exec").exists()  # the host directory is the user's


def test_named_volume_survives_delete_and_reapply(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    volumes = [{"type": "volume", "source": "app-data", "destination": "/var/lib/app"}]
    command = ["/bin/sh", "-c", "echo run >> /var/lib/app/runs; exec sleep 100000"]
    apply(stack, "keeper", root, volumes, command)
    d = wait_ready(stack, "keeper")
    assert d["spec"]["volumes"][0]["permission"] == "rw"  # the default, written out
    path = stack.state_dir / "volumes" / "default" / "app-data"
    stack.wait_for(lambda: (path / "runs").exists(), timeout=30, what="the first run's line")

    # In use: listed with its deployment, and not deletable.
    r = stack.api("GET", "/volumes")
    assert r.status == 200 and [(v["name"], v["used_by"]) for v in r.json()] == [("app-data", ["keeper"])], r
    r = stack.husk("volume", "delete", "app-data")
    assert r.returncode != 0 and "keeper" in r.stderr and "in use" in r.stderr.lower() + r.stdout.lower(), r
    r = stack.api("DELETE", "/volumes/app-data")
    assert r.status == 409 and "keeper" in r.json()["detail"], r

    delete_and_wait(stack, "keeper")
    stack.wait_for(lambda: not stack.virtiofsd_pids(), timeout=30, what="every virtiofsd reaped")
    assert (path / "runs").read_text() == "run\n"

    apply(stack, "keeper", root, volumes, command)
    wait_ready(stack, "keeper")
    stack.wait_for(lambda: (path / "runs").read_text() == "run\nrun\n", timeout=30, what="the second run's line")
    r = sh(stack, "keeper", "cat /var/lib/app/runs")
    assert r.stdout == "run\nrun\n", r.stdout + r.stderr

    r = stack.husk("volume", "list")
    assert r.returncode == 0 and "app-data" in r.stdout and "keeper" in r.stdout, r.stdout + r.stderr
    r = stack.husk("volume", "inspect", "app-data", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["used_by"] == ["keeper"], r.stdout + r.stderr

    delete_and_wait(stack, "keeper")
    r = stack.husk("volume", "delete", "app-data")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not path.exists()
    assert stack.api("GET", "/volumes/app-data").status == 404


def test_volumes_api_create_and_namespaces(stack):
    r = stack.api("POST", "/volumes", json={"name": "scratch"})
    assert r.status == 201 and r.json()["namespace"] == "default", r
    assert stack.api("POST", "/volumes", json={"name": "scratch"}).status == 409
    assert stack.api("POST", "/volumes", json={"name": "Bad_Name"}).status == 422
    assert stack.api("GET", "/volumes/scratch?namespace=other").status == 404
    assert stack.api("DELETE", "/volumes/scratch").status == 204
    assert stack.api("GET", "/volumes").json() == []
    assert stack.api("GET", "/volumes", auth=False).status == 401


def violations(stack, volumes, replicas=1, tmp=None):
    body = {"name": "bad", "image": str(stack.kit_dir / "rootfs/hello"), "replicas": replicas,
            "volumes": volumes}
    r = stack.api("POST", "/deployments", json=body)
    assert r.status == 422, r
    return {v["field"]: v["reason"] for v in r.json()["violations"]}


def test_volume_validation(stack, tmp_path):
    cases = [
        ([{"type": "bind", "source": "relative/dir", "destination": "/d"}], 1,
         "volumes[0].source", "is not an absolute path"),
        ([{"type": "bind", "destination": "/d"}], 1, "volumes[0].source", "is required"),
        ([{"type": "bind", "source": str(tmp_path / "absent"), "destination": "/d"}], 1,
         "volumes[0].source", "does not exist on the host"),
        ([{"type": "bind", "source": str(tmp_path), "destination": "d"}], 1,
         "volumes[0].destination", "must be an absolute path other than /"),
        ([{"type": "bind", "source": str(tmp_path), "destination": "/"}], 1,
         "volumes[0].destination", "must be an absolute path other than /"),
        ([{"type": "bind", "source": str(tmp_path), "destination": "/d"},
          {"type": "volume", "source": "v", "destination": "/d"}], 1,
         "volumes[1].destination", "is the destination of volumes[0] too"),
        ([{"type": "nfs", "source": "srv:/x", "destination": "/d"}], 1, "volumes[0].type", "is not a volume type"),
        ([{"type": "bind", "source": str(tmp_path), "destination": "/d", "permission": "rwx"}], 1,
         "volumes[0].permission", "is not a permission: use ro or rw"),
        ([{"type": "volume", "source": "shared", "destination": "/d"}], 2,
         "volumes[0].permission", "a read-write named volume cannot be used with replicas > 1"),
    ]
    for volumes, replicas, field, words in cases:
        got = violations(stack, volumes, replicas)
        assert field in got and words in got[field], (volumes, got)
    # Read-only, the same named volume serves several replicas.
    r = stack.api("POST", "/deployments?dryRun=All", json={
        "name": "many", "image": str(stack.kit_dir / "rootfs/hello"), "replicas": 2,
        "volumes": [{"type": "volume", "source": "shared", "destination": "/d", "permission": "ro"}]})
    assert r.status == 200, r


# Bind volumes in disk mode (cloud-init mounts the tags): test_disk_mode.py's firmware boot, where
# one boot serves them with the environment, a secret and ports.


def test_config_and_secret_volumes_carry_their_files(stack, tmp_path):
    """type: config and type: secret through the whole stack: the files come from the store by
    deployment.resolve, reach the guest with their exact bytes and modes (a config's 0444, a
    secret's 0400), read-only; the secret's value is in no file of the stack, and a config changed
    later reaches the next start, not the running instance."""
    root = rootfs(stack, tmp_path)
    secret_value = "s3cr3t-token \"quoted\" $HOME\n"
    # Named before they exist: refused at apply, naming each volume's source; nothing stored.
    r = stack.api("POST", "/deployments", json={
        "name": "files", "image": str(root), "replicas": 0, "volumes": [
            {"type": "config", "source": "app", "destination": "/etc/app"},
            {"type": "secret", "source": "api-token", "destination": "/run/secrets"}]})
    assert r.status == 422, r
    assert [(v["field"], v["reason"]) for v in r.json()["violations"]] == [
        ("volumes[0].source", 'config "app" does not exist in namespace "default": create it first (husk config create)'),
        ("volumes[1].source", 'secret "api-token" does not exist in namespace "default": create it first '
                              "(husk secret create)")], r.json()
    assert inspect(stack, "files") is None
    r = stack.husk("config", "create", "app", "--from-literal", "app.conf=listen 8080\nname \"husk\"",
                   "--from-literal", "level=debug")
    assert r.returncode == 0, r.stdout + r.stderr
    r = stack.husk("secret", "create", "api-token", "--from-file", "-", input=secret_value)
    assert r.returncode == 0, r.stdout + r.stderr
    apply(stack, "files", root, [
        {"type": "config", "source": "app", "destination": "/etc/app"},
        {"type": "config", "source": "app", "key": "level", "destination": "/etc/level"},
        {"type": "secret", "source": "api-token", "destination": "/run/secrets"},
    ], ["/bin/sh", "-c", "exec sleep 100000"])
    wait_ready(stack, "files")

    r = sh(stack, "files", "cat /etc/app/app.conf; echo; cat /etc/app/level; echo; cat /etc/level; echo;"
                           " stat -c '%a %n' /etc/app/app.conf /etc/app/level /run/secrets/api-token;"
                           " echo x > /etc/app/new 2>/dev/null || echo read-only")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["listen 8080", 'name "husk"', "debug", "debug"], r.stdout
    assert lines[4:7] == ["444 /etc/app/app.conf", "444 /etc/app/level", "400 /run/secrets/api-token"], r.stdout
    assert lines[7] == "read-only", r.stdout
    r = stack.husk("deployment", "exec", "files", "--", "cat", "/run/secrets/api-token")
    assert r.returncode == 0 and r.stdout == secret_value, (r.stdout, r.stderr)

    # The secret's bytes are in no file of the stack (database, logs, instance.json, console)
    # but the VM's own tmpfs of volume files, which goes with the VM.
    needle = b"s3cr3t-token"
    for dirpath, _, names in os.walk(stack.dir):
        if "/volume-files/" in dirpath + "/":
            continue
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path) or path.endswith(".sock"):
                continue
            with open(path, "rb") as f:
                assert needle not in f.read(), path

    # A changed config: the running instance keeps what it started with; an event says so.
    r = stack.husk("config", "create", "app", "--from-literal", "app.conf=listen 9090", "--from-literal", "level=info")
    assert r.returncode == 0, r.stdout + r.stderr
    stack.wait_for(lambda: "ConfigChanged" in stack.husk("deployment", "events", "files").stdout, timeout=30,
                   what="a ConfigChanged event")
    r = sh(stack, "files", "cat /etc/app/level")
    assert r.returncode == 0 and r.stdout == "debug", (r.stdout, r.stderr)
    delete_and_wait(stack, "files")
    assert not stack.virtiofsd_pids()
