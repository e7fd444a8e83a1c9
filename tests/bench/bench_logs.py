#!/usr/bin/python3
"""bench_logs.py: husk-logd. (1) `husk deployment logs --tail 100` over 40 MiB of rotated history
(the default 10 MiB x 3 backups, full) against `tail -n 100` of the same bytes concatenated, and
logd's own logs.query for tail 100 at 4 MiB and at 40 MiB of history (its cost follows N, not the
history). (2) follow latency p50/p99: a line written to an instance's capture file until `husk
deployment logs --follow` prints it, against `tail -F` of the capture file itself, both
attached at once. (3) classifier throughput in MB/s over a corpus of console lines, against
splitting the same bytes into lines alone; and the capture rate of logd (capture file to rotated
store) against copying the same bytes. Nothing is asserted.

The VMM is played by the benchmark (an instance directory and a console.log it writes, opened as
QEMU's `-serial file:` opens it) so that bytes and timing are exact; the scheduler is stopped.

Reproduce: make bench (or: HUSK_BUILD=$PWD/build /usr/bin/python3 tests/bench/bench_logs.py)
Env: BENCH_RUNS (tail runs per side, default 20), BENCH_FOLLOW_LINES (default 300)."""

import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import zmq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from husk_stack import BUILD, Stack, wait_for  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
FOLLOW_LINES = int(os.environ.get("BENCH_FOLLOW_LINES", "300"))
MiB = 1024 * 1024


# Runs inside the stack's namespace (the API listens on its loopback): N GETs, a connection each,
# durations out as JSON. The REST path without a CLI process around it.
HTTP_LOOP = r"""
import http.client, json, sys, time
port, path, n, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = []
for _ in range(n):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse(); data = r.read(); c.close()
    assert r.status == 200 and len(json.loads(data)) == 100, data[:200]
    out.append(time.monotonic() - t0)
print(json.dumps(out))
"""


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ms(s):
    return f"{s * 1000:.2f} ms"


# ---- a corpus of console lines -------------------------------------------------------------------

def corpus_lines(rng):
    """Endless console lines as a kit VM's serial port carries them: kernel, systemd, cloud-init,
    the agent, and a workload's stdout/stderr through the agent's prefixes."""
    t = 0.0
    paths = ["/", "/healthz", "/api/v1/items", "/static/app.js", "/login"]
    while True:
        t += rng.random() / 50
        k = rng.random()
        if k < 0.15:
            yield f"[{t:12.6f}] virtio_blk virtio{rng.randrange(4)}: [vd{'abcd'[rng.randrange(4)]}] 2097152 512-byte logical blocks (1.07 GB/1.00 GiB)"
        elif k < 0.18:
            yield f"[{t:12.6f}] EXT4-fs error (device vda): ext4_find_entry:1455: inode #{rng.randrange(9999)}: comm sh: reading directory lblock 0"
        elif k < 0.25:
            yield f"[\x1b[0;32m  OK  \x1b[0m] Started {rng.choice(['Journal Service', 'Network Service', 'OpenSSH Daemon'])}."
        elif k < 0.27:
            yield "[\x1b[0;1;31mFAILED\x1b[0m] Failed to start Network Time Synchronization."
        elif k < 0.35:
            yield f"2026-11-22 05:30:{int(t) % 60:02d},{rng.randrange(1000):03d} - util.py[WARNING]: Failed to get raw userdata in module rightscale_userdata"
        elif k < 0.40:
            yield f"husk-agent: exec {rng.randrange(99999)} finished with status 0"
        elif k < 0.80:
            yield (f"husk-workload: 10.42.0.1 - - [22/Nov/2026:05:30:{int(t) % 60:02d} +0000] \"GET {rng.choice(paths)} "
                   f"HTTP/1.1\" 200 {rng.randrange(100000)} \"-\" \"curl/7.88.1\"")
        elif k < 0.95:
            yield (f"husk-workload: {{\"level\":\"{rng.choice(['info', 'debug', 'warn', 'error'])}\",\"msg\":\"request served\","
                   f"\"status\":200,\"duration_ms\":{rng.randrange(50)}}}")
        else:
            yield f"husk-workload-err: WARNING: cache miss ratio 0.{rng.randrange(99):02d}"


