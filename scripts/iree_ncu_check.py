"""Cross-check the device time the workflow records for IREE dispatches against Nsight Compute's kernel duration.

For each dispatch benchmark module of a problem (compiled/iree-cuda/<variant>/.../<shape>.dispatches/), time it as
the benchmark jobs do (opbench.iree_dispatch.time_dispatches: iree-benchmark-module, 100 launches a submission)
and profile 10 launches of it under ncu (gpu__time_duration.sum per kernel, each launch replayed alone), then
print both and their ratio. Exits 1 if any dispatch's two times differ by more than --max-diff (default 10%).
Run on a GPU machine with ncu on PATH:
    python scripts/iree_ncu_check.py compiled/iree-cuda/tuned/conv2d/nhwc_fhwc/f16/<shape>.dispatches
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opbench.backends import BenchSettings
from opbench.backends.iree.dispatch import time_dispatches
from opbench.iree_tools import tool

NCU_LAUNCHES = 10
_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}


def ncu_durations_ms(module: Path, driver: str) -> tuple[list[float], str]:
    """Kernel durations (ms) of NCU_LAUNCHES launches of the module's dispatch, and ncu's raw CSV."""
    cmd = [
        # the benchmark runs at the card's own clocks with the operands warm in L2: ncu likewise
        "ncu", "--clock-control", "none", "--cache-control", "none",
        "--metrics", "gpu__time_duration.sum", "--csv", "--launch-count", str(NCU_LAUNCHES),
        tool("iree-benchmark-module"), f"--module={module}", f"--device={driver}", f"--batch_size={NCU_LAUNCHES}",
        "--benchmark_repetitions=1", "--benchmark_min_time=0.000001s",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    header = proc.stdout.find('"ID"')
    if header < 0:
        raise RuntimeError(f"no CSV from ncu for {module}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rows = [
        r for r in csv.DictReader(io.StringIO(proc.stdout[header:])) if r["Metric Name"] == "gpu__time_duration.sum"
    ]
    values = [float(r["Metric Value"].replace(",", "")) * _NS[r["Metric Unit"]] / 1e6 for r in rows]
    return values, proc.stdout[header:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dispatches", type=Path, help="a .dispatches folder of compiled dispatch benchmark modules")
    parser.add_argument("--driver", default="cuda")
    parser.add_argument("--max-diff", type=float, default=0.10)
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    a = parser.parse_args()
    settings = BenchSettings(warmup_ms=20, repetitions=5, min_sample_ms=20, flush_l2=False)
    timed = time_dispatches(a.dispatches, driver=a.driver, settings=settings)["per_dispatch"]
    report, worst = {}, 0.0
    for module in sorted(a.dispatches.glob("*.vmfb")):
        ncu_ms, raw = ncu_durations_ms(module, a.driver)
        bench_ms = timed[module.stem]["median_ms"]
        ratio = bench_ms / float(np.median(ncu_ms))
        worst = max(worst, abs(ratio - 1))
        report[module.stem] = {"benchmark_ms": bench_ms, "ncu_ms": ncu_ms, "ratio": ratio, "ncu_csv": raw}
        print(f"{module.stem}: iree-benchmark-module {bench_ms * 1e3:.1f} us, ncu median "
              f"{np.median(ncu_ms) * 1e3:.1f} us over {len(ncu_ms)} launches, ratio {ratio:.3f}")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    print(f"largest difference {worst:.1%} (limit {a.max_diff:.0%})")
    return 0 if worst <= a.max_diff else 1


if __name__ == "__main__":
    sys.exit(main())
