"""How long Snakemake takes to decide that an up-to-date matrix has nothing to do.

Run from the repo root after a complete `make bench` (or pass --configfile of a finished run):
    .venv/bin/python benchmarks/dryrun_time.py [--configfile FILE] [--repeats 5]
Prints the matrix's job count (a forced dry run) and the median wall time of plain dry runs, each of which must
report "Nothing to be done". Target: under 5 s for a matrix of at least 500 jobs on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time


def snakemake(*args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--dry-run", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return proc.stdout + proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    a = parser.parse_args()
    extra = ["--configfile", a.configfile] if a.configfile else []
    total = int(re.search(r"^total\s+(\d+)", snakemake("--forceall", *extra), re.MULTILINE).group(1))
    times = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        out = snakemake(*extra)
        times.append(time.perf_counter() - start)
        if "Nothing to be done" not in out:
            print(f"the tree is not up to date; run `make bench` first:\n{out[-2000:]}", file=sys.stderr)
            return 1
    print(json.dumps({"jobs": total, "median_s": round(statistics.median(times), 2),
                      "times_s": [round(t, 2) for t in times]}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