def make_corpus(path, size):
    rng = random.Random(42)
    n = 0
    with open(path, "wb") as f:
        for line in corpus_lines(rng):
            b = (line + "\r\n").encode()
            f.write(b)
            n += len(b)
            if n >= size:
                return n


# ---- (3) the classifier ----------------------------------------------------------------------------

def bench_classifier(tmp, corpus):
    exe = Path(tmp) / "bench_logs_classify"
    cflags = subprocess.run(["pkg-config", "--cflags", "libczmq", "msgpack"], capture_output=True, text=True,
                            check=True).stdout.split()
    subprocess.run(["cc", "-std=gnu11", "-D_GNU_SOURCE", "-O2", "-I", str(REPO), *cflags, "-o", str(exe),
                    str(REPO / "tests/bench/bench_logs_classify.c"), str(REPO / "services/logd/logd_level.c"),
                    str(REPO / "services/logd/logd_line.c")], check=True)
    r = json.loads(subprocess.run([str(exe), str(corpus), "5"], capture_output=True, text=True, check=True).stdout)
    print(f"classifier: {r['bytes'] / MiB:.0f} MiB, {r['lines']} console lines, levels {r['levels']}")
    print(f"  split into lines only (baseline)  {r['split_mb_s']:8.0f} MB/s")
    print(f"  classify                          {r['classify_mb_s']:8.0f} MB/s   "
          f"({r['split_mb_s'] / r['classify_mb_s']:.1f}x the baseline's time)")
    print(f"  clean + classify + record         {r['pipeline_mb_s']:8.0f} MB/s   "
          f"({r['split_mb_s'] / r['pipeline_mb_s']:.1f}x the baseline's time)")
    print(f"  reproduce: cc -O2 -I. $(pkg-config --cflags libczmq msgpack) tests/bench/bench_logs_classify.c "
          f"services/logd/logd_level.c services/logd/logd_line.c && ./a.out CORPUS 5")


# ---- the stack side ----------------------------------------------------------------------------------

class FakeVM:
    def __init__(self, stack, dep_id):
        self.id = secrets.token_hex(6)
        self.dir = stack.instances_dir / self.id
        self.dir.mkdir(mode=0o700, parents=True)
        (self.dir / "instance.json").write_text(json.dumps(
            {"instance_id": self.id, "deployment_id": dep_id, "runtime": "qemu", "state": "running"}))
        # As QEMU's -serial file: opens it.
        self.fd = os.open(self.dir / "console.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def write(self, data):
        while data:
            n = os.write(self.fd, data)
            data = data[n:]


def logd_query(stack, args, timeout=10000):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"ipc://{stack.dir}/run/logd.requests")
    try:
        s.send_multipart([b"", b"logs.query", msgpack.packb(
            {"id": 1, "deadline": int(time.time() * 1000) + timeout, "args": args})])
        if not s.poll(timeout):
            raise TimeoutError("logs.query: no answer")
        _, _, body = s.recv_multipart()
        r = msgpack.unpackb(body, raw=False)
        if "error" in r:
            raise RuntimeError(r["error"])
        return r["result"]
    finally:
        s.close()


def time_query(stack, args, runs):
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        logd_query(stack, args)
        out.append(time.monotonic() - t0)
    return out


def husk(stack, *args, **kw):
    # nsenter, not `husk-stack exec`: the measurement is husk's, not the dev tool's.
    return subprocess.run(["nsenter", f"--net=/run/netns/{stack.netns}", str(stack.bin_dir / "husk"),
                           "--host", stack.host, "--token", stack.token, *args], **kw)


def consumed(stack, dep):
    """The newest stored line's seq: how far logd consumed the capture file."""
    es = logd_query(stack, {"deployment_id": dep, "tail": 1})["entries"]
    return es[-1]["seq"] if es else 0


def history_bytes(files):
    return sum(f.stat().st_size for f in files if f.exists())


