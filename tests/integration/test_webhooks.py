"""test_webhooks.py: webhooks (issue 15): the REST API and its 422s, the secret in no answer,
and deliveries to real receivers (Python's http.server on loopback inside the stack's
namespace) for a real event (a deployment applied): signed with HMAC-SHA256 of the body, retried
with back-off until a flaky receiver takes it, dead-lettered after max_attempts, never held up by
a receiver that hangs (neither another receiver's delivery nor the API), and still pending across
an apiserver restart."""

import hashlib
import hmac
import http.server
import json
import threading
import time

from husk_stack import netns_socket, wait_for

SECRET = "whsec-Xq3-never-in-any-answer"


class Receiver:
    """An HTTP server inside the stack's namespace on 127.0.0.1. Each POST is kept as (time,
    headers, body); behave(n) gives the status for the n-th POST (1-based), or "hang" to hold
    the request open until close()."""

    def __init__(self, stack, behave=lambda n: 200):
        self.posts = []
        self.behave = behave
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                    n = len(receiver.posts)
                status = receiver.behave(n)
                if status == "hang":
                    receiver.release.wait(120)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        sock = netns_socket(stack.netns)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.socket.close()
        self.server.socket = sock
        self.server.server_address = sock.getsockname()
        self.url = "http://127.0.0.1:%d/hook" % sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.posts)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def configure(stack, **settings):
    """Set apiserver.webhooks.* and restart apiserver (the session stays valid: it is in the store)."""
    text = stack.config_path.read_text()
    assert "\napiserver:\n" in text
    block = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    stack.config_path.write_text(text.replace("\napiserver:\n", "\napiserver:\n  webhooks:\n" + block, 1))
    stack.restart_daemon("apiserver")


def apply_idle(stack, name, namespace="default"):
    """A real deployment that boots nothing (replicas 0): apiserver records its Created event."""
    r = stack.husk("apply", "-f", "-", input=json.dumps(
        {"deployments": {name: {"image": "/srv/none", "replicas": 0, "namespace": namespace}}}))
    assert r.returncode == 0, (r.stdout, r.stderr)


def create(stack, url, **extra):
    r = stack.api("POST", "/webhooks", json={"url": url, "secret": SECRET, **extra})
    assert r.status == 201, r
    assert SECRET not in r.text
    return r.json()


def deliveries(stack, webhook_id):
    r = stack.api("GET", f"/webhooks/{webhook_id}/events?limit=100")
    assert r.status == 200, r
    assert SECRET not in r.text
    return r.json()


def violations(r):
    return [v["field"] for v in r.json().get("violations", [])]


def signed_correctly(headers, body):
    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-husk-signature", ""), want)


