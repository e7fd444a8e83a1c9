"""test_input_limits.py: hostile or careless input against the real apiserver: bodies nested deep,
a record too deep already in the store, options and fields that would be accepted and ignored,
and `husk apply` of a file whose second deployment is bad.

Every deployment here has replicas: 0, so no VM boots: what is tested is the API's edge."""

import json
import sqlite3

from husk_stack import wait_for

DEPTH_REASON = "nested deeper than 32 levels of lists and maps"


def nested(prefix, opener, closer, depth, suffix, leaf="1"):
    return prefix + opener * depth + leaf + closer * depth + suffix


def create(stack, name, **extra):
    r = stack.api("POST", "/deployments", json={"name": name, "image": "/srv/none", "replicas": 0, **extra})
    assert r.status == 201, r
    return r.json()["id"]


def assert_alive(stack, pid):
    assert stack.daemon_pid("apiserver") == pid, stack.log_tail("apiserver")
    r = stack.api("GET", "/deployments")
    assert r.status == 200, r
    return r.json()


def test_deep_bodies_are_refused_and_apiserver_lives(stack):
    pid = stack.daemon_pid("apiserver")
    dep = create(stack, "target")
    cases = [
        (nested('{"name":"x","image":"/i","labels":{"a":', "[", "]", 1000, "}}"), "labels.a[0][0]"),
        (nested('{"name":"x","image":"/i","config":', '{"a":', "}", 250, "}"), "config.a.a"),
        (nested('{"name":"x","image":"/i","labels":{"v":', '{"a":', "}", 250, "}}"), "labels.v.a"),
        # Stored before, and from then on every GET /deployments killed apiserver.
        (nested('{"name":"x","image":"/i","config":', '{"a":', "}", 241, "}"), "config.a.a"),
    ]
    for body, field in cases:
        r = stack.api("POST", "/deployments", data=body, headers={"Content-Type": "application/json"})
        assert r.status == 422, r
        assert r.headers["content-type"] == "application/problem+json"
        v = r.json()["violations"][0]
        assert v["field"].startswith(field) and v["reason"] == DEPTH_REASON, r
    r = stack.api("POST", f"/deployments/{dep}/exec", data=nested('{"command":["ls"],"env":', "[", "]", 1000, "}"))
    assert r.status == 400, r
    assert r.json()["violations"][0]["field"].startswith("env[0][0]"), r
    assert [d["name"] for d in assert_alive(stack, pid)] == ["target"]


def test_record_too_deep_in_the_store_does_not_kill_listing(stack):
    dep = create(stack, "deep")
    stack.kill_daemon("apiserver", __import__("signal").SIGTERM)
    # What apiserver stored for `config:` nested 241 deep before the bound existed.
    spec = nested('{"name":"deep","image":"/srv/none","replicas":0,"config":', '{"a":', "}", 241, "}")
    db = sqlite3.connect(stack.state_dir / "husk.db")
    with db:
        assert db.execute("UPDATE deployments SET spec = ? WHERE id = ?", (spec, dep)).rowcount == 1
    db.close()
    pid = stack.start_daemon("apiserver")

    listed = assert_alive(stack, pid)
    assert [d["id"] for d in listed] == [dep]
    assert listed[0]["spec"] is None and "cannot be read" in listed[0]["spec_error"], listed
    r = stack.api("GET", f"/deployments/{dep}")
    assert r.status == 200 and r.json()["spec"] is None, r
    assert "stored spec is not JSON nested at most 32 deep" in stack.log("apiserver")
    # The CLI shows it too, and a new apply replaces the record.
    assert stack.husk("deployment", "list", "-o", "json", check=True).returncode == 0
    r = stack.api("POST", "/deployments", json={"name": "deep", "image": "/srv/none", "replicas": 0})
    assert r.status == 200 and r.json()["spec"]["name"] == "deep", r
    assert_alive(stack, pid)


