"""What both cuDNN paths share: the variants (math modes, in two families), the layouts, the device buffers and the
check of the timed outputs. Imports no GPU library at module level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from opbench.backends.base import Job
from opbench.gpu_timing import OUTPUT_UNIT_ROUNDOFF, TIMED_OUTPUT_DIFFERS, OutputComparison, check_timed_outputs

# math mode -> (the dtype it applies to, TF32 allowed)
MATH_MODES: dict[str, tuple[str, bool]] = {
    "fp32": ("f32", False),
    "tf32": ("f32", True),
    "fp16": ("f16", False),
    "bf16": ("bf16", False),
}
FRONTEND_PREFIX = "frontend_"
# PyTorch's pick keeps the bare math-mode names (published results use them); the frontend's are prefixed.
VARIANTS: tuple[str, ...] = (*MATH_MODES, *(FRONTEND_PREFIX + mode for mode in MATH_MODES))
# Where the layout's axes sit relative to PyTorch's logical NCHW / KCRS order.
TO_LOGICAL = {"nhwc_fhwc": (0, 3, 1, 2), "nchw_fchw": (0, 1, 2, 3)}
FROM_LOGICAL = {"nhwc_fhwc": (0, 2, 3, 1), "nchw_fchw": (0, 1, 2, 3)}


def math_mode(variant: str) -> str:
    """The math mode of a variant of either family: fp32 (TF32 off), tf32, fp16 or bf16."""
    mode = variant.removeprefix(FRONTEND_PREFIX)
    if mode not in MATH_MODES:
        raise ValueError(f"unknown cudnn variant {variant!r} (known: {', '.join(VARIANTS)})")
    return mode


def is_frontend(variant: str) -> bool:
    """Whether the variant runs through NVIDIA's cuDNN frontend (else PyTorch picks the algorithm)."""
    math_mode(variant)
    return variant.startswith(FRONTEND_PREFIX)


def torch_dtype(torch: Any, dtype_name: str) -> Any:
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]


def memory_format(torch: Any, layout: str) -> Any:
    """channels_last for NHWC (PyTorch's logical NCHW view of NHWC memory), else the contiguous NCHW format."""
    return torch.channels_last if layout == "nhwc_fhwc" else torch.contiguous_format


def device_operands(torch: Any, job: Job) -> tuple[Any, Any]:
    """The job's input and filter on the GPU in the job's dtype, as logical NCHW / KCRS views of the layout's memory
    (strides as torch.empty gives them in that memory format, also on extent-1 axes)."""
    perm, dtype, fmt = TO_LOGICAL[job.layout], torch_dtype(torch, job.dtype.name), memory_format(torch, job.layout)

    def to_device(array: np.ndarray) -> Any:
        logical = torch.from_numpy(array).permute(perm)
        return torch.empty(tuple(logical.shape), dtype=dtype, device="cuda", memory_format=fmt).copy_(logical)

    return to_device(job.inputs["input"]), to_device(job.inputs["filter"])


def to_layout(y: Any, layout: str) -> np.ndarray:
    """A logical NKPQ output as the layout's array (float32, as the verification reads it)."""
    return y.permute(FROM_LOGICAL[layout]).float().cpu().numpy()


def to_host(y: Any) -> np.ndarray:
    return y.detach().float().cpu().numpy()


def verify_timed_outputs(timed: list[Any] | None, fresh: Callable[[int], Any], dtype_name: str) -> OutputComparison:
    """Compare each buffer set's timed output with a fresh eager computation on that set; raise where they differ
    (gpu_timing.compare_outputs: bitwise, or within 1e-6 relative + 2 units of the output type's roundoff)."""
    if not timed:
        raise RuntimeError("the timed launches returned no output to check")
    comparison = check_timed_outputs(timed, fresh, OUTPUT_UNIT_ROUNDOFF[dtype_name], to_host)
    if not comparison.consistent:
        raise RuntimeError(
            f"{TIMED_OUTPUT_DIFFERS} ({comparison.bitwise_mismatches} elements differ, max |diff| "
            f"{comparison.max_abs_diff:g})"
        )
    return comparison
