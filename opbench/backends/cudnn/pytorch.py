"""cuDNN through PyTorch: PyTorch's pick (the variants fp32, tf32, fp16, bf16), and PyTorch's own kernels with cuDNN
switched off (native_fp32, native_fp16, native_bf16; depthwise convolution only).

torch.backends.cudnn.benchmark picks the algorithm (time_graph's untimed first launch is where it searches); the
math mode sets PyTorch's TF32 switches. Depthwise convolution is conv2d with groups = C. Timed with
opbench.gpu_timing.time_graph: CUDA-graph replays rotating through copies of the input, filter and output; the timed
outputs must equal a fresh eager convolution of each buffer set.
"""

from __future__ import annotations

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
    verify_timed_outputs,
)
from opbench.gpu_timing import buffer_copies, time_graph


def _setup(job: Job) -> tuple[Any, Any, Any, dict[str, Any]]:
    import torch

    _, tf32 = MATH_MODES[math_mode(job.variant)]
    torch.backends.cudnn.enabled = not is_native(job.variant)  # set by every job: a worker serves many
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    x, w = device_operands(torch, job)
    conv = {
        "stride": job.shape.stride, "padding": job.shape.pad, "dilation": job.shape.dilation,
        "groups": TorchConv.of(job).groups,
    }  # fmt: skip
    return torch, x, w, conv


def run(job: Job) -> np.ndarray:
    torch, x, w, conv = _setup(job)
    y = torch.nn.functional.conv2d(x, w, **conv)
    torch.cuda.synchronize()
    return to_layout(y, job.layout)


def benchmark(job: Job, settings: BenchSettings) -> dict[str, Any]:
    torch, x, w, conv = _setup(job)
    conv2d = torch.nn.functional.conv2d
    props = torch.cuda.get_device_properties(0)
    shape = job.shape
    y_numel = shape.n * TorchConv.of(job).out_channels * shape.p * shape.q
    footprint = (x.numel() + w.numel() + y_numel) * x.element_size()
    copies = buffer_copies(footprint, props.L2_cache_size, settings.flush_l2)
    xs = [x] + [x.clone() for _ in range(copies - 1)]
    ws = [w] + [w.clone() for _ in range(copies - 1)]
    # time_graph's untimed first launch is where cudnn.benchmark picks its algorithm; each launch returns its output,
    # which time_graph keeps per buffer set (and poisons before the replays).
    timing = time_graph(
        lambda i: conv2d(xs[i], ws[i], **conv), copies, settings, noun="convolutions", poison_outputs=True
    )
    check = verify_timed_outputs(timing.outputs, lambda i: conv2d(xs[i], ws[i], **conv), job.dtype.name)
    return {
        "samples_ms": timing.samples_ms,
        "inner": timing.inner,
        "buffer_copies": timing.copies,
        "method": timing.method,
        "device": props.name,
        "torch": torch.__version__,
        "cudnn": str(torch.backends.cudnn.version()),
        "bench_output_consistent": True,
        "bench_check": check.to_dict(),
    }
