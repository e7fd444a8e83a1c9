#!/usr/bin/python3
"""run.py: `make bench`: run every tests/bench/bench_*.py (or those named on the command line)
and print their results. Each benchmark measures husk against a baseline in the same run and
prints ratios; nothing here asserts a wall-clock limit."""

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv):
    names = argv[1:]
    benches = sorted(HERE.glob("bench_*.py"))
    if names:
        benches = [b for b in benches if b.stem in names or b.stem.removeprefix("bench_") in names]
    failed = []
    for bench in benches:
        print(f"==== {bench.stem} ({bench.relative_to(HERE.parents[1])})", flush=True)
        start = time.monotonic()
        r = subprocess.run([sys.executable, str(bench)], env=os.environ)
        print(f"==== {bench.stem}: {'ok' if r.returncode == 0 else 'FAILED'} "
              f"in {time.monotonic() - start:.1f} s\n", flush=True)
        if r.returncode != 0:
            failed.append(bench.stem)
    if failed:
        print("failed benchmarks: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