def test_nothing_in_a_request_is_accepted_and_ignored(stack):
    dep = create(stack, "web")
    good = {"name": "other", "image": "/srv/none", "replicas": 0}

    # dryRun=All checks and stores nothing; any parameter a route does not take is a 400.
    r = stack.api("POST", "/deployments?dryRun=All", json=good)
    assert r.status == 200 and r.headers["husk-apply-result"] == "valid", r
    r = stack.api("POST", "/deployments?force=true", json=good)
    assert r.status == 400 and "unknown query parameter \"force\"" in r.json()["detail"], r
    for path in (f"/deployments/{dep}?watch=1", f"/deployments/{dep}/events?from=1", f"/deployments/{dep}/logs?lines=3"):
        r = stack.api("GET", path)
        assert r.status == 400, (path, r)
    assert [d["name"] for d in stack.api("GET", "/deployments").json()] == ["web"]

    # A malformed exec body is told so before any instance is looked for (there is none).
    for body, field in (({"command": ["ls"], "instance": 123}, "instance"), ({"command": ["ls"], "tty": True}, "tty")):
        r = stack.api("POST", f"/deployments/{dep}/exec", json=body)
        assert r.status == 400 and r.json()["violations"][0]["field"] == field, r
    r = stack.api("POST", f"/deployments/{dep}/exec", json={"command": ["ls"]})
    assert r.status == 409, r  # well-formed: now the missing instance is the problem

    r = stack.api("GET", f"/deployments/{dep}/logs?level=info%00x")
    assert r.status == 400, r
    r = stack.api("GET", f"/deployments/{dep}/events?since=10m")
    assert r.status == 200 and [e["reason"] for e in r.json()][0] == "Created", r
    r = stack.api("GET", f"/deployments/{dep}/events?since=2099-01-01T00:00:00Z")
    assert r.status == 200 and r.json() == [], r


def test_manifest_fields_are_honoured_refused_or_warned(stack):
    refused = [
        ({"volumes": [{"type": "nfs", "source": "srv:/x", "destination": "/x"}]}, "volumes[0].type"),
        ({"volumes": [{"type": "bind", "source": "/", "destination": "/x"}, 42]}, "volumes[1]"),
        ({"environment": {"DB": {"secretRef": "db-url", "key": "x"}}}, "environment.DB"),
        ({"environment": {"DB": {"secretRef": "db-url"}}}, "environment.DB"),
        ({"network": {"mode": "host"}}, "network.mode"),
        ({"secrets": {"A": "b"}}, "secrets"),
        ({"config": {"foo": "bar"}}, "config.foo"),
        ({"ports": [{"published": 8080, "target": 80, "host_ip": "203.0.113.7"}]}, "ports[0].host_ip"),
    ]
    for extra, field in refused:
        r = stack.api("POST", "/deployments", json={"name": "x", "image": "/srv/none", "replicas": 0, **extra})
        assert r.status == 422, (extra, r)
        assert [v["field"] for v in r.json()["violations"]] == [field], (extra, r)
    assert stack.api("GET", "/deployments").json() == []

    dep = create(stack, "warned", config={"image_pull_policy": "Always"})
    r = stack.api("GET", f"/deployments/{dep}/events?level=warning")
    assert [(e["reason"], e["message"].split(" ")[0]) for e in r.json()] == [("IgnoredField", "config.image_pull_policy")], r


def test_apply_of_good_then_bad_applies_nothing(stack):
    r = stack.husk("apply", "-f", "-", input="""deployments:
  good:
    image: /srv/none
    replicas: 0
  bad:
    image: /srv/none
    replicas: 0
    runtime: docker
""")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "deployment bad: invalid" in out and "runtime:" in out, out
    assert "Nothing was applied." in out and "created" not in out, out
    assert json.loads(stack.husk("deployment", "list", "-o", "json", check=True).stdout) == []

    # Fixed, the same file applies whole.
    r = stack.husk("apply", "-f", "-", input="""deployments:
  good:
    image: /srv/none
    replicas: 0
  bad:
    image: /srv/none
    replicas: 0
""")
    assert r.returncode == 0, r.stdout + r.stderr
    names = wait_for(lambda: sorted(d["name"] for d in json.loads(stack.husk("deployment", "list", "-o", "json").stdout)))
    assert names == ["bad", "good"]
