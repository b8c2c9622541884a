"""Statistics over timed samples, and the throughput they imply."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class TimingStats:
    median_ms: float
    min_ms: float
    p90_ms: float
    cv: float  # standard deviation / mean of the samples
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: list[float]) -> TimingStats:
    if not samples_ms:
        raise ValueError("no timing samples")
    a = np.asarray(samples_ms, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"timing samples must be finite and positive, got {samples_ms}")
    mean = float(a.mean())
    return TimingStats(
        median_ms=float(np.median(a)),
        min_ms=float(a.min()),
        p90_ms=float(np.percentile(a, 90)),
        cv=float(a.std(ddof=1) / mean) if a.size > 1 else 0.0,
        samples=int(a.size),
    )


def tflops(flops: int, ms: float) -> float:
    return flops / (ms * 1e-3) / 1e12


def gbps(nbytes: int, ms: float) -> float:
    return nbytes / (ms * 1e-3) / 1e9
