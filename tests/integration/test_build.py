"""test_build.py: what the build promises about its binaries, read from the ELF files
themselves: each links only the libraries it uses, every one is hardened (PIE, full RELRO,
stack protector, FORTIFY), every --version prints the VERSION file, and `husk tap` still
reaches the bus through the module it opens (the CLI itself links no czmq).

No daemons, no namespace: `husk tap` subscribes to a publisher on an ipc:// socket file in a
temp dir. Needs readelf (binutils)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from husk_stack import BUILD, REPO  # noqa: E402

BIN = BUILD / "bin"
DAEMONS = ["apiserver", "scheduler", "vmm-driver", "netd", "logd"]


def readelf(flag, path):
    return subprocess.run(["readelf", "-W", flag, str(path)], check=True, capture_output=True, text=True).stdout


def needed(path):
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", path)))


def stem(lib):
    return lib.split(".so")[0]


def test_each_binary_links_only_what_it_uses():
    cli = {stem(x) for x in needed(BIN / "husk")}
    assert not cli & {"libczmq", "libzmq", "libsystemd", "libsqlite3", "libcivetweb", "libnftables"}, cli
    assert "libcurl" in cli
    for d in DAEMONS:
        libs = {stem(x) for x in needed(BIN / f"husk-{d}")}
        # Only vmm-driver (cloud-hypervisor's API socket) and apiserver (webhook deliveries) talk HTTP.
        assert ("libcurl" in libs) == (d in ("vmm-driver", "apiserver")), (d, libs)
        assert ("libsqlite3" in libs) == (d == "apiserver") and ("libcivetweb" in libs) == (d == "apiserver"), (d, libs)
        assert ("libnftables" in libs) == (d == "netd"), (d, libs)
    assert needed(BIN / "husk-agent") == set()  # static


@pytest.mark.parametrize("name", ["husk", "husk-agent"] + [f"husk-{d}" for d in DAEMONS])
def test_binaries_are_hardened(name):
    path = BIN / name
    header, dynamic, segments = readelf("-h", path), readelf("-d", path), readelf("-l", path)
    assert re.search(r"Type:\s+DYN", header), f"{name} is not PIE"
    assert "GNU_RELRO" in segments and re.search(r"\(FLAGS\).*\bBIND_NOW\b", dynamic), f"{name}: no full RELRO"
    if name == "husk-agent":
        assert "INTERP" not in segments, "husk-agent must stay static (static-pie)"
        symbols = readelf("-s", path)
        assert "__stack_chk_fail" in symbols and re.search(r"__\w+_chk\b", symbols.replace("__stack_chk_fail", ""))
        return
    symbols = readelf("--dyn-syms", path)
    assert "__stack_chk_fail" in symbols, f"{name}: no stack protector"
    assert re.search(r"__\w+_chk\b", symbols.replace("__stack_chk_fail", "")), f"{name}: no FORTIFY"


def test_every_version_comes_from_the_version_file():
    version = (REPO / "VERSION").read_text().strip()
    for name in ["husk", "husk-agent"] + [f"husk-{d}" for d in DAEMONS]:
        out = subprocess.run([str(BIN / name), "--version"], check=True, capture_output=True, text=True).stdout
        assert out.split()[:2] == [name, version], (name, out)


def test_tap_receives_events_through_its_bus_module(tmp_path):
    endpoint = f"ipc://{tmp_path}/apiserver.events"
    config = tmp_path / "config.yaml"
    config.write_text(f"runtime_dir: {tmp_path}\nstate_dir: {tmp_path}\nbus:\n  apiserver:\n    events: {endpoint}\n")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(endpoint)
    tap = subprocess.Popen([str(BIN / "husk"), "--config", str(config), "tap", "instance.*", "--count", "1",
                            "--timeout", "20s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # A SUB connects asynchronously: publish until the tap has printed one (it exits then).
        deadline = time.monotonic() + 20
        while tap.poll() is None and time.monotonic() < deadline:
            pub.send_multipart([b"instance.exited", msgpack.packb({"instance_id": "abc", "code": 3})])
            time.sleep(0.02)
        out, err = tap.communicate(timeout=5)
    finally:
        if tap.poll() is None:
            tap.kill()
            tap.wait()
        pub.close(0)
        ctx.term()
    assert tap.returncode == 0, err
    assert re.search(r' instance\.exited \{"instance_id":\s*"abc",\s*"code":\s*3\}$', out.strip()), out


def test_build_dir_spelled_absolute_finds_the_same_objects():
    """After `make`, `make BUILD=<absolute path>` (test_systemd's make install) has nothing to do.
    It once compiled the generated tables again under build/obj/<absolute path> and relinked
    every binary, so a test running side by side found build/bin/husk-netd missing."""
    for spelling in {str(BUILD), os.path.relpath(BUILD, REPO)}:
        r = subprocess.run(["make", "-q", "-C", str(REPO), f"BUILD={spelling}", "all", "guest"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"make BUILD={spelling} all guest would rebuild:\n{r.stdout}{r.stderr}"


def test_a_crashing_fuzzer_fails_make_fuzz(tmp_path):
    """make check's fuzz step fails when a fuzzer fails, and says which. It once piped each
    fuzzer into `tail -3`, whose status hid every crash. A stand-in fuzzer that exits 1 (as
    libFuzzer does on a crash) and one that succeeds, run by the Makefile's own rule."""
    crashing, fine = tmp_path / "fuzz_crashing", tmp_path / "fuzz_fine"
    crashing.write_text("#!/bin/sh\necho '==1== ERROR: libFuzzer: deadly signal'\nexit 1\n")
    fine.write_text("#!/bin/sh\necho 'Done 1000 runs in 1 second(s)'\n")
    for f in (crashing, fine):
        f.chmod(0o755)
    r = subprocess.run(["make", "-C", str(REPO), "-k", f"FUZZ_BINS={crashing} {fine}", "FUZZ_SECONDS=1", "fuzz"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "fuzz_crashing: FAILED" in r.stdout and "deadly signal" in r.stdout, r.stdout
    assert "== fuzz_fine (1s): Done 1000 runs" in r.stdout, r.stdout