def bench_tail_and_capture(stack, dep, tmp, corpus):
    vm = FakeVM(stack, dep)
    data = Path(corpus).read_bytes()
    chunk = MiB
    # The first 4 MiB: logs.query tail 100 with that much history, to compare with 40 MiB.
    vm.write(data[:4 * MiB])
    wait_for(lambda: consumed(stack, dep) >= 4 * MiB - 200, timeout=60)
    small = time_query(stack, {"deployment_id": dep, "tail": 100}, RUNS * 2)
    # The rest as fast as a VMM could write it: the capture rate.
    written = 4 * MiB
    t0 = time.monotonic()
    while written < len(data):
        vm.write(data[written:written + chunk])
        written += chunk
    wait_for(lambda: consumed(stack, dep) == len(data), timeout=300, interval=0.01, what="logd to catch up")
    capture = time.monotonic() - t0
    captured = len(data) - 4 * MiB
    copy_path = Path(tmp) / "copy"
    t1 = time.monotonic()
    shutil.copyfile(corpus, copy_path)
    with open(copy_path, "rb+") as f:
        os.fsync(f.fileno())
    copy = time.monotonic() - t1
    copy_path.unlink()

    store = stack.state_dir / "logs" / "deployments" / dep / vm.id
    files = [store / "console.log.3", store / "console.log.2", store / "console.log.1", store / "console.log"]
    # Top the live file up to a full 40 MiB of history (just short of the next rotation).
    top, total = 0, len(data)
    while history_bytes(files) < 39.5 * MiB:
        piece = data[top:data.index(b"\n", top + 256 * 1024) + 1]
        vm.write(piece)
        top += len(piece)
        total += len(piece)
        wait_for(lambda: consumed(stack, dep) == total, timeout=60, interval=0.01)
    history = history_bytes(files)
    print(f"capture: {captured / MiB:.0f} MiB written to console.log in 1 MiB writes, stored in "
          f"{capture:.2f} s = {captured / capture / 1e6:.0f} MB/s (classified, rotated, holes punched); "
          f"copying the corpus (cp + fsync): {len(data) / copy / 1e6:.0f} MB/s "
          f"({(capture / captured) / (copy / len(data)):.1f}x its time per byte)")
    print(f"store: {history / MiB:.1f} MiB of rotated history in {sum(1 for f in files if f.exists())} files "
          f"(console.log.3 .. console.log); capture file allocated "
          f"{os.stat(vm.dir / 'console.log').st_blocks * 512 / 1024:.0f} KiB of {total / MiB:.0f} MiB written")

    # (1) --tail 100: the CLI (a process, HTTP, apiserver, logd) against tail(1) on the same bytes.
    concat = Path(tmp) / "history.log"
    with open(concat, "wb") as out:
        for f in files:
            if f.exists():
                out.write(f.read_bytes())
    ours, theirs = [], []
    for _ in range(RUNS):  # alternating: machine noise hits both alike
        t = time.monotonic()
        r = husk(stack, "deployment", "logs", dep, "--tail", "100", stdout=subprocess.PIPE, check=True)
        ours.append(time.monotonic() - t)
        assert r.stdout.count(b"\n") == 100
        t = time.monotonic()
        r = subprocess.run(["tail", "-n", "100", str(concat)], stdout=subprocess.PIPE, check=True)
        theirs.append(time.monotonic() - t)
        assert r.stdout.count(b"\n") == 100
    big = time_query(stack, {"deployment_id": dep, "tail": 100}, RUNS * 2)
    rest = json.loads(subprocess.run(["nsenter", f"--net=/run/netns/{stack.netns}", sys.executable, "-c", HTTP_LOOP,
                                      str(stack.port), f"/deployments/{dep}/logs?tail=100", str(RUNS * 2), stack.token],
                                     capture_output=True, text=True, check=True).stdout)
    startup = []
    for _ in range(RUNS):
        t = time.monotonic()
        subprocess.run([str(stack.bin_dir / "husk"), "--version"], stdout=subprocess.DEVNULL, check=True)
        startup.append(time.monotonic() - t)
    print(f"--tail 100 over {history / MiB:.0f} MiB of rotated history:")
    print(f"  husk deployment logs --tail 100     p50 {ms(pct(ours, 50))}  p99 {ms(pct(ours, 99))}")
    print(f"  tail -n 100 (same bytes, one file)  p50 {ms(pct(theirs, 50))}  p99 {ms(pct(theirs, 99))}")
    print(f"  ratio husk/tail (p50)               {pct(ours, 50) / pct(theirs, 50):.2f}x")
    print(f"  husk --version (the CLI starting alone, for scale) p50 {ms(pct(startup, 50))}")
    print(f"  GET /deployments/ID/logs?tail=100   p50 {ms(pct(rest, 50))}  p99 {ms(pct(rest, 99))}  "
          f"(REST alone: {pct(rest, 50) / pct(theirs, 50):.2f}x tail's time)")
    print(f"  logd's logs.query tail=100 alone    p50 {ms(pct(big, 50))} at {history / MiB:.0f} MiB, "
          f"p50 {ms(pct(small, 50))} at 4 MiB ({pct(big, 50) / pct(small, 50):.2f}x for 10x the history)")
    print(f"  reproduce: husk deployment logs {dep} --tail 100  vs  tail -n 100 {concat.name}")
    return vm


