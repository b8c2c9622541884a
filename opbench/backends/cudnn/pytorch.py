"""cuDNN through PyTorch: PyTorch's pick (the variants fp32, tf32, fp16, bf16), and PyTorch's own kernels with cuDNN
switched off (native_fp32, native_fp16, native_bf16; depthwise and separable convolution only).

torch.backends.cudnn.benchmark picks the algorithm (time_graph's untimed first launch is where it searches); the
math mode sets PyTorch's TF32 switches. Depthwise convolution is conv2d with groups = C; separable convolution the
two-op sequence a framework runs, depthwise then the 1x1 convolution, its intermediate stored in the dtype (the
baseline a fused kernel must beat). Timed with opbench.gpu_timing.time_graph: CUDA-graph replays rotating through
copies of the inputs and output; the timed outputs must equal a fresh eager computation on each buffer set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from opbench.backends.base import BenchSettings, Job
from opbench.backends.cudnn.common import (
    MATH_MODES,
    TorchConv,
    device_operands,
    is_native,
    math_mode,
    to_layout,
)
from opbench.gpu_timing import buffer_copies, time_graph, verified_timing
from opbench.ops import get_op


def computation(torch: Any, job: Job) -> Callable[..., Any]:
    """The job's op as PyTorch calls: a function of the device operands (device_operands' order)."""
    conv2d, shape = torch.nn.functional.conv2d, job.shape
    window = {"stride": shape.stride, "padding": shape.pad, "dilation": shape.dilation}
    if job.op == "separable_conv2d":
        return lambda x, dw, pw: conv2d(conv2d(x, dw, groups=shape.c, **window), pw)
    groups = TorchConv.of(job).groups
    return lambda x, w: conv2d(x, w, groups=groups, **window)


def _setup(job: Job) -> tuple[Any, list[Any], Callable[..., Any]]:
    import torch

    _, tf32 = MATH_MODES[math_mode(job.variant)]
    torch.backends.cudnn.enabled = not is_native(job.variant)  # set by every job: a worker serves many
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return torch, device_operands(torch, job), computation(torch, job)


def run(job: Job) -> np.ndarray:
    torch, operands, compute = _setup(job)
    y = compute(*operands)
    torch.cuda.synchronize()
    return to_layout(y, job.layout)


def benchmark(job: Job, settings: BenchSettings) -> dict[str, Any]:
    torch, operands, compute = _setup(job)
    props = torch.cuda.get_device_properties(0)
    y_numel = math.prod(get_op(job.op).output_shape(job.shape, job.layout))
    footprint = (sum(t.numel() for t in operands) + y_numel) * operands[0].element_size()
    copies = buffer_copies(footprint, props.L2_cache_size, settings.flush_l2)
    sets = [operands] + [[t.clone() for t in operands] for _ in range(copies - 1)]
    # time_graph's untimed first launch is where cudnn.benchmark picks its algorithm; each launch returns its output,
    # which time_graph keeps per buffer set (and poisons before the replays).
    launch = lambda i: compute(*sets[i])  # noqa: E731
    timing = time_graph(launch, copies, settings, noun="convolutions", poison_outputs=True)
    return {
        **verified_timing(timing, launch, job.dtype.name),
        "device": props.name,
        "torch": torch.__version__,
        "cudnn": str(torch.backends.cudnn.version()),
    }
