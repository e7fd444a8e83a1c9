"""test_bus_schema.py: an operator with Python's zmq + msgpack and proto/SCHEMA.md can decode
every event and speak every request. The expectations below are transcribed from SCHEMA.md,
not from the C code: if the daemons drift from the document, this fails."""

import itertools
import json
import time

import msgpack
import zmq

from netd_util import handshake

STR, UINT, INT, BOOL, FLOAT, MAP = "str", "uint", "int", "bool", "float", "map"

# SCHEMA.md, "Records" (required keys; optional ones may be absent or nil).
INSTANCE = {"instance_id": STR, "deployment_id": STR, "generation": UINT, "runtime": STR, "image": STR,
            "cpus": UINT, "memory_mib": UINT, "state": STR, "pid": INT, "started_at": UINT,
            "ready_at": UINT, "exited_at": UINT, "exit_status": INT}
INSTANCE_OPTIONAL = {"kernel": STR, "initrd": STR, "boot": STR, "exit_reason": STR, "exit_message": STR, "address": STR,
                     "spawned_at_ns": UINT, "ready_at_ns": UINT}
DEPLOYMENT = {"id": STR, "namespace": STR, "name": STR, "generation": UINT, "status": STR, "runtime": STR,
              "kind": STR, "image": STR, "replicas": UINT, "cpus": UINT, "memory_mib": UINT}
DEPLOYMENT_OPTIONAL = {"kernel": STR, "boot": STR, "ready_replicas": UINT}
DEPLOYMENT_EVENT = {"ts": UINT, "deployment_id": STR, "namespace": STR, "name": STR, "generation": UINT,
                    "status": STR}
DEPLOYMENT_EVENT_OPTIONAL = {"message": STR}
INSTANCE_METRICS = {"ts": UINT, "instance_id": STR, "deployment_id": STR, "runtime": STR, "pid": INT,
                    "interval_ms": UINT, "cpu_seconds": FLOAT, "cpu_percent": FLOAT, "rss_bytes": UINT,
                    "memory_limit_bytes": UINT, "threads": UINT, "disk_read_bytes": UINT, "disk_write_bytes": UINT}
INSTANCE_METRICS_OPTIONAL = {"disk_note": STR, "network": MAP, "guest": MAP}
INSTANCE_STATES = {"starting", "running", "ready", "stopping", "exited"}
EXIT_REASONS = {"guest-shutdown", "guest-reset", "guest-panic", "stopped", "killed", "crashed", "vanished"}

# SCHEMA.md, "Events": type -> (publisher, required keys, optional keys)
EVENTS = {
    **{f"deployment.{t}": ("apiserver", DEPLOYMENT_EVENT, DEPLOYMENT_EVENT_OPTIONAL)
       for t in ("created", "updated", "status", "deleted", "purged")},
    **{f"instance.{t}": ("vmm-driver", {**INSTANCE, "ts": UINT}, INSTANCE_OPTIONAL)
       for t in ("created", "running", "ready", "stopping", "exited", "removed", "adopted")},
    "instance.metrics": ("vmm-driver", INSTANCE_METRICS, INSTANCE_METRICS_OPTIONAL),
}


def check_type(value, kind):
    return {STR: lambda v: isinstance(v, str),
            UINT: lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
            BOOL: lambda v: isinstance(v, bool),
            FLOAT: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            MAP: lambda v: isinstance(v, dict)}[kind](value)


def check_record(body, required, optional, what):
    assert isinstance(body, dict), f"{what}: body is not a map"
    for key, kind in required.items():
        assert key in body, f"{what}: missing {key}"
        assert check_type(body[key], kind), f"{what}: {key}={body[key]!r} is not {kind}"
    for key, kind in optional.items():
        if body.get(key) is not None:
            assert check_type(body[key], kind), f"{what}: {key}={body[key]!r} is not {kind}"


def endpoint(stack, daemon, kind):
    # SCHEMA.md, "Endpoints": ipc://<runtime_dir>/<daemon>.<events|requests>. The socket files
    # live in the filesystem, so they are reachable from outside the stack's network namespace.
    return f"ipc://{stack.dir}/run/{daemon}.{kind}"


def request(ctx, stack, daemon, method, args, timeout_ms=5000):
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint(stack, daemon, "requests"))
    try:
        rid = 4242
        body = {"id": rid, "deadline": int(time.time() * 1000) + timeout_ms, "args": args}
        sock.send_multipart([b"", method.encode(), msgpack.packb(body)])
        assert sock.poll(timeout_ms), f"{method}: no reply"
        frames = sock.recv_multipart()
        assert frames[0] == b"" and frames[1] == b"reply" and len(frames) == 3, frames[:2]
        reply = msgpack.unpackb(frames[2], raw=False)
        assert reply["id"] == rid
        return reply
    finally:
        sock.close()