def bench_follow(stack, dep, vm):
    # Both followers attached before the first line: husk's (the CLI, --tail 0) and tail -F.
    arrivals = {"husk": {}, "tail": {}}
    p_husk = subprocess.Popen(["nsenter", f"--net=/run/netns/{stack.netns}", str(stack.bin_dir / "husk"),
                               "--host", stack.host, "--token", stack.token, "deployment", "logs", dep, "--follow", "--tail", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p_tail = subprocess.Popen(["tail", "-F", "-n", "0", str(vm.dir / "console.log")], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)

    def read(name, proc):
        for line in proc.stdout:
            now = time.monotonic()
            w = line.split()
            if len(w) == 2 and w[0] == b"lat":
                arrivals[name].setdefault(int(w[1]), now)

    threads = [threading.Thread(target=read, args=(n, p), daemon=True)
               for n, p in (("husk", p_husk), ("tail", p_tail))]
    for t in threads:
        t.start()
    try:
        # Warm-up until both see lines (the follower's subscription, tail's inotify watch).
        k = 0
        while not (arrivals["husk"] and arrivals["tail"]):
            vm.write(f"warm {k}\r\n".encode())
            vm.write(f"lat {-1 - k}\r\n".encode())
            k += 1
            time.sleep(0.05)
            if k > 400:
                raise TimeoutError("followers did not start")
        written = {}
        for i in range(FOLLOW_LINES):
            written[i] = time.monotonic()
            vm.write(f"lat {i}\r\n".encode())
            time.sleep(0.01 + random.random() * 0.01)
        wait_for(lambda: all(i in arrivals[n] for n in arrivals for i in written), timeout=30,
                 what="every line at both followers")
    finally:
        for p in (p_husk, p_tail):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    lat = {n: [arrivals[n][i] - written[i] for i in written] for n in arrivals}
    print(f"follow latency, {FOLLOW_LINES} lines written 10-20 ms apart, both followers attached:")
    print(f"  husk deployment logs --follow       p50 {ms(pct(lat['husk'], 50))}  p99 {ms(pct(lat['husk'], 99))}  "
          f"max {ms(max(lat['husk']))}")
    print(f"  tail -F console.log (baseline)      p50 {ms(pct(lat['tail'], 50))}  p99 {ms(pct(lat['tail'], 99))}")
    print(f"  ratio husk/tail (p50)               {pct(lat['husk'], 50) / pct(lat['tail'], 50):.2f}x   "
          f"(Ring polls every 500 ms / 2 s)")
    print(f"  reproduce: husk deployment logs {dep} --follow --tail 0  vs  tail -F console.log")


def main():
    with tempfile.TemporaryDirectory(prefix="/tmp/hb-") as tmp:
        corpus = Path(tmp) / "corpus.log"
        make_corpus(corpus, 44 * MiB)  # 40 MiB stay: 10 MiB x (3 backups + the live file)
        bench_classifier(tmp, corpus)
        print()
        stack = Stack(tmp + "/s", BUILD / "bin", BUILD / "kit", log_level="warning")
        stack.up()
        try:
            stack.kill_daemon("scheduler", signal.SIGTERM)  # no real VM: the benchmark is the VMM
            r = husk(stack, "apply", "-f", "-", check=True, stdout=subprocess.PIPE, input=(
                "deployments:\n  logbench:\n    name: logbench\n    runtime: qemu\n"
                f"    image: {stack.kit_dir}/rootfs/hello\n").encode())
            dep = json.loads(husk(stack, "deployment", "inspect", "logbench", "-o", "json", check=True,
                                  stdout=subprocess.PIPE).stdout)["id"]
            vm = bench_tail_and_capture(stack, dep, tmp, corpus)
            print()
            bench_follow(stack, dep, vm)
        finally:
            stack.down(purge=True)


if __name__ == "__main__":
    main()
