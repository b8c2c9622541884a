"""IREE backends: iree-compile to a .vmfb per (variant, problem), run and timed through IREE's own tools.

A variant is a named flag set. A variant may also have tuning rules (config `tuning_specs.<variant>`): the first
rule whose conditions hold for the problem names a transform-dialect library (mlir-examples/tuning/) that sets
the lowering configuration of the problem's dispatches, passed to iree-compile as
`--iree-codegen-transform-dialect-library` (IREE 3.13's CUDA target ignores `--iree-codegen-tuning-spec-path`,
which only its ROCm target reads). iree-cuda rows are also timed per dispatch on the device (opbench.iree_dispatch).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from opbench import hardware
from opbench.backends import Backend, BenchSettings, Job, register_backend
from opbench.dtypes import DType
from opbench.ops import get_op
from opbench.shapes import Conv2dShape


class IreeBackend(Backend):
    artifact: ClassVar[str] = "vmfb"
    times_dispatches: ClassVar[bool] = False  # also timed per dispatch on the device (opbench.iree_dispatch)
    default_driver: ClassVar[str]
    default_target: ClassVar[str]

    def supports(self, op: str, dtype: DType, layout: str, variant: str) -> bool:
        return True  # every op is a linalg program; iree-compile says what it cannot lower

    @staticmethod
    def target_flags(target: str) -> list[str]:
        raise NotImplementedError

    def variant_flags(self, settings: dict[str, Any], variant: str) -> list[str]:
        return list(settings["variants"][variant])

    def compile_flags(self, settings: dict[str, Any], variant: str, problem: Problem | None = None) -> list[str]:
        """Everything after the input file on the iree-compile command line, in order (the problem's tuning spec,
        where a rule of the variant matches it, last)."""
        target = settings.get("target", self.default_target)
        return [
            *self.target_flags(target),
            *settings.get("compile_flags", []),
            *self.variant_flags(settings, variant),
            *self.problem_flags(settings, variant, problem),
        ]

    def problem_flags(self, settings: dict[str, Any], variant: str, problem: Problem | None) -> list[str]:
        """The flags a variant adds for one problem: its tuning spec, if a rule matches."""
        spec = tuning_spec(settings, variant, problem)
        return [f"{TUNING_FLAG}={spec}"] if spec else []

    def driver(self, settings: dict[str, Any]) -> str:
        return settings.get("driver", self.default_driver)

    def run(self, job: Job) -> np.ndarray:
        """The module's output in its element type (f32 or f16), bf16 widened to float32 (exactly: npy, which the
        run job saves, has no bfloat16)."""
        output = run_module(
            module=_artifact(job), function=job.op, driver=job.options["driver"],
            inputs=list(job.inputs.values()), dtype=job.dtype,
            output_shape=get_op(job.op).output_shape(job.shape, job.layout),
        )  # fmt: skip
        return output if output.dtype in (np.float32, np.float16) else output.astype(np.float32)

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        result = benchmark_module(
            module=_artifact(job), function=job.op, driver=job.options["driver"],
            inputs=list(job.inputs.values()), dtype=job.dtype, settings=settings,
        )  # fmt: skip
        result["device"] = hardware.device_name(self.device)
        if "dispatches" in job.options:
            from opbench.iree_dispatch import time_dispatches

            result["dispatches"] = time_dispatches(
                Path(job.options["dispatches"]), driver=job.options["driver"], settings=settings
            )
        return result


TUNING_FLAG = "--iree-codegen-transform-dialect-library"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """What decides a problem's tuning spec."""

    shape: Conv2dShape
    dtype: str
    layout: str


# Conditions a tuning rule may state, each checked against the problem (a rule without a key does not constrain it).
_RULE_CHECKS: dict[str, Callable[[Problem, Any], bool]] = {
    "dtypes": lambda p, v: p.dtype in v,
    "layouts": lambda p, v: p.layout in v,
    "filter": lambda p, v: [p.shape.r, p.shape.s] == list(v),
    "stride": lambda p, v: p.shape.stride == (v, v),
    "min_out_w": lambda p, v: p.shape.q >= v,
    "max_out_w": lambda p, v: p.shape.q <= v,
    "min_channels": lambda p, v: min(p.shape.c, p.shape.k) >= v,
    "min_in_channels": lambda p, v: p.shape.c >= v,
    "min_batch": lambda p, v: p.shape.n >= v,
    "max_pixels": lambda p, v: p.shape.n * p.shape.p * p.shape.q <= v,
}


def tuning_rule(settings: dict[str, Any], variant: str, problem: Problem | None) -> dict[str, Any] | None:
    """The first of the variant's tuning rules whose conditions hold for the problem (None: IREE's own choice)."""
    if problem is None:
        return None
    for rule in settings.get("tuning_specs", {}).get(variant, []):
        if all(check(problem, rule[key]) for key, check in _RULE_CHECKS.items() if key in rule):
            return rule
    return None


def tuning_spec(settings: dict[str, Any], variant: str, problem: Problem | None) -> str | None:
    """The spec of the problem's tuning rule (None: IREE's own choice)."""
    rule = tuning_rule(settings, variant, problem)
    return spec_path(rule, problem.dtype) if rule and problem else None


def program_form(settings: dict[str, Any], variant: str, problem: Problem | None) -> str:
    """The program form (opbench.mlirgen.ProgramForm) the problem's tuning rule asks for: the MLIR that is
    compiled, `plain` (the named linalg op) unless the rule says otherwise."""
    rule = tuning_rule(settings, variant, problem)
    return str(rule.get("form", "plain")) if rule else "plain"


def spec_path(rule: dict[str, Any], dtype: str) -> str:
    """A rule's spec for a dtype: `{dtype}` in the path stands for it (specs name the dtype's MMA intrinsic)."""
    return str(rule["spec"]).replace("{dtype}", dtype)


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
    times_dispatches = True
    table_note = (
        f"`iree-cuda` modules are compiled for `{default_target}` PTX (unless the config sets another `target`): "
        "IREE 3.13 has no `sm_90` target, so on Hopper the CUDA driver JIT-compiles that PTX, and no wgmma or TMA "
        "is used."
    )

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
        cmd = [
            tool("iree-run-module"),
            f"--module={module}",
            f"--function={function}",
            f"--device={driver}",
            *_input_flags(inputs, dtype, workdir),
            f"--output=@{out}",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
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
