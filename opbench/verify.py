"""Judge an output against the float64 reference: the relative-norm error within a tolerance, every element within
what rounding can explain, and NaN/Inf always failing.

The norm-wise test alone lets a localized error through: one element off by 1%, or one output channel of 2048
zeroed, moves ‖out - ref‖ / ‖ref‖ by less than a bf16 tolerance. The element-wise bound of output element i is
what its computation can lose to rounding (ErrorModel.bound):

    u_in · (INPUT_FACTOR · s_i + 4 · |ref_i|)  +  u_acc · n · s_i  +  2 · u_out · |ref_i|

with s_i = sqrt(Σ (x·w)²) over the n products summed into element i (the op's product_scale), u_in the unit
roundoff of the inputs as the hardware reads them (TF32's where f32 is computed as TF32; the inputs are generated in
the dtype, so otherwise none), u_acc the accumulator's and u_out the stored output's. The accumulation term bounds
the worst case: each of the n additions may lose u_acc of its running sum, whose size for random-signed products is
about s_i·sqrt(j/n) after j of them, and with a truncating adder (tensor cores may truncate) the losses need not
cancel: Σ_j u·s_i·sqrt(j/n) ≈ (2/3)·n·u·s_i. The input term is a random walk (independent roundings of the
products, taken at INPUT_FACTOR standard deviations) plus a bias: hardware that reads f32 as TF32 by truncation (the
top 19 bits, as wgmma does with raw f32 data) loses on average u of each operand toward zero, 2·u·ref_i over the
sum, allowed twice over. The output term is the final rounding (and that of a reference element near a rounding
boundary).

An op that rounds values to its element type mid-computation (separable_conv2d stores its depthwise result in the
element type before the pointwise product, as a two-op baseline or a fused tensor-core kernel does) adds

    INPUT_FACTOR · (u_out + u_in) · t_i

with t_i = sqrt(Σ (v·w)²) over the rounded values v that reach element i and the weights w that carry them into it
(the op's rounded_intermediate_scale): a random walk of their independent roundings, each to the element type (the
output's, u_out) and then as the hardware reads its inputs (u_in). Ops without one (None) keep the bound above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from opbench.dtypes import DType

# Unit roundoff (half an ulp of 1.0) of the element types and of TF32 (10 explicit mantissa bits).
UNIT_ROUNDOFF = {"f32": 2.0**-24, "tf32": 2.0**-11, "f16": 2.0**-11, "bf16": 2.0**-8}
# Standard deviations of the random-walk input rounding allowed: the largest of 10^8 Gaussian samples is about 6.
INPUT_FACTOR = 8.0


@dataclass(frozen=True, kw_only=True)
class ErrorModel:
    """The unit roundoffs of one row's computation."""

    input_u: float  # the inputs as the hardware reads them (0: exactly as generated)
    accumulate_u: float  # the sums
    output_u: float  # the stored output

    @classmethod
    def of(cls, dtype: DType, precision: str) -> ErrorModel:
        """A row of `dtype` judged as `precision` (its tolerance key: tf32 means f32 inputs read as TF32)."""
        return cls(
            input_u=UNIT_ROUNDOFF["tf32"] if precision == "tf32" else 0.0,
            accumulate_u=UNIT_ROUNDOFF[dtype.accumulator],
            output_u=UNIT_ROUNDOFF[dtype.element],
        )

    def bound(
        self, reference: np.ndarray, scale: np.ndarray, terms: int, intermediate: np.ndarray | None = None
    ) -> np.ndarray:
        """The largest |out - ref| rounding explains, per element (`intermediate`: the scale of values rounded to
        the element type mid-computation, Op.rounded_intermediate_scale; None where there are none)."""
        per_product = INPUT_FACTOR * self.input_u + self.accumulate_u * terms
        per_result = 4.0 * self.input_u + 2.0 * self.output_u
        bound = per_product * scale + per_result * np.abs(reference)
        if intermediate is None:
            return bound
        return bound + INPUT_FACTOR * (self.output_u + self.input_u) * intermediate


@dataclass(frozen=True, kw_only=True)
class Verdict:
    status: str  # "PASS" or "FAIL"
    relerr: float  # ||out - ref||_2 / ||ref||_2 (inf when the output is unusable)
    max_abs_err: float
    tolerance: float
    nonfinite: int  # NaN/Inf elements in the output
    reason: str
    elem_ratio: float | None = None  # max over elements of |out - ref| / bound (None: no element-wise test)
    worst_element: list[int] | None = None  # its index in the output array

    def to_dict(self) -> dict:
        return asdict(self)


def relative_error(output: np.ndarray, reference: np.ndarray) -> float:
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    denom = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(out - ref))
    return diff / denom if denom > 0 else diff


def _worst_element(error: np.ndarray, bound: np.ndarray) -> tuple[float, list[int]]:
    """max |out - ref| / bound and where (an exact element counts 0, a nonzero error against a zero bound inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    flat = int(np.argmax(ratio))
    return float(ratio.flat[flat]), [int(i) for i in np.unravel_index(flat, ratio.shape)]


def judge(output: np.ndarray, reference: np.ndarray, tolerance: float, bound: np.ndarray | None = None) -> Verdict:
    """PASS when nothing is NaN/Inf, the relative-norm error is within `tolerance` and (where an element-wise
    `bound` is given, ErrorModel.bound) every element is within its bound."""
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
    error = np.abs(output.astype(np.float64) - reference)
    max_abs = float(np.max(error)) if output.size else 0.0
    reasons = [f"relative error {relerr:.3e} exceeds tolerance {tolerance:.1e}"] if relerr > tolerance else []
    elem_ratio, worst = None, None
    if bound is not None and output.size:
        elem_ratio, worst = _worst_element(error, bound)
        if elem_ratio > 1.0:
            at = tuple(worst)
            reasons.append(
                f"element {list(at)} is off by {error[at]:.3e} (reference {reference[at]:.4g}), {elem_ratio:.3g}x "
                "what rounding explains"
            )
    return Verdict(
        status="FAIL" if reasons else "PASS", relerr=relerr, max_abs_err=max_abs, tolerance=tolerance, nonfinite=0,
        reason="; ".join(reasons), elem_ratio=elem_ratio, worst_element=worst,
    )  # fmt: skip
