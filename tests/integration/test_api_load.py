"""test_api_load.py: hostile connections do not stall the REST API (issue 10).

Against the real apiserver of a stack, all traffic to 127.0.0.1 inside the stack's namespace:
with 500 idle connections, 100 half-sent request heads and 50 log followers held open at once,
GET /deployments still answers, each time within 2 s (a bound on "does not stall", not a
benchmark: bench_api_load.py measures it). A body shorter than its Content-Length is answered
408 and its connection closed within the body timeout (10 s), not held."""

import signal

from api_load import run_load, short_body

PROBE_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 10.0


def make_deployment(stack):
    # No scheduler: the deployment needs no VM, only to exist for its followers.
    stack.kill_daemon("scheduler", signal.SIGTERM)
    r = stack.api("POST", "/deployments", json={"name": "quiet", "image": "/nonexistent"})
    assert r.status == 201, r
    return r.json()["id"]


def test_get_answers_under_idle_half_sent_and_followers(stack):
    dep_id = make_deployment(stack)
    out = run_load(stack, dep_id, followers=50, half_sent=100, idle=500, probes=5, probe_timeout=PROBE_TIMEOUT_S)
    assert out["connected"] == 650, out
    assert None not in out["loaded_s"], f"GET /deployments got no answer within {PROBE_TIMEOUT_S} s under load: {out}"
    # Every follower was answered (a stream, or 503 when the follower slots are full), none left hanging.
    assert out["followers"].get("none", 0) == 0 and set(out["followers"]) <= {"200", "503", "none"}, out
    # The API still serves once the load is gone, and did not die.
    assert stack.api("GET", "/deployments").status == 200
    assert stack.daemon_pid("apiserver")


def test_short_body_is_closed_within_the_body_timeout(stack):
    out = short_body(stack, wait=BODY_TIMEOUT_S + 10)
    assert out["closed_after_s"] is not None and out["closed_after_s"] <= BODY_TIMEOUT_S + 3, out
    assert out["status_line"].startswith("HTTP/1.1 408 "), out
