"""conftest.py: fixtures that give each integration test its own husk stack.

`stack` is a running stack (husk-apiserver, husk-scheduler, husk-vmm-driver) in a fresh short
temp dir and a private network namespace, torn down with `husk-stack down --purge` after the
test. `make_stack` creates more of them (or one that is not up yet). When a test fails, the
daemon logs (and the VMs' console logs and instance.json) are copied to the test's tmp_path
and the daemon logs' tails printed. See husk_stack.py for
the helpers (stack.husk, stack.api, stack.wait_for, ...).

Environment: HUSK_BUILD (default <repo>/build) holds bin/ and kit/. Under CI=true a test that
cannot run here (no root, no netns, no QEMU, something not built) fails instead of skipping: see
require().
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from husk_stack import BUILD, Stack, StackError, print_log_tails, require  # noqa: E402

CH_DOUBLE = Path(__file__).resolve().parents[1] / "ch_double" / "cloud-hypervisor"

# husk_schema: the tables generated from proto/schema.yaml by the build (proto/schema_gen.py).
sys.path.insert(0, str(BUILD / "gen"))


def pytest_configure(config):
    config.addinivalue_line("markers", "require(condition, why): run only if condition holds; "
                            "skip otherwise, fail under CI=true (husk_stack.require)")
    config.addinivalue_line("markers", "long: takes a minute or more here (a disk image's boot, back-off "
                            "waits); run before the others")


def pytest_collection_modifyitems(items):
    """The long tests first, in their order, then the rest in theirs (make integration runs the
    two apart, `-m long` then `-m "not long"`; a plain pytest run gets them in this order). The
    tests run side by side (pytest-xdist, --dist loadgroup), each worker given a few tests at a
    time as it runs out: started last, a long test would keep one worker busy minutes after the
    other ran out of work. A module whose tests share a module-scoped VM or daemon is one
    xdist_group, so that it is set up once, on one worker."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_runtest_setup(item):
    for mark in item.iter_markers("require"):
        require(*mark.args, **mark.kwargs)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(node):
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


@pytest.fixture(scope="session")
def netns_available():
    """Skip (fail under CI=true) where network namespaces cannot be created: not root, no iproute2."""
    require(os.geteuid() == 0, "husk integration tests need root: each stack runs in its own network namespace (ip netns)")
    name = f"husk-probe-{os.getpid()}"
    try:
        r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    except FileNotFoundError:
        r = None
    require(r is not None, "husk integration tests need iproute2 (ip netns)")
    require(r.returncode == 0, f"cannot create a network namespace: ip netns add: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return True


@pytest.fixture
def make_stack(request, tmp_path, netns_available):
    """make_stack(up=True, bin_dir=..., kit_dir=..., api_port=None, log_level=None, timeout=30)
    -> Stack. Every stack made is torn down (down --purge) after the test, newest first."""
    made = []

    def make(up=True, bin_dir=None, kit_dir=None, api_port=None, log_level=None, timeout=30.0, cloud_hypervisor=None):
        # Short: unix socket paths under it must stay below 108 bytes.
        d = tempfile.mkdtemp(prefix="/tmp/hs-")
        s = Stack(d, bin_dir or BUILD / "bin", kit_dir or BUILD / "kit", api_port=api_port, log_level=log_level,
                  cloud_hypervisor=cloud_hypervisor)
        made.append(s)
        if up:
            s.up(timeout=timeout)
        return s

    yield make

    errors = []
    for s in reversed(made):
        try:
            s.down()
        except (StackError, subprocess.TimeoutExpired) as e:
            errors.append(str(e))
        # Every body or call husk sent the cloud-hypervisor double that CH's spec does not allow.
        if s.ch_violations.exists() and s.ch_violations.read_text().strip():
            errors.append(f"husk broke cloud-hypervisor's API contract:\n{s.ch_violations.read_text()}")
        if _failed(request.node) or errors:
            keep = tmp_path / f"husk-logs-{s.dir.name}"
            if s.logs_dir.is_dir():
                shutil.copytree(s.logs_dir, keep, dirs_exist_ok=True)
            for idir in s.instance_dirs():  # console logs and records of the VMs
                dest = keep / "instances" / idir.name
                dest.mkdir(parents=True, exist_ok=True)
                for f in idir.iterdir():
                    if f.is_file() and (f.name.endswith(".log") or ".log." in f.name or f.suffix == ".json"):
                        shutil.copy2(f, dest)
            print(f"\n=== stack {s.dir}: logs kept in {keep}")
            print_log_tails(s)
        try:
            s.down(purge=True)
        except (StackError, subprocess.TimeoutExpired) as e:
            errors.append(str(e))
            shutil.rmtree(s.dir, ignore_errors=True)
    if errors:
        pytest.fail("tearing down husk stacks failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def stack(make_stack):
    """A running husk stack of its own (see husk_stack.Stack)."""
    return make_stack()


@pytest.fixture(params=["qemu", "cloud-hypervisor"])
def runtime_stack(request, make_stack):
    """A running husk stack whose tests deploy with stack.runtime: once with qemu, once with
    cloud-hypervisor (the double in tests/ch_double, which runs the guest in QEMU)."""
    if request.param == "qemu":
        return make_stack()
    require(CH_DOUBLE.is_file(), f"{CH_DOUBLE} is missing")
    s = make_stack(cloud_hypervisor=str(CH_DOUBLE))
    s.runtime = request.param
    return s


@pytest.fixture(scope="session")
def oci_world():
    """A private containerd with a busybox image built by umoci (oci_world.py), shared by every
    husk-oci test of the session: the image and containerd are paid for once."""
    from oci_world import BUSYBOX, RUNC, OciWorld

    require(os.geteuid() == 0, "husk-oci's tests need root (containerd, virtiofsd, QEMU)")
    for tool in ("containerd", "ctr", "umoci"):
        require(shutil.which(tool), f"{tool} is not installed (deploy/install-deps.sh)")
    require(os.access(RUNC, os.X_OK), f"{RUNC} is not installed (deploy/install-deps.sh)")
    require(os.access(BUSYBOX, os.X_OK), f"{BUSYBOX} (busybox-static) is not installed")
    require((BUILD / "bin" / "husk-oci").exists(), "build/bin/husk-oci is not built (make)")
    require((BUILD / "kit" / "vmlinux").exists(), "the guest kit is not built (make guest)")
    if os.environ.get("HUSK_OCI_FAKE_QEMU") != "1":
        initrd = subprocess.run(["sh", "-c", f"zcat {BUILD / 'kit' / 'initrd.gz'} | grep -a -c -F proc.start"],
                                capture_output=True, text=True).stdout.strip()
        require(initrd not in ("", "0"), "the kit's husk-agent does not speak agent protocol 2 (proc.*): make guest")
    world = OciWorld(BUILD)
    try:
        yield world.start()
    finally:
        world.close()
