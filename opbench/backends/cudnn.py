"""cuDNN through PyTorch: the reference to beat. Variants are math modes: fp32 (TF32 off), tf32, fp16, bf16.

Timed like our kernels: CUDA events around a CUDA-graph replay of many convolutions (one launch between two events
would time the host's launch gap on short layers), rotating through input copies larger than L2.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench.backends import Backend, BenchSettings, Job, register_backend
from opbench.dtypes import DType

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
MAX_GRAPH_CONVS = 2000


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
    artifact: ClassVar[str] = "none"

    def supports(self, op: str, dtype: DType, layout: str, variant: str) -> bool:
        return op == "conv2d" and layout in _TO_LOGICAL and MATH_MODES.get(variant, ("",))[0] == dtype.name

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
        copies = 1
        if settings.flush_l2:
            footprint = (x.numel() + w.numel()) * x.element_size()
            copies = max(1, min(64, -(-2 * props.L2_cache_size // footprint)))
        xs = [x] + [x.clone() for _ in range(copies - 1)]
        ws = [w] + [w.clone() for _ in range(copies - 1)]

        # Warm-up (cudnn.benchmark picks its algorithm here), then size one sample from the eager time.
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        conv2d(x, w, **conv)
        torch.cuda.synchronize()
        start.record()
        warm = 0
        while True:
            conv2d(xs[warm % copies], ws[warm % copies], **conv)
            warm += 1
            end.record()
            end.synchronize()
            if start.elapsed_time(end) >= settings.warmup_ms and warm >= 3:
                break
        per_conv_ms = start.elapsed_time(end) / warm
        inner = int(max(copies, min(MAX_GRAPH_CONVS, np.ceil(settings.min_sample_ms / per_conv_ms))))

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for i in range(3):
                conv2d(xs[i % copies], ws[i % copies], **conv)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(inner):
                conv2d(xs[i % copies], ws[i % copies], **conv)
        graph.replay()
        torch.cuda.synchronize()
        samples = []
        for _ in range(settings.repetitions):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / inner)
        return {
            "samples_ms": samples,
            "inner": inner,
            "buffer_copies": copies,
            "method": f"CUDA events around a CUDA-graph replay of {inner} convolutions, {copies} rotating input copies",
            "device": props.name,
            "torch": torch.__version__,
            "cudnn": str(torch.backends.cudnn.version()),
        }
