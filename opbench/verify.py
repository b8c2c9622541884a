"""Judge an output against the float64 reference: relative-norm error, a tolerance, and NaN/Inf always failing."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Verdict:
    status: str  # "PASS" or "FAIL"
    relerr: float  # ||out - ref||_2 / ||ref||_2 (inf when the output is unusable)
    max_abs_err: float
    tolerance: float
    nonfinite: int  # NaN/Inf elements in the output
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def relative_error(output: np.ndarray, reference: np.ndarray) -> float:
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    denom = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(out - ref))
    return diff / denom if denom > 0 else diff


def judge(output: np.ndarray, reference: np.ndarray, tolerance: float) -> Verdict:
    if output.shape != reference.shape:
        return Verdict(
            status="FAIL", relerr=float("inf"), max_abs_err=float("inf"), tolerance=tolerance, nonfinite=0,
            reason=f"output shape {list(output.shape)} != reference shape {list(reference.shape)}",
        )  # fmt: skip
    nonfinite = int(output.size - np.count_nonzero(np.isfinite(output)))
    if nonfinite:
        return Verdict(
            status="FAIL", relerr=float("inf"), max_abs_err=float("inf"), tolerance=tolerance,
            nonfinite=nonfinite, reason=f"{nonfinite} of {output.size} output elements are NaN or Inf",
        )  # fmt: skip
    relerr = relative_error(output, reference)
    max_abs = float(np.max(np.abs(output.astype(np.float64) - reference))) if output.size else 0.0
    ok = relerr <= tolerance
    return Verdict(
        status="PASS" if ok else "FAIL", relerr=relerr, max_abs_err=max_abs, tolerance=tolerance, nonfinite=0,
        reason="" if ok else f"relative error {relerr:.3e} exceeds tolerance {tolerance:.1e}",
    )  # fmt: skip
