"""cuDNN through PyTorch: the reference to beat. Variants are math modes: fp32 (TF32 off), tf32, fp16, bf16.

Timed like our kernels: CUDA events around a CUDA-graph replay of many convolutions (one launch between two events
would time the host's launch gap on short layers), rotating through input copies larger than L2.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import yaml

from opbench.backends.base import Backend, BenchSettings, Job, Problem, register_backend
from opbench.dtypes import DType
from opbench.gpu_timing import buffer_copies, time_graph

# variant -> (dtype it applies to, TF32 allowed)
MATH_MODES: dict[str, tuple[str, bool]] = {
    "fp32": ("f32", False),
    "tf32": ("f32", True),
    "fp16": ("f16", False),
    "bf16": ("bf16", False),
}
# Where the layout's axes sit relative to PyTorch's logical NCHW / KCRS order.
_TO_LOGICAL = {"nhwc_fhwc": (0, 3, 1, 2), "nchw_fchw": (0, 1, 2, 3)}
_FROM_LOGICAL = {"nhwc_fhwc": (0, 2, 3, 1), "nchw_fchw": (0, 1, 2, 3)}


SETTINGS_SCHEMA = yaml.safe_load("""
description: >
  cuDNN through PyTorch (the reference). Variants are math modes: fp32 (TF32 off) and tf32 for f32 inputs,
  fp16, bf16; each applies to its dtype only.
type: object
additionalProperties: false
required: [variants]
properties:
  variants:
    type: object
    minProperties: 1
    propertyNames: {enum: [fp32, tf32, fp16, bf16]}
    additionalProperties: {type: array, maxItems: 0}
""")


def torch_missing() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed (pip install torch, a CUDA build)"
    return None


@register_backend
class Cudnn(Backend):
    name = "cudnn"
    device = "cuda"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        if problem.op != "conv2d":
            return f"runs conv2d only, not {problem.op}"
        if problem.layout not in _TO_LOGICAL:
            return f"takes layouts {', '.join(_TO_LOGICAL)}, not {problem.layout}"
        if MATH_MODES[variant][0] != problem.dtype.name:
            return f"math mode {variant} is for {MATH_MODES[variant][0]} inputs, not {problem.dtype.name}"
        return None

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        return "tf32" if variant == "tf32" else dtype.tolerance_key

    def requirement_missing(self) -> str | None:
        return torch_missing()

    def _setup(self, job: Job) -> tuple[Any, Any, Any, dict[str, Any]]:
        import torch

        _, tf32 = MATH_MODES[job.variant]
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[job.dtype.name]
        memory_format = torch.channels_last if job.layout == "nhwc_fhwc" else torch.contiguous_format
        perm = _TO_LOGICAL[job.layout]

        def to_device(array: np.ndarray) -> Any:
            return torch.from_numpy(array).permute(perm).to("cuda", dtype).contiguous(memory_format=memory_format)

        x, w = to_device(job.inputs["input"]), to_device(job.inputs["filter"])
        conv = {"stride": job.shape.stride, "padding": job.shape.pad, "dilation": job.shape.dilation}
        return torch, x, w, conv

    def run(self, job: Job) -> np.ndarray:
        torch, x, w, conv = self._setup(job)
        y = torch.nn.functional.conv2d(x, w, **conv)
        torch.cuda.synchronize()
        return y.permute(_FROM_LOGICAL[job.layout]).float().cpu().numpy()

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        torch, x, w, conv = self._setup(job)
        conv2d = torch.nn.functional.conv2d
        props = torch.cuda.get_device_properties(0)
        footprint = (x.numel() + w.numel()) * x.element_size()
        copies = buffer_copies(footprint, props.L2_cache_size, settings.flush_l2)
        xs = [x] + [x.clone() for _ in range(copies - 1)]
        ws = [w] + [w.clone() for _ in range(copies - 1)]
        # time_graph's untimed first launch is where cudnn.benchmark picks its algorithm.
        timing = time_graph(lambda i: conv2d(xs[i], ws[i], **conv), copies, settings, noun="convolutions")
        return {
            "samples_ms": timing.samples_ms,
            "inner": timing.inner,
            "buffer_copies": timing.copies,
            "method": timing.method,
            "device": props.name,
            "torch": torch.__version__,
            "cudnn": str(torch.backends.cudnn.version()),
        }
