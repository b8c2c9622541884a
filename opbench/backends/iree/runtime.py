"""Running and timing a compiled module's function with IREE's runtime tools (iree-run-module and
iree-benchmark-module). Phases (opbench.phases, in the job's recording): `iree_inputs` (the inputs written for the
tool), `iree_tool` (the tool's process), `iree_output` (its output read)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from opbench import phases
from opbench.backends.base import BenchSettings
from opbench.dtypes import DType
from opbench.iree_tools import tool


def _input_flags(inputs: list[np.ndarray], dtype: DType, workdir: Path) -> list[str]:
    """Write each input as raw bytes of the op's element type (npy has no bfloat16) and name it for IREE."""
    flags = []
    for i, array in enumerate(inputs):
        path = workdir / f"input{i}.bin"
        np.ascontiguousarray(array.astype(dtype.numpy)).tofile(path)
        dims = "x".join(str(d) for d in array.shape)
        flags.append(f"--input={dims}x{dtype.element}=@{path}")
    return flags


def run_module(
    *, module: Path, function: str, driver: str, inputs: list[np.ndarray], dtype: DType, output_shape: Sequence[int]
) -> np.ndarray:
    """Run one call with iree-run-module and return its (single) result, of the op's element type (the generated
    programs return it: opbench.mlirgen) and the given shape.

    The result is read as raw bytes: iree-run-module writes no bfloat16 .npy. A result of another size (another
    shape or element type) is an error.
    """
    with tempfile.TemporaryDirectory(prefix="opbench-iree-") as tmp:
        workdir = Path(tmp)
        out = workdir / "output.bin"
        with phases.span("iree_inputs"):
            flags = _input_flags(inputs, dtype, workdir)
        cmd = [
            tool("iree-run-module"),
            f"--module={module}",
            f"--function={function}",
            f"--device={driver}",
            *flags,
            f"--output=@{out}",
        ]
        with phases.span("iree_tool"):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with phases.span("iree_output"):
            raw = out.read_bytes()
    shape = tuple(int(d) for d in output_shape)
    want = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != want:
        raise RuntimeError(
            f"{module}: @{function} returned {len(raw)} bytes, expected {want} "
            f"({'x'.join(map(str, shape))}x{dtype.element})"
        )
    return np.frombuffer(raw, dtype=dtype.numpy).reshape(shape).copy()


def benchmark_module(
    *,
    module: Path,
    function: str,
    driver: str,
    inputs: list[np.ndarray],
    dtype: DType,
    settings: BenchSettings,
) -> dict[str, Any]:
    """Time the function with iree-benchmark-module; one sample per repetition, in ms per call.

    Each repetition runs calls back to back for at least min_sample_ms. The time is per call as the host sees
    it (submission and synchronisation included); on llvm-cpu that host time is the device time.
    """
    with tempfile.TemporaryDirectory(prefix="opbench-iree-") as tmp:
        with phases.span("iree_inputs"):
            flags = _input_flags(inputs, dtype, Path(tmp))
        cmd = [
            tool("iree-benchmark-module"),
            f"--module={module}",
            f"--function={function}",
            f"--device={driver}",
            *flags,
            f"--benchmark_repetitions={settings.repetitions}",
            f"--benchmark_min_time={settings.min_sample_ms / 1000:.6f}s",
            f"--benchmark_min_warmup_time={settings.warmup_ms / 1000:.6f}",
            "--benchmark_format=json",
        ]
        with phases.span("iree_tool"):
            proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = json.loads(proc.stdout)
    runs = [b for b in report["benchmarks"] if b.get("run_type") == "iteration"]
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    return {
        "samples_ms": [b["real_time"] * scale[b["time_unit"]] for b in runs],
        "iterations_per_sample": [b["iterations"] for b in runs],
        "method": f"iree-benchmark-module wall time per call, driver {driver}",
    }
