"""The one GPU timing routine of the Python-side backends and the device probe (PyTorch, imported when called).

CUDA events around a CUDA-graph replay of many launches: one launch between two events would time the host's
launch gap on short ops. Launches rotate through buffer copies larger than L2 (`buffer_copies`, "the L2 check"), so
a sample reads from DRAM as a real layer would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opbench.backends.base import BenchSettings

MAX_INNER = 2000  # launches in one graph: at most this many, however short the op
MAX_COPIES = 64


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


def time_graph(
    launch: Callable[[int], Any], copies: int, settings: BenchSettings, noun: str = "launches"
) -> GraphTiming:
    """Time `launch(i)`, which enqueues the op on the caller's buffer set i (0 <= i < copies) on the current stream.

    One untimed launch (first-call setup such as cuDNN's algorithm search), eager warm-up for settings.warmup_ms
    (at least 3 launches), whose per-launch time sizes `inner` (enough launches for settings.min_sample_ms, at
    least `copies`, at most MAX_INNER); then `inner` launches captured in one CUDA graph, replayed once, and
    settings.repetitions replays timed. `noun` names the launches in `method`.
    """
    import torch

    cuda = torch.cuda
    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    launch(0)
    cuda.synchronize()
    start.record()
    warm = 0
    while True:
        launch(warm % copies)
        warm += 1
        end.record()
        end.synchronize()
        if start.elapsed_time(end) >= settings.warmup_ms and warm >= 3:
            break
    per_launch_ms = start.elapsed_time(end) / warm
    inner = max(copies, min(MAX_INNER, math.ceil(settings.min_sample_ms / per_launch_ms)))

    # Warm a side stream before capture, as PyTorch's CUDA-graph notes ask.
    stream = cuda.Stream()
    stream.wait_stream(cuda.current_stream())
    with cuda.stream(stream):
        for i in range(3):
            launch(i % copies)
    cuda.current_stream().wait_stream(stream)
    graph = cuda.CUDAGraph()
    with cuda.graph(graph):
        for i in range(inner):
            launch(i % copies)
    graph.replay()
    cuda.synchronize()
    samples = []
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
        method=f"CUDA events around a CUDA-graph replay of {inner} {noun}, {copies} rotating input copies",
    )