def test_events_and_requests_decode_with_the_schema_alone(stack):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for daemon in ("apiserver", "vmm-driver", "scheduler"):
        sub.connect(endpoint(stack, daemon, "events"))
    sub.setsockopt(zmq.SUBSCRIBE, b"deployment.")
    sub.setsockopt(zmq.SUBSCRIBE, b"instance.")
    # ZeroMQ's slow joiner: a deployment of no replicas is applied (again, unchanged, until one of
    # its events arrives) so the subscriptions are known to have reached the apiserver. The other
    # publishers were connected at the same moment; vmm-driver's first event comes after a whole
    # scheduler pass.
    def receive(timeout_ms):
        got = []
        while sub.poll(timeout_ms):
            t, b = sub.recv_multipart()
            got.append((t.decode(), msgpack.unpackb(b, raw=False)))
            timeout_ms = 0
        return got
    # Each try changes a label, so that each one publishes (an unchanged apply publishes nothing).
    tries = itertools.count()
    def trigger():
        hs = {"name": "handshake", "image": f"{stack.kit_dir}/rootfs/hello", "replicas": 0,
              "labels": {"try": str(next(tries))}}
        assert stack.api("POST", "/deployments", json=hs).status in (200, 201)
    early = handshake(receive, trigger, lambda t, b: t.startswith("deployment.") and b["name"] == "handshake")
    for etype, body in early:
        check_record(body, *EVENTS[etype][1:], etype)

    manifest = {"name": "schema", "image": f"{stack.kit_dir}/rootfs/hello", "replicas": 1}
    r = stack.api("POST", "/deployments", json=manifest)
    assert r.status == 201, r.text
    deployment_id = r.json()["id"]

    seen, deadline = [], time.monotonic() + 90
    deleted = False
    while time.monotonic() < deadline:
        if not sub.poll(500):
            continue
        frames = sub.recv_multipart()
        assert len(frames) == 2, "an event is [type][body]"
        etype, body = frames[0].decode(), msgpack.unpackb(frames[1], raw=False)
        assert etype in EVENTS, f"undocumented event type {etype}"
        _, required, optional = EVENTS[etype]
        check_record(body, required, optional, etype)
        if etype.startswith("instance.") and etype != "instance.metrics":
            assert body["state"] in INSTANCE_STATES
            if body.get("exit_reason") is not None:
                assert body["exit_reason"] in EXIT_REASONS
        if etype.startswith("deployment.") and body["name"] == "handshake":
            continue  # checked above; what follows is about the deployment under test
        seen.append(etype)
        if etype == "instance.ready" and not deleted:
            # Requests, as SCHEMA.md documents them.
            reply = request(ctx, stack, "vmm-driver", "instance.list", {"deployment_id": deployment_id})
            (inst,) = reply["result"]
            check_record(inst, INSTANCE, INSTANCE_OPTIONAL, "instance.list result")
            assert inst["state"] == "ready" and inst["instance_id"] == body["instance_id"]
            reply = request(ctx, stack, "apiserver", "deployment.get", {"id": deployment_id})
            check_record(reply["result"], DEPLOYMENT, DEPLOYMENT_OPTIONAL, "deployment.get result")
            reply = request(ctx, stack, "apiserver", "deployment.get", {"id": "no-such-id"})
            assert reply["error"]["code"] == "not_found" and reply["error"]["message"]
            reply = request(ctx, stack, "vmm-driver", "no.such.method", {})
            assert reply["error"]["code"] == "unknown_method"
            reply = request(ctx, stack, "vmm-driver", "instance.stop", {"instance_id": 7})
            assert reply["error"]["code"] == "invalid" and "instance_id" in reply["error"]["message"]
            assert stack.api("DELETE", f"/deployments/{deployment_id}").status == 204
            deleted = True
        if etype == "deployment.purged":
            break
    sub.close()

    for expected in ("deployment.created", "instance.created", "instance.running", "instance.ready",
                     "deployment.status", "deployment.deleted", "instance.stopping", "instance.exited",
                     "instance.removed", "deployment.purged"):
        assert expected in seen, f"{expected} never published; saw {json.dumps(seen)}"
    assert seen.index("instance.created") < seen.index("instance.ready") < seen.index("instance.exited")


def test_scheduler_status_counts_passes(stack):
    """SCHEMA.md, scheduler.status: what tests wait for instead of sleeping before they assert
    that the scheduler did nothing."""
    ctx = zmq.Context.instance()
    st = request(ctx, stack, "scheduler", "scheduler.status", {})["result"]
    assert set(st) == {"passes", "pass_scheduled"}
    assert check_type(st["passes"], UINT) and check_type(st["pass_scheduled"], BOOL)
    # Nothing happens on an idle stack, yet every pass asked for is made and counted.
    before = st["passes"]
    for want in range(before + 1, before + 4):
        first = request(ctx, stack, "scheduler", "scheduler.status", {"pass": True})["result"]
        assert first["passes"] >= want - 1 and first["pass_scheduled"] is True, first
        stack.wait_for(lambda: request(ctx, stack, "scheduler", "scheduler.status", {})["result"]["passes"] >= want,
                       timeout=10, what=f"scheduler pass {want}")
    reply = request(ctx, stack, "scheduler", "scheduler.status", {"pass": 7})
    assert reply["error"]["code"] == "invalid" and "pass" in reply["error"]["message"]
