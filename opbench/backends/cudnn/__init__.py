"""cuDNN, the reference to beat, in two families of variants, each a math mode: fp32 (TF32 off), tf32, fp16, bf16.

- `fp32`, `tf32`, `fp16`, `bf16`: PyTorch's pick (pytorch.py): torch.nn.functional.conv2d with cudnn.benchmark.
- `frontend_fp32`, `frontend_tf32`, `frontend_fp16`, `frontend_bf16`: NVIDIA's cuDNN frontend (frontend.py, the
  `cudnn-frontend` extra): every engine configuration cuDNN's heuristics offer (all modes) built, verified and timed;
  the fastest verified one is kept and recorded (`chosen`). Without the frontend installed these rows are SKIP,
  "nvidia-cudnn-frontend is not installed".
- `native_fp32`, `native_fp16`, `native_bf16` (depthwise and separable convolution only): PyTorch's own kernels, cuDNN
  switched off (pytorch.py).

Ops: conv2d; depthwise_conv2d as a grouped convolution (groups = C); separable_conv2d as the two-op sequence,
depthwise then 1x1, the intermediate stored in the dtype (PyTorch's pick and its own kernels; not the frontend).
Every family is a candidate for the same baseline: the fastest PASS row of the math mode in the run.

All are timed like our kernels: CUDA events around a CUDA-graph replay of many convolutions (one launch between two
events would time the host's launch gap on short layers), rotating through copies of the input, filter and output
larger than L2; the timed outputs must equal a fresh eager run on each buffer set (`bench_output_consistent`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench.backends.base import (
    Backend,
    BenchSettings,
    Job,
    Problem,
    named_variants_schema,
    register_backend,
    torch_missing,
)
from opbench.backends.cudnn import frontend, pytorch
from opbench.backends.cudnn.common import (
    FRONTEND_PREFIX,
    MATH_MODES,
    NATIVE_OPS,
    TO_LOGICAL,
    VARIANTS,
    is_frontend,
    is_native,
    math_mode,
)
from opbench.dtypes import DType

__all__ = ["FRONTEND_PREFIX", "MATH_MODES", "VARIANTS", "Cudnn", "frontend_missing", "math_mode", "torch_missing"]

frontend_missing = frontend.frontend_missing
# depthwise as PyTorch's grouped convolution (groups = C); separable as the two-op sequence (PyTorch's calls only)
OPS = ("conv2d", "depthwise_conv2d", "separable_conv2d")
FRONTEND_OPS = ("conv2d", "depthwise_conv2d")  # one convolution node

SETTINGS_SCHEMA = named_variants_schema(
    (
        "cuDNN (the reference). Variants are math modes: fp32 (TF32 off) and tf32 for f32 inputs, fp16, bf16; each "
        "applies to its dtype only. The bare names are PyTorch's pick (cudnn.benchmark); frontend_<mode> runs NVIDIA's "
        "cuDNN frontend (the cudnn-frontend extra), timing every engine configuration its heuristics offer and "
        "keeping the fastest verified one; native_<mode> runs PyTorch's own kernel with cuDNN off (depthwise_conv2d "
        "only)."
    ),
    VARIANTS,
)


@register_backend
class Cudnn(Backend):
    name = "cudnn"
    device = "cuda"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        if problem.op not in OPS:
            return f"runs {', '.join(OPS)}, not {problem.op}"
        if is_frontend(variant) and problem.op not in FRONTEND_OPS:
            return f"the cuDNN frontend variants build one convolution, not {problem.op}"
        if is_native(variant) and problem.op not in NATIVE_OPS:
            return f"PyTorch's own kernels are a baseline for {', '.join(NATIVE_OPS)} only, not {problem.op}"
        if problem.layout not in TO_LOGICAL:
            return f"takes layouts {', '.join(TO_LOGICAL)}, not {problem.layout}"
        mode = math_mode(variant)
        if MATH_MODES[mode][0] != problem.dtype.name:
            return f"math mode {mode} is for {MATH_MODES[mode][0]} inputs, not {problem.dtype.name}"
        return None

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        return "tf32" if math_mode(variant) == "tf32" else dtype.tolerance_key

    def baseline_class(self, variant: str) -> str | None:
        """Every family is a candidate for the same baseline: cuDNN in the variant's math mode."""
        return f"cuDNN {math_mode(variant)}"

    def requirement_missing(self) -> str | None:
        """PyTorch, for both families."""
        return torch_missing()

    def variant_requirement_missing(self, variant: str) -> str | None:
        """The frontend variants also need nvidia-cudnn-frontend: without it their rows are SKIP, saying so."""
        return frontend_missing() if is_frontend(variant) else None

    def run(self, job: Job) -> np.ndarray:
        return frontend.run(job) if is_frontend(job.variant) else pytorch.run(job)

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        return frontend.benchmark(job, settings) if is_frontend(job.variant) else pytorch.benchmark(job, settings)
