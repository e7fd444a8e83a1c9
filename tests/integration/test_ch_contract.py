"""test_ch_contract.py: every vm.create body husk builds for cloud-hypervisor conforms to CH's
OpenAPI spec (shared/reference/cloud-hypervisor-openapi.yaml): the bodies come from the unit test
that checks them field by field (test_ch_body, HUSK_CH_BODY_DIR), the spec is read by the same
validator the CH double applies at run time (tests/ch_double/chd_openapi.py), which also rejects a
field the spec does not name (CH would silently drop it). No stack, no VM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from husk_stack import BUILD, REPO, require

# On one worker: the module's fixtures are made once (conftest.py).
pytestmark = pytest.mark.xdist_group("ch-contract")

sys.path.insert(0, str(REPO / "tests" / "ch_double"))
import chd_openapi  # noqa: E402

SPEC = REPO.parent / "shared" / "reference" / "cloud-hypervisor-openapi.yaml"
if not SPEC.is_file():  # a worktree: the spec sits beside the main checkout
    SPEC = Path("/work/shared/reference/cloud-hypervisor-openapi.yaml")
BODY_TEST = BUILD / "san" / "tests" / "vmm-driver" / "test_ch_body"


@pytest.fixture(scope="module")
def spec():
    require(SPEC.is_file(), f"{SPEC} is missing")
    return chd_openapi.Spec(str(SPEC))


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    require(BODY_TEST.is_file(), f"{BODY_TEST} not built (make {BODY_TEST.relative_to(REPO)})")
    out = tmp_path_factory.mktemp("ch-bodies")
    r = subprocess.run([str(BODY_TEST)], env={**os.environ, "HUSK_CH_BODY_DIR": str(out)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    # Each way husk boots a VM: the kit, the kit with a disk image, a disk image by its firmware;
    # with volumes on the kit and on a firmware boot.
    assert set(found) == {"kit", "kit-disk", "firmware", "kit-volumes", "volumes"}, found.keys()
    return found


def test_every_vm_create_body_conforms_to_the_spec(spec, bodies):
    schema = spec.request_schema("/vm.create", "put")
    assert spec.body_required("/vm.create", "put")
    for name, body in bodies.items():
        assert spec.validate(body, schema) == [], f"{name}: {json.dumps(body)}"


def test_the_check_can_fail(spec, bodies):
    """The validator is not vacuous: a mistyped value, a field CH does not have and a missing
    required one are each reported where they are."""
    schema = spec.request_schema("/vm.create", "put")
    body = json.loads(json.dumps(bodies["kit"]))
    body["cpus"]["boot_vcpus"] = "2"
    body["net"][0]["ip_config"] = "none"
    del body["vsock"]["cid"]
    errors = spec.validate(body, schema)
    assert any(e.startswith("$.cpus.boot_vcpus: expected an integer") for e in errors), errors
    assert any(e.startswith("$.net[0]: unknown field `ip_config`") for e in errors), errors
    assert any(e.startswith("$.vsock: missing required field `cid`") for e in errors), errors
