"""What a backend is: one way to execute an op (a compiler target, a library, our CUDA kernels), with everything
the workflow needs of it. A backend owns its plumbing: its config settings' schema, which points it cannot run
(and why), what artifact a point needs and how it is built, the options its run and benchmark jobs take, and the
fields it adds to a record. The workflow's rules name no backend; they ask these methods.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from opbench.codedeps import module_files
from opbench.dtypes import DType
from opbench.registry import Registry


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """The config's `benchmark` section."""

    warmup_ms: float
    repetitions: int
    min_sample_ms: float
    flush_l2: bool


@dataclass(frozen=True, kw_only=True)
class Problem:
    """An op on one shape (the op's shape object), dtype and layout: what a backend's choices may depend on."""

    op: str
    shape: Any
    dtype: DType
    layout: str


@dataclass(frozen=True, kw_only=True)
class Job:
    """What a run or benchmark job hands its backend: the problem, its inputs and the built artifact."""

    op: str
    shape: Any
    dtype: DType
    layout: str
    variant: str
    inputs: dict[str, np.ndarray]
    artifact: Path | None
    options: dict[str, str]  # the backend's job_options (e.g. the IREE runtime driver)


@dataclass(frozen=True, kw_only=True)
class Availability:
    """Whether a backend's rows run here: run, compile only (SKIP with reason) or nothing (SKIP with reason)."""

    runs: bool
    compiles: bool
    reason: str = ""


class SettingsError(ValueError):
    """A backend's config settings that its code cannot take: `key` is the path below backends.<backend>."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key, self.why = key, why


class Backend(ABC):
    name: ClassVar[str]
    device: ClassVar[str]  # "cpu", "cuda", "rocm" or "vulkan": what its rows need to run
    # What a point needs built before it runs: nothing ("none"), one artifact per variant and op ("variant", e.g. a
    # CUDA binary) or one per variant and problem ("problem", a folder, e.g. an IREE module).
    build_scope: ClassVar[str] = "none"
    # Whether its artifacts build without the device (compile-only SKIP rows where the device is absent).
    builds_without_device: ClassVar[bool] = False
    table_note: ClassVar[str] = ""  # printed under every results table that has rows of this backend
    # JSON schema of its entry under config `backends` (`#/$defs/...`: workflow/schemas/config.schema.yaml's).
    settings_schema: ClassVar[dict[str, Any]] = {"$ref": "#/$defs/flag_variants"}

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        """Why the backend does not implement this point (a SKIP row's reason), or None where it does."""
        return None

    def check_settings(self, settings: dict[str, Any]) -> None:
        """The checks of its (schema-valid) settings that a schema cannot express; raise SettingsError."""
        return None

    def requirement_missing(self) -> str | None:
        """Why the backend cannot run on this machine even with its device present (a missing library), or None."""
        return None

    def baseline_class(self, variant: str) -> str | None:
        """For a baseline backend (the library every row is compared with), the baseline this variant's rows are
        candidates for, e.g. `cuDNN fp16`: ratio rows divide by the fastest PASS candidate of the same run, per
        layer. None for the other backends."""
        return None

    def variant_requirement_missing(self, variant: str) -> str | None:
        """Why one variant cannot run here although its backend can (a library only it needs), or None: its rows are
        SKIP with this reason where the backend runs."""
        return None

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        """Which tolerance judges this row (a TF32 variant of float32 is judged as tf32)."""
        return dtype.tolerance_key

    def variant_flags(self, settings: dict[str, Any], variant: str, problem: Problem) -> list[str]:
        """The flags that make up a variant for a problem, as recorded in the `flags` column."""
        flags = settings["variants"][variant]
        return list(flags) if isinstance(flags, list) else []

    def build_inputs(self, settings: dict[str, Any], variant: str, op: str, problem: Problem | None) -> list[str]:
        """The files an artifact is built from (repository-relative): inputs of its build job."""
        return []

    def build_params(
        self, settings: dict[str, Any], variant: str, op: str, problem: Problem | None, artifact: Path
    ) -> dict[str, Any]:
        """Everything besides the input files that decides an artifact (flags, compiler versions), as JSON: the
        build job's parameter, so a change rebuilds. `artifact` is where it is (or will be) built."""
        return {}

    def build(self, params: dict[str, Any], inputs: list[Path], out: Path) -> None:
        """Build one artifact from its build_params and build_inputs."""
        raise NotImplementedError(f"backend {self.name!r} builds nothing")

    def job_options(self, settings: dict[str, Any], variant: str, problem: Problem) -> dict[str, str]:
        """The options its run and benchmark jobs pass to run() and benchmark() (Job.options)."""
        return {}

    def plan_fields(self, settings: dict[str, Any], variant: str, problem: Problem) -> dict[str, Any]:
        """Record fields known before any job runs (e.g. the program an IREE module is compiled from)."""
        return {}

    def artifact_fields(self, artifact: Path) -> dict[str, Any]:
        """Record fields read from the built artifact (e.g. the compiler version that built it)."""
        return {}

    def code_files(self) -> list[Path]:
        """The package files whose code decides this backend's rows: inputs of its run, benchmark and record jobs."""
        return module_files(type(self).__module__)

    @abstractmethod
    def run(self, job: Job) -> np.ndarray:
        """Compute the op once and return its output."""

    @abstractmethod
    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        """Time the op: {"samples_ms": [...], "method": str, "device": str, ...}."""


BACKENDS: Registry[Backend] = Registry("backend")
register_backend = BACKENDS.decorator()
get_backend = BACKENDS.get_named


def availability(backend: Backend, devices: set[str]) -> Availability:
    """Run where the backend's device is present; compile-only where only a compiler is needed."""
    if backend.device in devices:
        missing = backend.requirement_missing()
        if missing:
            return Availability(runs=False, compiles=False, reason=missing)
        return Availability(runs=True, compiles=True)
    if backend.builds_without_device:
        return Availability(
            runs=False, compiles=True, reason=f"compile-only: no {backend.device} device on this machine"
        )
    return Availability(runs=False, compiles=False, reason=f"no {backend.device} device on this machine")


def variants_schema(description: str, variants: dict[str, Any]) -> dict[str, Any]:
    """The settings schema of a backend whose settings are its `variants` (described by `variants`) and nothing else."""
    return {
        "description": description,
        "type": "object",
        "additionalProperties": False,
        "required": ["variants"],
        "properties": {"variants": variants},
    }


def named_variants_schema(description: str, names: Iterable[str]) -> dict[str, Any]:
    """The settings schema of a backend whose variants are a fixed set of names that take no flags."""
    return variants_schema(
        description,
        {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"enum": list(names)},
            "additionalProperties": {"type": "array", "maxItems": 0},
        },
    )


def torch_missing() -> str | None:
    """Why a PyTorch-side backend cannot run here (PyTorch not installed), or None; without importing it."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (pip install torch, a CUDA build)"
    return None
