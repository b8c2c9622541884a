"""Nsight Compute's Speed-of-Light of every tuning candidate of a CUDA variant on one ResNet-50 layer.

For kernel development on a GPU machine with `ncu`. The harness is run once in run mode; its variant_prepare launches
every candidate (tile, schedule, epilogue, padding), and ncu profiles the first `--launches` launches of kernels
matching `--kernel`. Printed per kernel instantiation and grid (medians over its launches): duration, SM, memory,
L1/TEX (shared memory included), L2 and DRAM throughput as % of peak, registers per thread. ncu locks the clocks to
base, so durations are longer than the harness's; compare the percentages.

    python3 scripts/ncu_candidates.py --binary compiled/cuda/hopper_wgmma/conv2d_hopper_wgmma \\
        --layer l3_1x1_512_256 --batch 16 --dtype f16 [--kernel hopper_conv_kernel] [--csv-out ncu.csv]
    python3 scripts/ncu_candidates.py --parse ncu.csv     # summarise a CSV that ncu already wrote
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opbench.backends.cuda import random_problem_args  # noqa: E402
from opbench.ops import get_op  # noqa: E402

SECTIONS = ("SpeedOfLight", "LaunchStats")
METRICS = (
    "Duration", "Compute (SM) Throughput", "Memory Throughput", "L1/TEX Cache Throughput", "L2 Cache Throughput",
    "DRAM Throughput", "Registers Per Thread",
)  # fmt: skip
# Raw metrics beside the sections: the bytes per second that L2 serves, and those that reach the SMs' L1/TEX units
# (TMA and cp.async fills included) with their share of that path's peak: whether a kernel is bound by L2 itself or
# by the path from L2 to the SMs.
RAW_METRICS = (
    "lts__t_bytes.sum.per_second", "l1tex__m_xbar2l1tex_read_bytes.sum.per_second",
    "l1tex__m_xbar2l1tex_read_bytes.sum.pct_of_peak_sustained_elapsed",
)  # fmt: skip


def summarise(csv_text: str) -> list[str]:
    """One line per (kernel instantiation, grid): the median of each metric of METRICS and RAW_METRICS over its
    launches."""
    lines = csv_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        raise ValueError('no ncu CSV header (a line starting with "ID") in the output')
    rows = list(csv.reader(lines[start:]))
    header = {name: i for i, name in enumerate(rows[0])}
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    units: dict[str, str] = {}
    for row in rows[1:]:
        if len(row) <= header["Metric Value"]:
            continue
        name = row[header["Kernel Name"]]
        kernel = re.search(r"(\w+<.*>)\(", name)  # the kernel and its template arguments, without the parameters
        key = f"{kernel.group(1) if kernel else name} grid={row[header['Grid Size']]}"
        metric = row[header["Metric Name"]]
        try:
            values[key][metric].append(float(row[header["Metric Value"]].replace(",", "")))
        except ValueError:
            continue
        units[metric] = row[header["Metric Unit"]]
    return [
        f"{key}: "
        + "; ".join(f"{m} {statistics.median(got[m]):.1f} {units[m]}" for m in (*METRICS, *RAW_METRICS) if got.get(m))
        for key, got in values.items()
    ]  # fmt: skip


def profile(binary: Path, layer: dict, batch: int, dtype: str, kernel: str, launches: int) -> str:
    shape = get_op("conv2d").shape_from_layer(layer, batch)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "ncu", *(arg for s in SECTIONS for arg in ("--section", s)), "--metrics", ",".join(RAW_METRICS),
            "-k", f"regex:{kernel}", "--launch-count", str(launches), "--csv",
            str(binary), "--mode", "run", "--dtype", dtype, *random_problem_args(shape, Path(tmp)),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parse", type=Path, help="summarise this ncu CSV instead of profiling")
    parser.add_argument("--binary", type=Path, help="a conv2d_<variant> harness binary")
    parser.add_argument("--layer", help="a ResNet-50 layer name of config.yaml")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dtype", default="f16", choices=("f32", "f16", "bf16"))
    parser.add_argument("--kernel", default="hopper_conv_kernel", help="regex of the kernel names to profile")
    parser.add_argument("--launches", type=int, default=120, help="profile this many matching launches")
    parser.add_argument("--csv-out", type=Path, help="also keep ncu's CSV here")
    args = parser.parse_args()

    if args.parse:
        text = args.parse.read_text()
    else:
        if not (args.binary and args.layer):
            parser.error("--binary and --layer are required unless --parse is given")
        layers = {layer["name"]: layer for layer in yaml.safe_load((REPO / "config.yaml").read_text())["suites"][
            "resnet50"]["layers"]}  # fmt: skip
        if args.layer not in layers:
            parser.error(f"unknown layer {args.layer!r}; known: {', '.join(layers)}")
        text = profile(args.binary, layers[args.layer], args.batch, args.dtype, args.kernel, args.launches)
        if args.csv_out:
            args.csv_out.write_text(text)
    print("\n".join(summarise(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
