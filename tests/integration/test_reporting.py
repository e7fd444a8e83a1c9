"""test_reporting.py: truth in what husk reports, with real VMs (tcg): a job's exit code and its
exited instance stay visible, every instance shows netd's address, a healthy boot logs no error
line, and where Ring's REST API and husk's overlap the shapes are Ring's."""

import json
import shutil
import urllib.parse

from netd_util import request


def inspect(stack, name):
    r = stack.husk("deployment", "inspect", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def apply(stack, name, image, kind="worker", command=None, replicas=1, namespace="default"):
    lines = ["deployments:", f"  {name}:", f"    name: {name}", f"    namespace: {namespace}", f"    kind: {kind}",
             f"    replicas: {replicas}", f"    image: {image}", "    resources: {limits: {cpu: \"1\", memory: 128Mi}}"]
    if command is not None:
        lines.append(f"    command: {json.dumps(command)}")
    r = stack.husk("apply", "-f", "-", input="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    return inspect(stack, name)["id"]


def rootfs(stack, tmp_path):
    dst = tmp_path / "root"
    shutil.copytree(stack.kit_dir / "rootfs/hello", dst, symlinks=True)
    return dst


def wait_ready(stack, name, replicas=1, timeout=120):
    def ready():
        d = inspect(stack, name)
        return d if d and d["status"] == "running" and d["ready_replicas"] >= replicas else None
    return stack.wait_for(ready, timeout=timeout, what=f"{name} running")


def logs(stack, dep_id, **query):
    r = stack.api("GET", f"/deployments/{dep_id}/logs?" + urllib.parse.urlencode(query), timeout=60)
    assert r.status == 200, r
    return r.json()


def netd_addresses(stack):
    """instance id -> guest address, as netd itself says (net.list)."""
    reply = request(f"ipc://{stack.dir}/run/netd.requests", "net.list", {})
    assert "result" in reply, reply
    return {a["instance_id"]: a["guest_ip"] for a in reply["result"]}


def test_job_exit_3_is_a_field_and_its_instance_stays_in_inspect(stack, tmp_path):
    root = rootfs(stack, tmp_path)
    apply(stack, "three", root, kind="job", command=["/bin/sh", "-c", "exit 3"])

    def failed():
        d = inspect(stack, "three")
        return d if d and d["status"] == "failed" and d["instances"] == [] else None
    d = stack.wait_for(failed, timeout=120, what="the job failed and its instance removed")
    assert d["exit_code"] == 3, d
    assert d["status_message"] == "job exited with status 3", d
    # vmm-driver removed the instance; apiserver keeps how it ended.
    [e] = d["exited_instances"]
    assert e["id"] == e["instance_id"] and len(e["id"]) == 12, e
    assert (e["state"], e["exit_status"], e["exit_reason"]) == ("exited", 3, "guest-shutdown"), e
    assert 0 < e["started_at"] <= e["exited_at"], e
    assert e["generation"] == d["generation"] and e["address"].startswith("10.42."), e

    text = stack.husk("deployment", "inspect", "three", check=True).stdout
    assert "Exit code:   3\n" in text, text
    assert "\nExited instances:\n" in text and e["id"] in text and "guest-shutdown (3)" in text, text

    # A worker has no exit code; re-applying the job runs it again with none until it ends.
    apply(stack, "three", root, kind="job", command=["/bin/sh", "-c", "sleep 600"])
    d = stack.wait_for(lambda: (lambda d: d if d and d["exit_code"] is None else None)(inspect(stack, "three")),
                       timeout=30, what="the re-applied job without an exit code")
    assert d["generation"] == 2 and len(d["exited_instances"]) == 1, d


def test_instances_carry_netd_address_and_a_healthy_boot_logs_no_error(stack, tmp_path):
    dep = apply(stack, "pair", rootfs(stack, tmp_path), command=["/bin/sh", "-c", "echo up; sleep 600"], replicas=2)
    d = wait_ready(stack, "pair", replicas=2)

    # The address of each instance is netd's (not computed by apiserver): the same as net.list's.
    netd = netd_addresses(stack)
    assert len(d["instances"]) == 2
    for i in d["instances"]:
        assert i["id"] == i["instance_id"], i
        assert i["address"] == netd[i["id"]], (i, netd)
    assert len({i["address"] for i in d["instances"]}) == 2

    # Ring's GET /deployments?instances=true: instances as {id, address}.
    r = stack.api("GET", "/deployments?instances=true")
    assert r.status == 200, r
    [listed] = [x for x in r.json() if x["id"] == dep]
    assert sorted((i["id"], i["address"]) for i in listed["instances"]) == sorted(netd.items())
    assert "instances" not in stack.api("GET", "/deployments").json()[0]

    text = stack.husk("deployment", "inspect", "pair", check=True).stdout
    assert all(a in text for a in netd.values()), text

    # A healthy boot: the whole console (kernel, agent, workload) has no error line.
    stack.wait_for(lambda: any(e["message"] == "up" for e in logs(stack, dep)), timeout=60,
                   what="the workload's first line in the logs")
    everything = logs(stack, dep)
    assert any(e["message"].startswith("husk-agent: ready") for e in everything), everything
    errors = logs(stack, dep, level="error")
    assert errors == [], errors
    r = stack.husk("deployment", "logs", "pair", "--level", "error", check=True)
    assert r.stdout == "", r.stdout

    # Ring's container= is instance=.
    iid = d["instances"][0]["id"]
    by_container = logs(stack, dep, container=iid)
    assert by_container and {e["instance"] for e in by_container} == {iid}
    assert by_container == logs(stack, dep, instance=iid)

    # Ring's DELETE: 204, no body; the deployment then goes.
    r = stack.api("DELETE", f"/deployments/{dep}")
    assert (r.status, r.body) == (204, b""), r
    stack.wait_for(lambda: stack.api("GET", f"/deployments/{dep}").status == 404, timeout=60,
                   what="the deleted deployment purged")
    assert stack.api("DELETE", f"/deployments/{dep}").status == 404


def test_ring_shapes_without_vms(stack):
    r = stack.api("GET", "/healthz")
    assert r.status == 200 and r.json()["state"] == "UP", r

    bad = stack.api("POST", "/deployments", json={"name": "Bad_Name", "image": "/nope"})
    assert bad.status == 422 and bad.headers["content-type"] == "application/problem+json", bad
    v = {x["property_path"]: x for x in bad.json()["violations"]}
    assert v["name"]["message"] == v["name"]["reason"] and v["name"]["code"] == "deployment.name.invalid", v
    assert v["name"]["field"] == "name"

    for ns, name in (("prod", "a"), ("prod", "b"), ("staging", "c")):
        r = stack.api("POST", "/deployments", json={"name": name, "namespace": ns, "image": "/nonexistent",
                                                    "kind": "job" if name == "b" else "worker", "replicas": 0})
        assert r.status == 201, r

    def names(query):
        r = stack.api("GET", "/deployments?" + query)
        assert r.status == 200, r
        return sorted(d["name"] for d in r.json())
    assert names("namespace[]=prod") == ["a", "b"]
    assert names("namespace%5B%5D=prod&namespace%5B%5D=staging") == ["a", "b", "c"]
    assert names("kind=job") == ["b"]
    assert names("kind[]=worker&namespace=prod") == ["a"]
    assert names("status[]=pending&status[]=running&namespace=staging") == ["c"]
    assert stack.api("GET", "/deployments?kind=daemon").status == 400
