"""Backend registry: what each backend implements, what it needs to run, and how it is judged.

A backend is one way to execute an op (a compiler target, a library, our CUDA kernels). Each module under
opbench/backends registers its backends here; a duplicate name is an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from opbench.dtypes import DType


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """The config's `benchmark` section."""

    warmup_ms: float
    repetitions: int
    min_sample_ms: float
    flush_l2: bool


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
    options: dict[str, str]  # backend settings from the config (e.g. the IREE runtime driver)


@dataclass(frozen=True, kw_only=True)
class Availability:
    """Whether a backend's rows run here: run, compile only (SKIP with reason) or nothing (SKIP with reason)."""

    runs: bool
    compiles: bool
    reason: str = ""


class Backend(ABC):
    name: ClassVar[str]
    device: ClassVar[str]  # "cpu", "cuda", "rocm" or "vulkan": what its rows need to run
    artifact: ClassVar[str]  # "vmfb" (compiled module), "binary" (CUDA executable) or "none"
    table_note: ClassVar[str] = ""  # printed under every results table that has rows of this backend

    @abstractmethod
    def supports(self, op: str, dtype: DType, layout: str, variant: str) -> bool:
        """Whether the backend implements this combination (unsupported ones are left out of the matrix)."""

    def requirement_missing(self) -> str | None:
        """Why the backend cannot run on this machine even with its device present (a missing library), or None."""
        return None

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        """Which tolerance judges this row (a TF32 variant of float32 is judged as tf32)."""
        return dtype.tolerance_key

    def variant_flags(self, settings: dict[str, Any], variant: str) -> list[str]:
        """The flags that make up a variant, as recorded in the `flags` column."""
        return []

    @abstractmethod
    def run(self, job: Job) -> np.ndarray:
        """Compute the op once and return its output."""

    @abstractmethod
    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        """Time the op: {"samples_ms": [...], "method": str, "device": str, ...}."""


BACKENDS: dict[str, Backend] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    if cls.name in BACKENDS:
        raise ValueError(f"backend {cls.name!r} registered twice")
    BACKENDS[cls.name] = cls()
    return cls


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})") from None


def availability(backend: Backend, devices: set[str]) -> Availability:
    """Run where the backend's device is present; compile-only where only a compiler is needed."""
    if backend.device in devices:
        missing = backend.requirement_missing()
        if missing:
            return Availability(runs=False, compiles=False, reason=missing)
        return Availability(runs=True, compiles=True)
    if backend.artifact == "vmfb":
        return Availability(
            runs=False, compiles=True, reason=f"compile-only: no {backend.device} device on this machine"
        )
    return Availability(runs=False, compiles=False, reason=f"no {backend.device} device on this machine")


from opbench.backends import cuda as _cuda  # noqa: E402, F401
from opbench.backends import cudnn as _cudnn  # noqa: E402, F401
from opbench.backends import cutlass as _cutlass  # noqa: E402, F401
from opbench.backends import iree as _iree  # noqa: E402, F401
