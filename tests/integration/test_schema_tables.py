"""test_schema_tables.py: what the daemons publish and answer fits the tables generated from
proto/schema.yaml (build/gen/husk_schema.py), strictly: every key listed, every required one
present, each of its type and within its bounds. And the prose (proto/SCHEMA.md) names the same
events and methods as the machine-readable schema. No VM is started: a deployment of no replicas
goes through its life (created, status, deleted, purged) while every publisher is recorded."""

import itertools
import re
from pathlib import Path


from husk_stack import BUILD, require
from netd_util import Subscriber

SCHEMA_MD = Path(__file__).resolve().parents[2] / "proto" / "SCHEMA.md"


def schema():
    require((BUILD / "gen" / "husk_schema.py").exists(), f"{BUILD}/gen/husk_schema.py is not built (make schema)")
    import husk_schema
    return husk_schema


def test_prose_and_schema_name_the_same_events_and_methods():
    s = schema()
    text = SCHEMA_MD.read_text()
    events = text[text.index("## Events"):text.index("## Requests")]
    requests = text[text.index("## Requests"):text.index("## Agent")]
    documented = {t for row in re.findall(r"^\| (`[^|]*) \|", events, re.M) for t in re.findall(r"`([a-z_.<>]+)`", row)}
    documented = {t.split("<")[0] for t in documented}
    assert documented == set(s.EVENTS), f"SCHEMA.md events {sorted(documented)} vs schema.yaml {sorted(s.EVENTS)}"
    methods = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", requests, re.M))
    assert methods == set(s.METHODS), f"SCHEMA.md methods {sorted(methods)} vs schema.yaml {sorted(s.METHODS)}"
    agent = text[text.index("## Agent"):]
    frames = {t for row in re.findall(r"^\| `([a-z_.]+)`(?: / `([a-z_.]+)`)? \|", agent, re.M) for t in row if t}
    assert frames == set(s.AGENT_FRAMES), f"SCHEMA.md agent frames {sorted(frames)} vs {sorted(s.AGENT_FRAMES)}"


def test_check_finds_what_is_wrong():
    s = schema()
    assert s.check("port", {"published": 8080, "target": 80}) == []
    assert s.check("port", {"published": 0, "target": 80, "via": 1}) == [
        "port.published: 0 below 1", "port.via: not in the schema"]
    assert s.check("instance_stop_args", {"remove": True}) == ["instance_stop_args.instance_id: missing"]
    assert s.event_body("log.d-1") == "log_event" and s.event_body("instance.exploded") is None


def test_live_events_and_answers_fit_the_schema(stack):
    s = schema()
    subs = [Subscriber(f"ipc://{stack.dir}/run/{d}.events") for d in ("apiserver", "scheduler", "vmm-driver",
                                                                      "netd", "logd")]
    api = subs[0]
    # Each try changes a label, so that each one publishes (an unchanged apply publishes nothing).
    tries = itertools.count()
    def trigger():
        hs = {"name": "handshake", "image": f"{stack.kit_dir}/rootfs/hello", "replicas": 0,
              "labels": {"try": str(next(tries))}}
        assert stack.api("POST", "/deployments", json=hs).status in (200, 201)
    api.handshake(trigger, lambda t, b: t.startswith("deployment.") and b.get("name") == "handshake")
    r = stack.api("POST", "/deployments", json={"name": "tables", "image": f"{stack.kit_dir}/rootfs/hello",
                                                "replicas": 0})
    assert r.status == 201, r.text
    dep = r.json()["id"]
    assert stack.api("DELETE", f"/deployments/{dep}").status == 204

    def seen():
        return [(t, b) for sub in subs for t, b in sub.poll(50)]
    stack.wait_for(lambda: any(t == "deployment.purged" and b["deployment_id"] == dep for t, b in seen()),
                   timeout=30, what="deployment.purged")
    got = seen()
    types = {t for t, b in got if b.get("deployment_id") == dep}
    assert {"deployment.created", "deployment.deleted", "deployment.purged", "event.info"} <= types, types
    problems = []
    for t, body in got:
        message = s.event_body(t)
        if message is None:
            problems.append(f"{t}: not in the schema")
            continue
        problems += [f"{t}: {p}" for p in s.check(message, body)]
    assert not problems, "\n".join(problems)

    # Answers, each held against its method's result table.
    calls = [("apiserver", "deployment.list", {}), ("apiserver", "deployment.get", {"id": hs_id(stack)}),
             ("vmm-driver", "instance.list", {}), ("scheduler", "scheduler.status", {}),
             ("scheduler", "health.list", {"deployment_id": dep}), ("netd", "net.list", {}),
             ("logd", "logs.query", {"deployment_id": dep}), ("vmm-driver", "runtime.list", {})]
    calls += [(d, "daemon.info", {}) for d in ("apiserver", "scheduler", "vmm-driver", "netd", "logd")]
    calls += [(d, "daemon.stats", {}) for d in ("apiserver", "scheduler", "vmm-driver", "netd", "logd")]
    calls += [("netd", "net.stats", {})]
    for daemon, method, args in calls:
        assert s.check(s.METHODS[method]["args"], args) == [], (method, args)
        result = stack.request(daemon, method, args)
        m = s.METHODS[method]
        items = result if m.get("array") else [result]
        if m.get("array"):
            assert isinstance(result, list), (method, result)
        for item in items:
            assert s.check(m["result"], item) == [], (method, s.check(m["result"], item))
        if method == "daemon.info":
            assert result["daemon"] == daemon and result["pid"] == stack.daemon_pid(daemon), result


def hs_id(stack):
    (d,) = [d for d in stack.api("GET", "/deployments").json() if d["name"] == "handshake"]
    return d["id"]
