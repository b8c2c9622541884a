"""Device time of an IREE module's dispatches, apart from the host overhead of calling the module.

At compile time (CPU): iree-compile dumps one benchmark program per dispatch of the problem's module
(`--iree-hal-dump-executable-benchmarks-to`); each is compiled with the module's own flags into
`<module>.dispatches/<nn>_<dispatch>.vmfb`. At run time (GPU): `iree-benchmark-module --batch_size=B` calls
each benchmark function, which records B launches of its dispatch, with an execution barrier between them, into
one command buffer and submits it once; the tool reports the time per launch. The host's submission and
synchronisation are paid once per B launches, so the per-launch time is the dispatch's device time (to within
1/B of one submission). A problem's device time is the sum over its dispatches (IREE lowers conv2d's zero padding
to a dispatch of its own, counted here). Inputs stay in L2 between the back-to-back launches of one dispatch when
they fit, unlike our CUDA rows, whose timing rotates buffers: for layers whose operands fit in L2 this reads low.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from opbench.backends.base import BenchSettings

DUMP_FLAG = "--iree-hal-dump-executable-benchmarks-to"
LAUNCHES_PER_CALL = 100  # B: one host submission per this many launches of the dispatch


def compile_dispatch_benchmarks(*, iree_compile: str, mlir: Path, flags: list[str], out: Path) -> list[Path]:
    """Compile each dispatch of `mlir` (built with `flags`) into its own benchmark module under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opbench-dispatches-") as tmp:
        dumps = Path(tmp)
        subprocess.run(
            [iree_compile, str(mlir), *flags, f"{DUMP_FLAG}={dumps}", "-o", str(dumps / "module.vmfb")], check=True
        )
        sources = sorted(dumps.glob("*_benchmark.mlir"), key=_dispatch_ordinal)
        if not sources:
            raise RuntimeError(f"iree-compile dumped no dispatch benchmarks for {mlir}")
        modules = []
        for i, source in enumerate(sources):
            module = out / f"{i:02d}_{_dispatch_name(source)}.vmfb"
            subprocess.run([iree_compile, str(source), *flags, "-o", str(module)], check=True)
            modules.append(module)
    return modules


def _dispatch_ordinal(source: Path) -> int:
    """module_conv2d_dispatch_1_cuda_nvptx_fb_benchmark.mlir -> 1 (dispatches in program order)."""
    parts = source.name.split("_dispatch_")
    return int(parts[1].split("_")[0]) if len(parts) > 1 else 0


def _dispatch_name(source: Path) -> str:
    """module_conv2d_dispatch_1_cuda_nvptx_fb_benchmark.mlir -> dispatch_1."""
    return f"dispatch_{_dispatch_ordinal(source)}"


def time_dispatches(directory: Path, *, driver: str, settings: BenchSettings) -> dict[str, Any]:
    """Median device time per launch of each dispatch benchmark in `directory`, and their sum, in ms."""
    from opbench.iree_tools import tool

    modules = sorted(directory.glob("*.vmfb"))
    if not modules:
        raise FileNotFoundError(f"no dispatch benchmark modules in {directory}")
    per_dispatch = {}
    for module in modules:
        cmd = [
            tool("iree-benchmark-module"),
            f"--module={module}",
            f"--device={driver}",
            f"--batch_size={LAUNCHES_PER_CALL}",
            f"--benchmark_repetitions={settings.repetitions}",
            f"--benchmark_min_time={settings.min_sample_ms / 1000:.6f}s",
            f"--benchmark_min_warmup_time={settings.warmup_ms / 1000:.6f}",
            "--benchmark_format=json",
        ]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
        samples = parse_benchmark_json(proc.stdout)
        if len(samples) != 1:
            raise RuntimeError(f"{module}: expected one benchmark function, got {sorted(samples)}")
        (values,) = samples.values()
        per_dispatch[module.stem] = {"median_ms": float(np.median(values)), "samples_ms": values}
    return {
        "total_ms": sum(d["median_ms"] for d in per_dispatch.values()),
        "per_dispatch": per_dispatch,
        "method": (
            f"sum over dispatches of iree-benchmark-module --batch_size={LAUNCHES_PER_CALL} per-launch time "
            f"(dispatch benchmarks, one submission per {LAUNCHES_PER_CALL} launches), driver {driver}"
        ),
    }


def parse_benchmark_json(text: str) -> dict[str, list[float]]:
    """Google-benchmark JSON from iree-benchmark-module -> {function: [ms per sample]} (iteration rows only)."""
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    samples: dict[str, list[float]] = {}
    for row in json.loads(text)["benchmarks"]:
        if row.get("run_type") != "iteration":
            continue
        function = row.get("run_name", row["name"]).split("/")[0]
        samples.setdefault(function, []).append(row["real_time"] * scale[row["time_unit"]])
    return samples
