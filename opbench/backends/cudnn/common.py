"""What both cuDNN paths share: the variants (math modes, in two families), the layouts, the device buffers and the
check of the timed outputs. Imports no GPU library at module level."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
# PyTorch's own kernels with cuDNN switched off: a baseline for depthwise convolution only, where PyTorch has a
# depthwise kernel of its own (for conv2d it would fall back to im2col + GEMM, no baseline anyone uses).
NATIVE_PREFIX = "native_"
NATIVE_OPS = ("depthwise_conv2d",)
# PyTorch's pick keeps the bare math-mode names (published results use them); the frontend's and PyTorch's own
# kernels' are prefixed (no native tf32: PyTorch's depthwise kernel computes in the input type's accumulator).
VARIANTS: tuple[str, ...] = (
    *MATH_MODES,
    *(FRONTEND_PREFIX + mode for mode in MATH_MODES),
    *(NATIVE_PREFIX + mode for mode in MATH_MODES if mode != "tf32"),
)
# Where the layout's input (and output) axes sit relative to PyTorch's logical NCHW order, for conv2d's layouts and
# depthwise_conv2d's.
NHWC, NCHW = (0, 3, 1, 2), (0, 1, 2, 3)
TO_LOGICAL = {"nhwc_fhwc": NHWC, "nchw_fchw": NCHW, "nhwc_hwc": NHWC, "nchw_chw": NCHW}
FROM_LOGICAL = {layout: tuple(perm.index(axis) for axis in range(4)) for layout, perm in TO_LOGICAL.items()}
# The filter's axes relative to PyTorch's logical [K, C/groups, R, S]; a depthwise filter (C, R and S axes only)
# gains its extent-1 second axis after the permutation.
FILTER_TO_LOGICAL = {"nhwc_fhwc": NHWC, "nchw_fchw": NCHW, "nhwc_hwc": (2, 0, 1), "nchw_chw": (0, 1, 2)}


def math_mode(variant: str) -> str:
    """The math mode of a variant of any family: fp32 (TF32 off), tf32, fp16 or bf16."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown cudnn variant {variant!r} (known: {', '.join(VARIANTS)})")
    return variant.removeprefix(FRONTEND_PREFIX).removeprefix(NATIVE_PREFIX)


def is_frontend(variant: str) -> bool:
    """Whether the variant runs through NVIDIA's cuDNN frontend (else PyTorch picks the algorithm)."""
    math_mode(variant)
    return variant.startswith(FRONTEND_PREFIX)


def is_native(variant: str) -> bool:
    """Whether the variant runs PyTorch's own kernel with cuDNN switched off."""
    math_mode(variant)
    return variant.startswith(NATIVE_PREFIX)


@dataclass(frozen=True)
class TorchConv:
    """A job's convolution as PyTorch's conv2d sees it."""

    groups: int  # 1 for conv2d, C for depthwise_conv2d
    out_channels: int
    terms: int  # products summed into each output element

    @classmethod
    def of(cls, job: Job) -> TorchConv:
        shape = job.shape
        if job.op == "depthwise_conv2d":
            return cls(groups=shape.c, out_channels=shape.c, terms=shape.r * shape.s)
        return cls(groups=1, out_channels=shape.k, terms=shape.c * shape.r * shape.s)


def torch_dtype(torch: Any, dtype_name: str) -> Any:
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]


def memory_format(torch: Any, layout: str) -> Any:
    """channels_last for NHWC (PyTorch's logical NCHW view of NHWC memory), else the contiguous NCHW format."""
    return torch.channels_last if layout.startswith("nhwc") else torch.contiguous_format


def device_operands(torch: Any, job: Job) -> tuple[Any, Any]:
    """The job's input and filter on the GPU in the job's dtype, as logical NCHW / K(C/groups)RS views of the
    layout's memory (strides as torch.empty gives them in that memory format, also on extent-1 axes)."""
    dtype, fmt = torch_dtype(torch, job.dtype.name), memory_format(torch, job.layout)

    def to_device(logical: Any) -> Any:
        return torch.empty(tuple(logical.shape), dtype=dtype, device="cuda", memory_format=fmt).copy_(logical)

    x = torch.from_numpy(job.inputs["input"]).permute(TO_LOGICAL[job.layout])
    w = torch.from_numpy(job.inputs["filter"]).permute(FILTER_TO_LOGICAL[job.layout])
    if w.dim() == 3:  # a depthwise filter [C, R, S]: one input channel per group
        w = w.unsqueeze(1)
    return to_device(x), to_device(w)


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
