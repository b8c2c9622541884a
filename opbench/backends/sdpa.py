"""PyTorch's scaled_dot_product_attention (SDPA), the attention baseline: one variant per SDPA backend, forced with
torch.nn.attention.sdpa_kernel, all candidates for one baseline (`PyTorch SDPA`, the fastest verified one per layer).

- `flash`: SDPBackend.FLASH_ATTENTION (FlashAttention-2 as PyTorch builds it); f16 and bf16.
- `cudnn`: SDPBackend.CUDNN_ATTENTION (cuDNN's fused attention); f16 and bf16.
- `efficient`: SDPBackend.EFFICIENT_ATTENTION (the memory-efficient kernel, from xFormers); f32, f16 and bf16.

The scale is SDPA's default 1/√D (the op's reference divides the scores by √D too); `is_causal` is the shape's
(SDPA's causal mask for equal query and key lengths is the op's: query i sees keys 0..i). Layout bhsd is SDPA's
[B,H,S,D] itself; bshd is passed as the [B,H,S,D] view (a transpose, no copy) of [B,S,H,D] memory, which SDPA takes
strided, and the output comes back in the layout's order.

Which points a forced backend cannot run depends on the PyTorch and cuDNN builds and the card: only what holds for
all of them is decided when the matrix is planned (`unsupported`: the dtypes, flash's head dims up to 256); where
PyTorch refuses the rest at run time ("No available kernel", its reasons as warnings), the job fails with
SdpaKernelUnavailable, whose message names the variant and PyTorch's reasons: a FAIL row pointing at that log.

Timed like the cudnn backend's PyTorch rows (opbench.gpu_timing.time_graph): CUDA events around a CUDA-graph replay
of many calls rotating through copies of Q, K, V and O larger than L2; the timed outputs must equal a fresh eager
call on each buffer set (`bench_output_consistent`). PyTorch is imported when a job runs, so machines without it
import the package (the rows are SKIP: requirement_missing).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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
from opbench.gpu_timing import buffer_copies, time_graph, to_host, torch_dtype, verified_timing
from opbench.ops.attention.layouts import INPUT_PERM
from opbench.shapes import inverse

OP = "attention"


@dataclass(frozen=True)
class SdpaVariant:
    backend: str  # the torch.nn.attention.SDPBackend member it forces
    dtypes: tuple[str, ...]  # the dtypes it implements (opbench.dtypes names)
    max_head_dim: int | None = None  # the largest D it takes in every PyTorch build (None: no such fixed limit)


VARIANTS: dict[str, SdpaVariant] = {
    "flash": SdpaVariant("FLASH_ATTENTION", ("f16", "bf16"), max_head_dim=256),
    "cudnn": SdpaVariant("CUDNN_ATTENTION", ("f16", "bf16")),
    "efficient": SdpaVariant("EFFICIENT_ATTENTION", ("f32", "f16", "bf16")),
}
BASELINE = "PyTorch SDPA"
# The permutation that turns a layout's [.., .., .., D] array into SDPA's logical [B,H,S,D] (a view), and back.
TO_BHSD: dict[str, tuple[int, ...]] = {layout: inverse(perm) for layout, perm in INPUT_PERM.items()}
FROM_BHSD: dict[str, tuple[int, ...]] = dict(INPUT_PERM)
# PyTorch builds that ship cuDNN attention behind this switch (read once, at the first SDPA call) refuse it without.
CUDNN_SDPA_ENV = "TORCH_CUDNN_SDPA_ENABLED"

SETTINGS_SCHEMA = named_variants_schema(
    (
        "PyTorch's scaled_dot_product_attention with one SDPA backend forced per variant (sdpa_kernel): flash "
        "(FLASH_ATTENTION), cudnn (CUDNN_ATTENTION), efficient (EFFICIENT_ATTENTION). Variants take no flags."
    ),
    VARIANTS,
)


class SdpaKernelUnavailable(RuntimeError):
    """The forced SDPA backend refused the point at run time (PyTorch: "No available kernel"): the message names the
    variant, the point and PyTorch's reasons (the warnings it gave)."""


def variant_of(name: str) -> SdpaVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown sdpa variant {name!r} (known: {', '.join(VARIANTS)})") from None


def unsupported_reason(op: str, layout: str, dtype: str, head_dim: int, variant: str) -> str | None:
    """Why a variant does not implement a point, from what holds in every PyTorch build (None: it may run)."""
    spec = variant_of(variant)
    if op != OP:
        return f"runs {OP} only, not {op}"
    if layout not in TO_BHSD:
        return f"takes layouts {', '.join(TO_BHSD)}, not {layout}"
    if dtype not in spec.dtypes:
        return f"sdpa {variant} ({spec.backend}) implements {', '.join(spec.dtypes)}, not {dtype}"
    if spec.max_head_dim is not None and head_dim > spec.max_head_dim:
        return f"sdpa {variant} ({spec.backend}) takes head dims up to {spec.max_head_dim}, not {head_dim}"
    return None


