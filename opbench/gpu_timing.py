"""The one GPU timing routine of the Python-side backends and the device probe (PyTorch, imported when called).

CUDA events around a CUDA-graph replay of many launches: one launch between two events would time the host's
launch gap on short ops. Launches rotate through buffer copies larger than L2 (`buffer_copies`, "the L2 check"), so
a sample reads from DRAM as a real layer would. A launch may return its output: then outputs rotate too (each buffer
set keeps its own), and `compare_outputs` checks the timed outputs against a fresh eager run, as our CUDA harness does.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from opbench import phases

if TYPE_CHECKING:
    from opbench.backends.base import BenchSettings

MAX_INNER = 2000  # launches in one graph: at most this many, however short the op
MAX_COPIES = 64
# Unit roundoff (half an ulp of 1.0) of an output stored in each element type: what one rounding of an f32 sum to
# the output type can move an element by, relative to its size.
OUTPUT_UNIT_ROUNDOFF = {"f32": 2.0**-24, "f16": 2.0**-11, "bf16": 2.0**-8}


def torch_dtype(torch: Any, dtype_name: str) -> Any:
    """The torch dtype an element type (opbench.dtypes name) is stored in on the GPU."""
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype_name]


def to_host(y: Any) -> np.ndarray:
    """A (GPU) tensor as a float32 NumPy array, in its own logical order."""
    return y.detach().float().cpu().numpy()


def buffer_copies(footprint_bytes: int, l2_bytes: int, flush_l2: bool) -> int:
    """How many rotating copies of an op's buffers make their total at least twice L2 (1 without flush_l2)."""
    if not flush_l2:
        return 1
    return max(1, min(MAX_COPIES, -(-2 * l2_bytes // footprint_bytes)))


@dataclass(frozen=True, kw_only=True)
class GraphTiming:
    samples_ms: list[float]  # per launch: each the elapsed time of one replay / inner
    inner: int  # launches per graph replay
    copies: int  # rotating buffer sets
    method: str  # for the records' timing_method
    # Per buffer set, the output its last timed launch wrote (what `launch` returned), or None where the launches
    # return nothing.
    outputs: list[Any] | None = None


def time_graph(
    launch: Callable[[int], Any],
    copies: int,
    settings: BenchSettings,
    noun: str = "launches",
    *,
    poison_outputs: bool = False,
    eager_fallback: bool = False,
) -> GraphTiming:
    """Time `launch(i)`, which enqueues the op on the caller's buffer set i (0 <= i < copies) on the current stream.

    One untimed launch (first-call setup such as cuDNN's algorithm search), eager warm-up for settings.warmup_ms
    (at least 3 launches), whose per-launch time sizes `inner` (enough launches for settings.min_sample_ms, at
    least `copies`, at most MAX_INNER); then `inner` launches captured in one CUDA graph, replayed once, and
    settings.repetitions replays timed. `noun` names the launches in `method`.

    Where `launch` returns its output (a tensor), the output of the latest launch on each buffer set is kept alive
    until the next launch on that set returns: outputs rotate like inputs (a graph-pool output is never freed and
    reused by a later launch of the graph while it is one of these), and GraphTiming.outputs holds, per buffer set,
    the output of the last timed launch. `poison_outputs`: fill those (floating-point) outputs with NaN after the
    capture, before the first replay, so that what they hold afterwards was written by the replays.
    `eager_fallback`: where the launches cannot be captured in a CUDA graph (capture raises), time `inner`
    back-to-back eager launches between the events instead, and say so in `method`; without it the error propagates.

    Phases (opbench.phases, in the job's recording): `first_launch` (the untimed launch: first-call setup),
    `warmup` (the eager warm-up, which is also the calibration of `inner`), `capture` (the side stream's warm-up,
    the capture, the poisoning), `first_replay` (the untimed replay) and `samples` (the timed replays, or the eager
    fallback's timed launches). They are the host's wall time: what `capture` enqueues without waiting (the side
    stream's launches, the poisoning) is waited for in `first_replay`.
    """
    import torch

    cuda = torch.cuda
    outputs: list[Any] = [None] * copies

    def run(i: int) -> None:
        out = launch(i)
        if out is not None:
            outputs[i] = out  # the set's previous output is released only now, after this launch allocated its own

    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    with phases.span("first_launch"):
        run(0)
        cuda.synchronize()
    with phases.span("warmup"):
        start.record()
        warm = 0
        while True:
            run(warm % copies)
            warm += 1
            end.record()
            end.synchronize()
            if start.elapsed_time(end) >= settings.warmup_ms and warm >= 3:
                break
    per_launch_ms = start.elapsed_time(end) / warm
    inner = max(copies, min(MAX_INNER, math.ceil(settings.min_sample_ms / per_launch_ms)))

    with phases.span("capture"):
        # Warm a side stream before capture, as PyTorch's CUDA-graph notes ask.
        stream = cuda.Stream()
        stream.wait_stream(cuda.current_stream())
        with cuda.stream(stream):
            for i in range(3):
                run(i % copies)
        cuda.current_stream().wait_stream(stream)
        graph = cuda.CUDAGraph()
        captured: Exception | None = None
        try:
            with cuda.graph(graph):
                for i in range(inner):
                    run(i % copies)
        except Exception as error:
            if not eager_fallback:
                raise
            captured = error
            cuda.synchronize()
        kept = outputs if any(out is not None for out in outputs) else None
        if poison_outputs and kept is not None:
            _poison(kept)
    copies_noun = f"{copies} rotating {'input and output' if kept is not None else 'input'} copies"
    samples = []
    if captured is not None:
        with phases.span("samples"):
            for _ in range(settings.repetitions):
                start.record()
                for i in range(inner):
                    run(i % copies)
                end.record()
                end.synchronize()
                samples.append(start.elapsed_time(end) / inner)
        reason = str(captured).strip().splitlines()[0] if str(captured).strip() else ""
        return GraphTiming(
            samples_ms=samples,
            inner=inner,
            copies=copies,
            method=f"CUDA events around {inner} back-to-back eager {noun} (CUDA-graph capture failed: "
            f"{type(captured).__name__}{': ' + reason if reason else ''}), {copies_noun}",
            outputs=list(outputs) if kept is not None else None,
        )
    with phases.span("first_replay"):
        graph.replay()
        cuda.synchronize()
    with phases.span("samples"):
        for _ in range(settings.repetitions):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / inner)
    return GraphTiming(
        samples_ms=samples,
        inner=inner,
        copies=copies,
        method=f"CUDA events around a CUDA-graph replay of {inner} {noun}, {copies_noun}",
        outputs=kept,
    )


def _poison(outputs: list[Any]) -> None:
    """NaN into every floating-point output (on the current stream, ordered before the replays)."""
    for out in outputs:
        if out is not None and out.is_floating_point():
            out.fill_(float("nan"))


@dataclass(frozen=True, kw_only=True)
class OutputComparison:
    consistent: bool
    bitwise_mismatches: int  # elements whose float32 bits differ
    max_abs_diff: float  # over the mismatching elements (inf where one is NaN/Inf, or the shapes differ)

    def to_dict(self) -> dict[str, Any]:
        """For a JSON record (an infinite difference as None)."""
        diff = self.max_abs_diff if math.isfinite(self.max_abs_diff) else None
        return {"bitwise_mismatches": self.bitwise_mismatches, "max_abs_diff": diff}


def compare_outputs(reference: np.ndarray, got: np.ndarray, unit_roundoff: float) -> OutputComparison:
    """cuda/common/harness.cu's compare_outputs: the timed output `got` against a fresh run's `reference`.

    Equal where the float32 values are bitwise identical or, both finite, |a-b| <= 1e-6 * max(|a|, |b|, max|ref|)
    + 2u * max(|a|, |b|), u the unit roundoff of the output's type (OUTPUT_UNIT_ROUNDOFF): the first term admits
    reassociation near zero crossings, the second an f32 sum that rounds to the neighbouring 16-bit value. Any wrong
    or unwritten element (NaN poison never equals a number) makes the outputs inconsistent.
    """
    ref = np.ascontiguousarray(reference, dtype=np.float32)
    out = np.ascontiguousarray(got, dtype=np.float32)
    if ref.shape != out.shape:
        return OutputComparison(consistent=False, bitwise_mismatches=max(ref.size, out.size), max_abs_diff=math.inf)
    differ = ref.view(np.uint32) != out.view(np.uint32)
    mismatches = int(np.count_nonzero(differ))
    if not mismatches:
        return OutputComparison(consistent=True, bitwise_mismatches=0, max_abs_diff=0.0)
    finite_ref = np.abs(ref[np.isfinite(ref)])
    ref_max = float(finite_ref.max()) if finite_ref.size else 0.0
    a, b = ref[differ].astype(np.float64), out[differ].astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return OutputComparison(consistent=False, bitwise_mismatches=mismatches, max_abs_diff=math.inf)
    diff = np.abs(a - b)
    mag = np.maximum(np.abs(a), np.abs(b))
    within = diff <= 1e-6 * np.maximum(mag, ref_max) + 2.0 * unit_roundoff * mag
    worst = float(diff.max())
    return OutputComparison(consistent=bool(within.all()), bitwise_mismatches=mismatches, max_abs_diff=worst)


def same_bits(a: Any, b: Any) -> bool:
    """Whether two PyTorch tensors of one shape and dtype hold bitwise the same elements, compared where they are
    (on the GPU: nothing is copied to the host). Equal NaNs are the same bits; 0.0 and -0.0 are not. False for
    anything but two tensors (the host comparison then decides)."""
    torch = sys.modules.get("torch")  # outputs that are tensors imported it
    tensor = getattr(torch, "Tensor", None)
    if tensor is None or not (isinstance(a, tensor) and isinstance(b, tensor)):
        return False
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    as_int = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return bool(torch.equal(a.contiguous().view(as_int), b.contiguous().view(as_int)))


def check_timed_outputs(
    timed: list[Any],
    fresh: Callable[[int], Any],
    unit_roundoff: float,
    to_host: Callable[[Any], np.ndarray],
    identical: Callable[[Any, Any], bool] | None = None,
) -> OutputComparison:
    """Each buffer set's timed output against `fresh(i)`, the op computed eagerly again on buffer set i; the sets'
    comparisons merged (consistent only if every set is). `to_host` turns an output into a NumPy array. Where
    `identical(fresh, timed)` (a bitwise test where the outputs are, e.g. `same_bits`) holds, that set is
    consistent with no copy to the host; otherwise `compare_outputs` decides on the host."""
    mismatches, worst, consistent = 0, 0.0, True
    for i, out in enumerate(timed):
        again = fresh(i)
        if identical is not None and identical(again, out):
            continue
        cmp = compare_outputs(to_host(again), to_host(out), unit_roundoff)
        consistent &= cmp.consistent
        mismatches += cmp.bitwise_mismatches
        worst = max(worst, cmp.max_abs_diff)
    return OutputComparison(consistent=consistent, bitwise_mismatches=mismatches, max_abs_diff=worst)


TIMED_OUTPUT_DIFFERS = "the timed launches produced a different output than the verified run"


def verified_timing(timing: GraphTiming, fresh: Callable[[int], Any], dtype_name: str) -> dict[str, Any]:
    """A benchmark result's timing fields, once each buffer set's timed output (time_graph(poison_outputs=True)
    keeps them) equals `fresh(i)`, the op computed eagerly again on set i: samples_ms, inner, buffer_copies, method,
    bench_output_consistent and bench_check. Raises RuntimeError where no output was kept or one differs. The check
    is the phase `check_outputs` (opbench.phases)."""
    if not timing.outputs:
        raise RuntimeError("the timed launches returned no output to check")
    with phases.span("check_outputs"):
        check = check_timed_outputs(timing.outputs, fresh, OUTPUT_UNIT_ROUNDOFF[dtype_name], to_host, same_bits)
    if not check.consistent:
        raise RuntimeError(
            f"{TIMED_OUTPUT_DIFFERS} ({check.bitwise_mismatches} elements differ, max |diff| {check.max_abs_diff:g})"
        )
    return {
        "samples_ms": timing.samples_ms,
        "inner": timing.inner,
        "buffer_copies": timing.copies,
        "method": timing.method,
        "bench_output_consistent": True,
        "bench_check": check.to_dict(),
    }