def metric(text, name):
    """The value of an unlabelled-or-labelled series NAME in a Prometheus exposition, or None."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_webhook_api_validation_and_cli(stack):
    # Each bad field named, in one 422.
    r = stack.api("POST", "/webhooks", json={"url": "ftp://example.com/x", "secret": "short",
                                             "filter": {"level": "loud", "reasons": ["not a reason"]},
                                             "colour": "blue", "name": "Bad_Name"})
    assert r.status == 422 and r.json()["type"] == "urn:husk:problem:invalid-webhook", r
    assert sorted(violations(r)) == ["colour", "filter.level", "filter.reasons[0]", "name", "secret", "url"], r
    url_reason = [v["reason"] for v in r.json()["violations"] if v["field"] == "url"][0]
    assert "http or https" in url_reason, r
    for body, field in (({"secret": SECRET}, "url"), ({"url": "http://127.0.0.1:9/"}, "secret"),
                        ({"url": "file:///etc/passwd", "secret": SECRET}, "url"),
                        ({"url": "http:///nohost", "secret": SECRET}, "url"),
                        ({"url": "http://127.0.0.1:9/", "secret": SECRET, "filter": {"namespaces": ["A B"]}},
                         "filter.namespaces[0]")):
        r = stack.api("POST", "/webhooks", json=body)
        assert r.status == 422 and violations(r) == [field], (body, r)
    assert stack.api("POST", "/webhooks", data="[1]", headers={"Content-Type": "application/json"}).status == 422

    # Created, listed, read by id and by name: never the secret.
    w = create(stack, "http://127.0.0.1:9/hook", name="ops",
               filter={"reasons": ["Created"], "level": "warning", "namespaces": ["prod"]})
    assert w["filter"] == {"reasons": ["Created"], "level": "warning", "namespaces": ["prod"]}, w
    assert w["name"] == "ops" and w["url"] == "http://127.0.0.1:9/hook" and "secret" not in w, w
    for path in ("/webhooks", f"/webhooks/{w['id']}", "/webhooks/ops", f"/webhooks/{w['id']}/events"):
        r = stack.api("GET", path)
        assert r.status == 200 and SECRET not in r.text, (path, r)
    assert stack.api("POST", "/webhooks", json={"url": "http://x/", "secret": SECRET, "name": "ops"}).status == 409
    assert stack.api("GET", "/webhooks/ops/events?limit=0").status == 400

    # The CLI: create (secret from stdin), list, get, deliveries, delete; --help tells the verbs.
    r = stack.husk("webhook", "--help")
    assert r.returncode == 0 and "deliveries" in r.stdout and "X-Husk-Signature" in r.stdout, r
    r = stack.husk("webhook", "create", "http://127.0.0.1:9/cli", "--name", "cli", "--secret-from-file", "-",
                   "--reason", "Created", "--reason", "Deleted", "--level", "info", "-n", "default", input=SECRET + "\n")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert SECRET not in r.stdout + r.stderr
    r = stack.husk("webhook", "list")
    assert r.returncode == 0 and "cli" in r.stdout and "ops" in r.stdout and SECRET not in r.stdout, r
    r = stack.husk("webhook", "get", "cli", "-o", "json")
    assert r.returncode == 0, r
    got = json.loads(r.stdout)
    assert got["filter"] == {"reasons": ["Created", "Deleted"], "level": "info", "namespaces": ["default"]}, got
    r = stack.husk("webhook", "deliveries", "cli")
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = stack.husk("webhook", "create", "ftp://x/", "--secret-from-file", "-", input=SECRET)
    assert r.returncode == 1 and "url" in r.stderr, (r.stdout, r.stderr)
    r = stack.husk("webhook", "delete", "cli")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert stack.api("GET", "/webhooks/cli").status == 404
    assert stack.husk("webhook", "get", "cli").returncode == 4

    # A token bound to namespaces sees and makes only webhooks that name its namespaces and no other:
    # a webhook of every namespace would forward what it may not read.
    r = stack.api("POST", "/tokens", json={"name": "hooks", "scopes": ["webhooks:read", "webhooks:write"],
                                           "namespaces": ["prod"]})
    assert r.status == 201, r
    bound = {"Authorization": "Bearer " + r.json()["token"]}
    r = stack.api("POST", "/webhooks", json={"url": "http://127.0.0.1:9/", "secret": SECRET}, headers=bound)
    assert r.status == 403, r
    r = stack.api("POST", "/webhooks", json={"url": "http://127.0.0.1:9/", "secret": SECRET,
                                             "filter": {"namespaces": ["prod", "dev"]}}, headers=bound)
    assert r.status == 403, r
    unbound = create(stack, "http://127.0.0.1:9/all")  # every namespace: not for the bound token
    r = stack.api("POST", "/webhooks", json={"url": "http://127.0.0.1:9/", "secret": SECRET, "name": "prod-only",
                                             "filter": {"namespaces": ["prod"]}}, headers=bound)
    assert r.status == 201, r
    r = stack.api("GET", "/webhooks", headers=bound)
    assert r.status == 200 and sorted(w["name"] for w in r.json()) == ["ops", "prod-only"], r
    assert stack.api("GET", f"/webhooks/{unbound['id']}", headers=bound).status == 404
    assert stack.api("DELETE", f"/webhooks/{unbound['id']}", headers=bound).status == 404

    # Nothing of the secret in the logs either.
    assert SECRET not in stack.log("apiserver")


def test_deliveries_signed_retried_dead_lettered_and_never_held_up(stack):
    configure(stack, max_attempts=4, timeout="30s", backoff_initial="200ms", backoff_max="1s", concurrency=8)
    good = Receiver(stack)
    flaky = Receiver(stack, behave=lambda n: 500 if n <= 2 else 204)
    dead = Receiver(stack, behave=lambda n: 503)
    hang = Receiver(stack, behave=lambda n: "hang")
    try:
        only_created = {"reasons": ["Created"]}
        w_hang = create(stack, hang.url, name="hang", filter=only_created)
        w_good = create(stack, good.url, name="good", filter=only_created)
        w_flaky = create(stack, flaky.url, name="flaky", filter=only_created)
        w_dead = create(stack, dead.url, name="dead", filter=only_created)
        create(stack, good.url, name="elsewhere", filter={"namespaces": ["other"]})  # must not fire

        t0 = time.monotonic()
        apply_idle(stack, "web")
        wait_for(lambda: hang.count() >= 1, timeout=20, what="the hanging receiver got its request")
        # While it hangs (its timeout is 30 s), the good receiver has its delivery and the API answers.
        wait_for(lambda: good.count() >= 1, timeout=10, what="the good receiver's delivery")
        assert good.posts[0][0] - t0 < 10, "the good receiver waited for the hanging one"
        start = time.monotonic()
        assert stack.api("GET", "/deployments").status == 200
        assert time.monotonic() - start < 2, "the API waited for the hanging receiver"
        assert hang.count() == 1 and not hang.release.is_set()  # still hanging meanwhile

        # Signed, with the event's id and a timestamp; the body is the Created event.
        _, headers, body = good.posts[0]
        assert signed_correctly(headers, body), headers
        event = json.loads(body)
        assert event["reason"] == "Created" and event["deployment"] == "web" and event["namespace"] == "default"
        assert headers["x-husk-event-id"] == str(event["id"]) and headers["x-husk-event"] == "Created", headers
        assert abs(int(headers["x-husk-timestamp"]) - time.time()) < 120, headers
        assert headers["content-type"] == "application/json"
        ids = [e["id"] for e in json.loads(stack.husk("deployment", "events", "web", "-o", "json").stdout)
               if e["reason"] == "Created"]
        assert event["id"] in ids, ids

        # The flaky receiver: refused twice, took it at the third attempt; the history says so.
        def flaky_delivered():
            d = deliveries(stack, w_flaky["id"])
            return d if d and d[0]["state"] == "delivered" else None
        d = wait_for(flaky_delivered, timeout=30, what="the flaky receiver's delivery")[0]
        assert flaky.count() == 3 and d["attempts"] == 3, d
        assert [a["status"] for a in d["history"]] == [500, 500, 204], d
        assert "500" in d["history"][0]["error"] and d["history"][2]["error"] == "", d
        assert all(signed_correctly(h, b) for _, h, b in flaky.posts)
        assert len({h["x-husk-delivery"] for _, h, _ in flaky.posts}) == 1  # one delivery, retried
        # Back-off: the waits between attempts grow (200 ms then 400 ms, each with jitter in its upper half).
        gaps = [flaky.posts[i + 1][0] - flaky.posts[i][0] for i in range(2)]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19, gaps

        # The dead receiver: given up after max_attempts (4), dead-lettered with the last error.
        def dead_lettered():
            d = deliveries(stack, w_dead["id"])
            return d if d and d[0]["state"] == "dead" else None
        d = wait_for(dead_lettered, timeout=30, what="the dead receiver's delivery to be dead-lettered")[0]
        assert d["attempts"] == 4 and len(d["history"]) == 4 and d["last_status"] == 503, d
        assert d["next_attempt_at"] is None, d
        assert dead.count() == 4, dead.count()

        # The good one: delivered once; the filter kept "elsewhere" (another namespace) quiet.
        assert deliveries(stack, w_good["id"])[0]["state"] == "delivered"
        assert good.count() == 1, [json.loads(b)["reason"] for _, _, b in good.posts]
        # The hanging receiver's delivery is still under way, not failed.
        d = deliveries(stack, w_hang["id"])[0]
        assert d["state"] == "pending" and d["attempts"] == 0, d
        # GET /metrics counts them: good and flaky delivered, 2 + 4 attempts failed, dead one,
        # the hanging attempt under way.
        text = stack.api("GET", "/metrics", auth=False).text
        assert metric(text, "husk_apiserver_webhook_deliveries_delivered_total") == 2, text
        assert metric(text, "husk_apiserver_webhook_attempts_failed_total") == 6
        assert metric(text, "husk_apiserver_webhook_deliveries_dead_total") == 1
        assert metric(text, "husk_apiserver_webhook_attempts_in_flight") == 1
        assert metric(text, "husk_apiserver_webhook_deliveries_pending") >= 1

        # Deleting a webhook takes its history; the API answers while the worker is busy.
        assert stack.api("DELETE", f"/webhooks/{w_hang['id']}").status == 204
        assert stack.api("GET", f"/webhooks/{w_hang['id']}/events").status == 404
    finally:
        for r in (good, flaky, dead, hang):
            r.close()


def test_pending_delivery_survives_an_apiserver_restart(stack):
    configure(stack, max_attempts=50, timeout="5s", backoff_initial="1s", backoff_max="1s")
    up = threading.Event()
    receiver = Receiver(stack, behave=lambda n: 200 if up.is_set() else 503)
    try:
        w = create(stack, receiver.url, filter={"reasons": ["Created"]})
        apply_idle(stack, "web")

        def failed_once():
            d = deliveries(stack, w["id"])
            return d if d and d[0]["attempts"] >= 1 else None
        d = wait_for(failed_once, timeout=20, what="a first failed attempt")[0]
        assert d["state"] == "pending", d
        stack.kill_daemon("apiserver")
        seen = receiver.count()
        up.set()  # the receiver recovers while apiserver is down
        stack.start_daemon("apiserver")

        def delivered():
            d = deliveries(stack, w["id"])
            return d if d and d[0]["state"] == "delivered" else None
        d = wait_for(delivered, timeout=30, what="the pending delivery after the restart")[0]
        assert receiver.count() > seen and d["id"] == deliveries(stack, w["id"])[0]["id"], d
        assert signed_correctly(receiver.posts[-1][1], receiver.posts[-1][2])
        assert d["history"][-1]["status"] == 200 and d["history"][0]["status"] == 503, d
    finally:
        receiver.close()