def unavailable_message(variant: str, point: str, error: BaseException, reasons: list[str]) -> str:
    """SdpaKernelUnavailable's message: the variant, the point, PyTorch's error and the reasons it warned."""
    spec = variant_of(variant)
    said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    unique = list(dict.fromkeys(r.strip() for r in reasons if r.strip()))
    because = f"; PyTorch's reasons: {' | '.join(unique)}" if unique else ""
    return f"sdpa {variant} (SDPBackend.{spec.backend}) cannot run {point}: {said}{because}"


def point_name(job: Job) -> str:
    return f"attention {job.shape.name} {job.dtype.name} {job.layout}"


@register_backend
class Sdpa(Backend):
    name = "sdpa"
    device = "cuda"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA
    table_note = (
        "`sdpa` rows are PyTorch's scaled_dot_product_attention with one backend forced per variant (flash, cudnn, "
        "efficient); the default scale 1/√D."
    )

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        head_dim = getattr(problem.shape, "d", 0)
        return unsupported_reason(problem.op, problem.layout, problem.dtype.name, head_dim, variant)

    def baseline_class(self, variant: str) -> str | None:
        """Every variant is a candidate for one baseline: SDPA at its fastest forced backend."""
        variant_of(variant)
        return BASELINE

    def requirement_missing(self) -> str | None:
        return torch_missing()

    def run(self, job: Job) -> np.ndarray:
        torch, operands, compute = _setup(job)
        y = checked_call(compute, operands, job)
        torch.cuda.synchronize()
        return to_layout(y, job.layout)

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        torch, operands, compute = _setup(job)
        checked_call(compute, operands, job)  # a refusal is reported as such, not as a capture failure
        props = torch.cuda.get_device_properties(0)
        footprint = job.shape.min_bytes(job.dtype.itemsize, job.dtype.output_itemsize)  # Q, K, V and O once
        copies = buffer_copies(footprint, props.L2_cache_size, settings.flush_l2)
        sets = [operands] + [clone_operands(operands, job.layout) for _ in range(copies - 1)]
        launch = lambda i: compute(*sets[i])  # noqa: E731
        timing = time_graph(launch, copies, settings, noun="attention calls", poison_outputs=True, eager_fallback=True)
        return {
            **verified_timing(timing, launch, job.dtype.name),
            "device": props.name,
            "torch": torch.__version__,
            "cudnn": str(torch.backends.cudnn.version()),
            "sdpa_backend": f"SDPBackend.{variant_of(job.variant).backend}",
        }


# ---------------------------------------------------------------- the PyTorch side (imported when a job runs)


def device_operands(torch: Any, job: Job) -> list[Any]:
    """Q, K, V on the GPU in the job's dtype, stored in the layout's order (as the op's inputs are), each passed as
    SDPA's logical [B,H,S,D] view of that memory (bshd: strided, no copy)."""
    dtype = torch_dtype(torch, job.dtype.name)
    return [
        torch.from_numpy(np.ascontiguousarray(job.inputs[name]))
        .to(device="cuda", dtype=dtype)
        .permute(TO_BHSD[job.layout])
        for name in ("q", "k", "v")
    ]


def clone_operands(operands: list[Any], layout: str) -> list[Any]:
    """A copy of the operands in the same memory layout: each view's storage order copied, then viewed again."""
    return [t.permute(FROM_BHSD[layout]).clone().permute(TO_BHSD[layout]) for t in operands]


def computation(torch: Any, job: Job) -> Callable[..., Any]:
    """SDPA on [B,H,S,D] views with the variant's backend forced, the default scale and the shape's causal mask."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, variant_of(job.variant).backend)
    sdpa, causal = torch.nn.functional.scaled_dot_product_attention, job.shape.causal

    def compute(q: Any, k: Any, v: Any) -> Any:
        with sdpa_kernel(backend):
            return sdpa(q, k, v, is_causal=causal)

    return compute


def _setup(job: Job) -> tuple[Any, list[Any], Callable[..., Any]]:
    os.environ.setdefault(CUDNN_SDPA_ENV, "1")  # before the first SDPA call, where a build reads it
    import torch

    torch.backends.cudnn.enabled = True  # set by every job: a worker also serves the cudnn backend's native rows
    return torch, device_operands(torch, job), computation(torch, job)


def checked_call(compute: Callable[..., Any], operands: list[Any], job: Job) -> Any:
    """The first call of a job: where PyTorch refuses the forced backend, raise SdpaKernelUnavailable with its
    reasons (the warnings it gave before "No available kernel")."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return compute(*operands)
        except RuntimeError as error:
            if type(error).__name__ == "OutOfMemoryError":  # no refusal: the card is too small for the point
                raise
            reasons = [str(w.message) for w in caught]
            raise SdpaKernelUnavailable(unavailable_message(job.variant, point_name(job), error, reasons)) from error


def to_layout(y: Any, layout: str) -> np.ndarray:
    """SDPA's logical [B,H,S,D] output as the layout's array (float32, as the verification reads it)."""
    return np.ascontiguousarray(to_host(y.permute(FROM_BHSD[layout])))
