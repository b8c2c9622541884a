"""What both cuDNN paths share: the variants (math modes, in two families), the layouts, the device buffers and the
check of the timed outputs. Imports no GPU library at module level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from opbench.backends.base import Job
from opbench.gpu_timing import to_host, torch_dtype

# math mode -> (the dtype it applies to, TF32 allowed)
MATH_MODES: dict[str, tuple[str, bool]] = {
    "fp32": ("f32", False),
    "tf32": ("f32", True),
    "fp16": ("f16", False),
    "bf16": ("bf16", False),
}
FRONTEND_PREFIX = "frontend_"
# PyTorch's own kernels with cuDNN switched off: a baseline for depthwise (and separable) convolution only, where
# PyTorch has a depthwise kernel of its own (for conv2d it would fall back to im2col + GEMM, no baseline anyone uses).
NATIVE_PREFIX = "native_"
NATIVE_OPS = ("depthwise_conv2d", "separable_conv2d")
# PyTorch's pick keeps the bare math-mode names (published results use them); the frontend's and PyTorch's own
# kernels' are prefixed (no native tf32: PyTorch's depthwise kernel computes in the input type's accumulator).
VARIANTS: tuple[str, ...] = (
    *MATH_MODES,
    *(FRONTEND_PREFIX + mode for mode in MATH_MODES),
    *(NATIVE_PREFIX + mode for mode in MATH_MODES if mode != "tf32"),
)
# Where the layout's input (and output) axes sit relative to PyTorch's logical NCHW order, for the layouts of conv2d,
# depthwise_conv2d and separable_conv2d.
NHWC, NCHW = (0, 3, 1, 2), (0, 1, 2, 3)
TO_LOGICAL = {
    "nhwc_fhwc": NHWC, "nchw_fchw": NCHW, "nhwc_hwc": NHWC, "nchw_chw": NCHW, "nhwc_hwc_kc": NHWC, "nchw_chw_kc": NCHW,
}  # fmt: skip
FROM_LOGICAL = {layout: tuple(perm.index(axis) for axis in range(4)) for layout, perm in TO_LOGICAL.items()}
# Each filter's axes relative to PyTorch's logical [K, C/groups, R, S] weight: a depthwise filter (C, R and S axes)
# gains its extent-1 second axis after the permutation, a pointwise [K, C] filter its two extent-1 spatial axes.
FILTER_TO_LOGICAL = {
    "nhwc_fhwc": {"filter": NHWC},
    "nchw_fchw": {"filter": NCHW},
    "nhwc_hwc": {"filter": (2, 0, 1)},
    "nchw_chw": {"filter": (0, 1, 2)},
    "nhwc_hwc_kc": {"dw_filter": (2, 0, 1), "pw_filter": (0, 1)},
    "nchw_chw_kc": {"dw_filter": (0, 1, 2), "pw_filter": (0, 1)},
}


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
    """A one-convolution job (conv2d, depthwise_conv2d) as PyTorch's conv2d sees it."""

    groups: int  # 1 for conv2d, C for depthwise_conv2d
    out_channels: int
    terms: int  # products summed into each output element

    @classmethod
    def of(cls, job: Job) -> TorchConv:
        shape = job.shape
        if job.op == "depthwise_conv2d":
            return cls(groups=shape.c, out_channels=shape.c, terms=shape.r * shape.s)
        return cls(groups=1, out_channels=shape.k, terms=shape.c * shape.r * shape.s)


def memory_format(torch: Any, layout: str) -> Any:
    """channels_last for NHWC (PyTorch's logical NCHW view of NHWC memory), else the contiguous NCHW format."""
    return torch.channels_last if layout.startswith("nhwc") else torch.contiguous_format


def device_operands(torch: Any, job: Job) -> list[Any]:
    """The job's input and filters on the GPU in the job's dtype, in the op's input order, as logical NCHW /
    [K, C/groups, R, S] views of the layout's memory (strides as torch.empty gives them in that memory format, also on
    extent-1 axes)."""
    dtype, fmt = torch_dtype(torch, job.dtype.name), memory_format(torch, job.layout)

    def to_device(logical: Any) -> Any:
        return torch.empty(tuple(logical.shape), dtype=dtype, device="cuda", memory_format=fmt).copy_(logical)

    operands = [torch.from_numpy(job.inputs["input"]).permute(TO_LOGICAL[job.layout])]
    for name, perm in FILTER_TO_LOGICAL[job.layout].items():
        weight = torch.from_numpy(job.inputs[name]).permute(perm)
        if weight.dim() == 3:  # a depthwise filter [C, R, S]: one input channel per group
            weight = weight.unsqueeze(1)
        elif weight.dim() == 2:  # a pointwise filter [K, C]: a 1 x 1 convolution
            weight = weight[:, :, None, None]
        operands.append(weight)
    return [to_device(operand) for operand in operands]


def to_layout(y: Any, layout: str) -> np.ndarray:
    """A logical NKPQ output as the layout's array (float32, as the verification reads it)."""
    return to_host(y.permute(FROM_LOGICAL[layout]))
