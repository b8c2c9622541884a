"""compute-sanitizer over a CUDA variant's harness binary, every tuning candidate included.

For kernel development on a GPU machine. The harness runs once per (tool, shape, dtype) in run mode, where the
variant's `variant_prepare` launches and cross-checks every tuning candidate (tile widths, schedules, epilogues,
padded paths), so the sanitizer sees all of them, not only the chosen one. The default shapes are chosen to reach
the unusual paths: a 7x7x512 3x3 layer at batch 6 (3 M tiles, so stream-K cuts every tile between several blocks),
a 1x1 28x28 layer, and a C = 3 7x7 stride-2 stem (the gather and channel-padded paths). Prints one line per run with
the sanitizer's error count; exits 1 if any run reports an error or fails.

    python3 scripts/sanitize_variant.py --binary compiled/cuda/hopper_wgmma/conv2d_hopper_wgmma \\
        [--tools memcheck,synccheck] [--dtypes f16,f32] [--shapes n6_h7_w7_c512_k512_r3_s3_st1_p1,...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opbench.backends.cuda import random_problem_args  # noqa: E402
from opbench.ops import get_op  # noqa: E402

DEFAULT_SHAPES = (
    "n6_h7_w7_c512_k512_r3_s3_st1_p1",
    "n2_h28_w28_c128_k256_r1_s1_st1_p0",
    "n1_h30_w30_c3_k64_r7_s7_st2_p3",
)
_SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) error")


def error_count(output: str) -> int | None:
    """The error count of compute-sanitizer's `ERROR SUMMARY` line, or None when the output has none."""
    found = _SUMMARY.findall(output)
    return int(found[-1]) if found else None


def sanitize(binary: Path, tool: str, shape_name: str, dtype: str) -> tuple[int | None, str]:
    """One run of the harness under `compute-sanitizer --tool TOOL`: (error count or None, the output's tail)."""
    shape = get_op("conv2d").shape_from_name(shape_name)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "compute-sanitizer", "--tool", tool, "--print-limit", "5", str(binary), "--mode", "run", "--dtype", dtype,
            *random_problem_args(shape, Path(tmp)),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    errors = error_count(output)
    if proc.returncode != 0 and errors == 0:
        errors = None  # the harness itself failed under a clean sanitizer
    return errors, output[-1500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, required=True, help="a conv2d_<variant> harness binary")
    parser.add_argument("--tools", default="memcheck,synccheck", help="compute-sanitizer tools, comma-separated")
    parser.add_argument("--dtypes", default="f16,f32", help="harness dtypes, comma-separated")
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help="shape names, comma-separated")
    args = parser.parse_args()

    failed = False
    for tool in args.tools.split(","):
        for dtype in args.dtypes.split(","):
            for shape in args.shapes.split(","):
                errors, tail = sanitize(args.binary, tool, shape, dtype)
                print(f"{tool:10s} {dtype:5s} {shape:36s} "
                      f"{'run failed' if errors is None else f'{errors} errors'}", flush=True)  # fmt: skip
                if errors != 0:
                    failed = True
                    print(tail, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
