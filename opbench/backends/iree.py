"""IREE backends: iree-compile to a .vmfb per (variant, problem), run and timed through IREE's own tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from opbench import hardware
from opbench.backends import Backend, BenchSettings, Job, register_backend
from opbench.dtypes import DType


class IreeBackend(Backend):
    artifact: ClassVar[str] = "vmfb"
    default_driver: ClassVar[str]
    default_target: ClassVar[str]

    def supports(self, op: str, dtype: DType, layout: str, variant: str) -> bool:
        return True  # every op is a linalg program; iree-compile says what it cannot lower

    @staticmethod
    def target_flags(target: str) -> list[str]:
        raise NotImplementedError

    def variant_flags(self, settings: dict[str, Any], variant: str) -> list[str]:
        return list(settings["variants"][variant])

    def compile_flags(self, settings: dict[str, Any], variant: str) -> list[str]:
        """Everything after the input file on the iree-compile command line, in order."""
        target = settings.get("target", self.default_target)
        return [
            *self.target_flags(target),
            *settings.get("compile_flags", []),
            *self.variant_flags(settings, variant),
        ]

    def driver(self, settings: dict[str, Any]) -> str:
        return settings.get("driver", self.default_driver)

    def run(self, job: Job) -> np.ndarray:
        return run_module(
            module=_artifact(job), function=job.op, driver=job.options["driver"],
            inputs=list(job.inputs.values()), dtype=job.dtype,
        )  # fmt: skip

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        result = benchmark_module(
            module=_artifact(job), function=job.op, driver=job.options["driver"],
            inputs=list(job.inputs.values()), dtype=job.dtype, settings=settings,
        )  # fmt: skip
        result["device"] = hardware.device_name(self.device)
        return result


def _artifact(job: Job) -> Path:
    if job.artifact is None:
        raise ValueError("IREE backends run a compiled .vmfb: no artifact given")
    return job.artifact


@register_backend
class IreeLlvmCpu(IreeBackend):
    name = "iree-llvm-cpu"
    device = "cpu"
    default_driver = "local-task"
    default_target = "host"

    @staticmethod
    def target_flags(target: str) -> list[str]:
        return [
            "--iree-hal-target-device=local",
            "--iree-hal-local-target-device-backends=llvm-cpu",
            f"--iree-llvmcpu-target-cpu={target}",
        ]


@register_backend
class IreeCuda(IreeBackend):
    name = "iree-cuda"
    device = "cuda"
    default_driver = "cuda"
    default_target = "sm_80"  # IREE 3.13 has no sm_90: the driver JIT-compiles sm_80 PTX on Hopper

    @staticmethod
    def target_flags(target: str) -> list[str]:
        return ["--iree-hal-target-device=cuda", f"--iree-cuda-target={target}"]


@register_backend
class IreeRocm(IreeBackend):
    name = "iree-rocm"
    device = "rocm"
    default_driver = "hip"
    default_target = "gfx942"

    @staticmethod
    def target_flags(target: str) -> list[str]:
        return ["--iree-hal-target-device=hip", f"--iree-rocm-target={target}"]


@register_backend
class IreeVulkanSpirv(IreeBackend):
    name = "iree-vulkan-spirv"
    device = "vulkan"
    default_driver = "vulkan"
    default_target = "rdna3"

    @staticmethod
    def target_flags(target: str) -> list[str]:
        return ["--iree-hal-target-device=vulkan", f"--iree-vulkan-target={target}"]


def tool(name: str) -> str:
    """Path of an IREE command-line tool: $IREE_COMPILE (etc., the name in capitals) where set, else on PATH,
    beside this Python (a venv not activated), else in the wheel."""
    override = os.environ.get(name.upper().replace("-", "_"))
    if override is not None:
        found = shutil.which(override)
        if not found:
            raise FileNotFoundError(f"{name}: ${name.upper().replace('-', '_')}={override!r} is not an executable")
        return found
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    if name == "iree-compile":
        from iree.compiler.tools.binaries import find_tool  # type: ignore[import-not-found]

        return find_tool(name)
    import iree.runtime  # type: ignore[import-not-found]

    candidate = Path(iree.runtime.__file__).parent.parent / "_runtime_libs" / name
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(f"{name} not found on PATH or in the iree-base-runtime wheel")


def _input_flags(inputs: list[np.ndarray], dtype: DType, workdir: Path) -> list[str]:
    """Write each input as raw bytes of the op's element type (npy has no bfloat16) and name it for IREE."""
    flags = []
    for i, array in enumerate(inputs):
        path = workdir / f"input{i}.bin"
        np.ascontiguousarray(array.astype(dtype.numpy)).tofile(path)
        dims = "x".join(str(d) for d in array.shape)
        flags.append(f"--input={dims}x{dtype.element}=@{path}")
    return flags


def run_module(*, module: Path, function: str, driver: str, inputs: list[np.ndarray], dtype: DType) -> np.ndarray:
    """Run one call with iree-run-module and return its (single) result."""
    with tempfile.TemporaryDirectory(prefix="opbench-iree-") as tmp:
        workdir = Path(tmp)
        out = workdir / "output.npy"
        cmd = [
            tool("iree-run-module"),
            f"--module={module}",
            f"--function={function}",
            f"--device={driver}",
            *_input_flags(inputs, dtype, workdir),
            f"--output=@{out}",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return np.load(out)


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
        cmd = [
            tool("iree-benchmark-module"),
            f"--module={module}",
            f"--function={function}",
            f"--device={driver}",
            *_input_flags(inputs, dtype, Path(tmp)),
            f"--benchmark_repetitions={settings.repetitions}",
            f"--benchmark_min_time={settings.min_sample_ms / 1000:.6f}s",
            f"--benchmark_min_warmup_time={settings.warmup_ms / 1000:.6f}",
            "--benchmark_format=json",
        ]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = json.loads(proc.stdout)
    runs = [b for b in report["benchmarks"] if b.get("run_type") == "iteration"]
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    return {
        "samples_ms": [b["real_time"] * scale[b["time_unit"]] for b in runs],
        "iterations_per_sample": [b["iterations"] for b in runs],
        "method": f"iree-benchmark-module wall time per call, driver {driver}",
    }
