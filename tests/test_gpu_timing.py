"""opbench.gpu_timing: the L2 copies rule, the routine's control flow through a fake torch.cuda, and (marked `gpu`,
skipped without an NVIDIA GPU) the routine on a real card."""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import types
from collections.abc import Iterator

import pytest

from opbench import hardware
from opbench.backends import BenchSettings
from opbench.gpu_timing import MAX_COPIES, MAX_INNER, buffer_copies, time_graph

L2 = 50 * 2**20


@pytest.mark.parametrize(
    ("footprint", "flush_l2", "copies"),
    [
        (1, False, 1),  # no flush: one copy however small
        (2 * L2, True, 1),  # exactly twice L2
        (2 * L2 - 1, True, 2),  # just under: rounds up
        (L2, True, 2),
        (L2 + 1, True, 2),
        (2 * L2 // MAX_COPIES, True, MAX_COPIES),
        (2 * L2 // MAX_COPIES - 1, True, MAX_COPIES),  # would need 65: capped
        (1, True, MAX_COPIES),
        (10 * L2, True, 1),
    ],
)
def test_buffer_copies(footprint: int, flush_l2: bool, copies: int) -> None:
    assert buffer_copies(footprint, L2, flush_l2) == copies


class FakeCuda:
    """torch.cuda as time_graph uses it, on a simulated device clock.

    An eager launch takes eager_ms; launches inside `graph()` are recorded, not run; each replay takes the next of
    replay_ms. Events read the clock.
    """

    def __init__(self, eager_ms: float, replay_ms: list[float]) -> None:
        self.clock = 0.0
        self.eager_ms = eager_ms
        self.replay_ms = replay_ms
        self.eager: list[int] = []  # buffer sets of the launches run eagerly, in order
        self.captured: list[int] | None = None
        self.graphs: list[FakeGraph] = []

    def launch(self, i: int) -> None:
        if self.captured is not None:
            self.captured.append(i)
        else:
            self.eager.append(i)
            self.clock += self.eager_ms

    def Event(self, enable_timing: bool) -> FakeEvent:
        return FakeEvent(self)

    def synchronize(self) -> None:
        pass

    def Stream(self) -> FakeStream:
        return FakeStream()

    def current_stream(self) -> FakeStream:
        return FakeStream()

    def stream(self, stream: FakeStream) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def CUDAGraph(self) -> FakeGraph:
        self.graphs.append(FakeGraph(self))
        return self.graphs[-1]

    @contextlib.contextmanager
    def graph(self, graph: FakeGraph) -> Iterator[None]:
        self.captured = graph.launches
        yield
        self.captured = None


class FakeEvent:
    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda, self.t = cuda, 0.0

    def record(self) -> None:
        self.t = self.cuda.clock

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        return end.t - self.t


class FakeStream:
    def wait_stream(self, other: FakeStream) -> None:
        pass


class FakeGraph:
    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda, self.launches = cuda, []

    def replay(self) -> None:
        self.cuda.clock += self.cuda.replay_ms.pop(0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCuda]:
    cuda = FakeCuda(eager_ms=0.5, replay_ms=[100.0, 8.0, 16.0, 4.0])
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    yield cuda


def settings(warmup_ms: float = 10, repetitions: int = 3, min_sample_ms: float = 4) -> BenchSettings:
    return BenchSettings(warmup_ms=warmup_ms, repetitions=repetitions, min_sample_ms=min_sample_ms, flush_l2=True)


def test_inner_from_warmup_and_samples_per_launch(fake: FakeCuda) -> None:
    timing = time_graph(fake.launch, 1, settings())
    # 0.5 ms per eager launch: 4 ms of launches is 8; replays of 8, 16 and 4 ms after the untimed one.
    assert timing.inner == 8 and timing.copies == 1
    assert timing.samples_ms == [1.0, 2.0, 0.5]
    # One untimed launch, 20 to fill 10 ms of warm-up, 3 on the side stream; the graph holds inner launches.
    assert len(fake.eager) == 1 + 20 + 3 and fake.graphs[0].launches == [0] * 8
    assert fake.replay_ms == []
    assert timing.method == "CUDA events around a CUDA-graph replay of 8 launches, 1 rotating input copies"
    with pytest.raises(dataclasses.FrozenInstanceError):
        timing.inner = 1  # type: ignore[misc]


def test_launches_rotate_over_copies(fake: FakeCuda) -> None:
    timing = time_graph(fake.launch, 3, settings(min_sample_ms=3.5), noun="convolutions")
    assert timing.inner == 7
    assert fake.graphs[0].launches == [0, 1, 2, 0, 1, 2, 0]
    assert fake.eager == [0] + [i % 3 for i in range(20)] + [0, 1, 2]
    assert "7 convolutions, 3 rotating input copies" in timing.method


def test_inner_at_least_copies_and_at_most_cap(fake: FakeCuda) -> None:
    assert time_graph(fake.launch, 16, settings(min_sample_ms=1)).inner == 16
    fake.replay_ms = [1.0] * 4
    assert time_graph(fake.launch, 1, settings(min_sample_ms=1e6)).inner == MAX_INNER


def test_warmup_at_least_three_launches(fake: FakeCuda) -> None:
    time_graph(fake.launch, 1, settings(warmup_ms=0))
    assert len(fake.eager) == 1 + 3 + 3


gpu = pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)")
GPU_SETTINGS = BenchSettings(warmup_ms=20, repetitions=5, min_sample_ms=5, flush_l2=False)


@pytest.mark.gpu
@gpu
def test_copy_bandwidth_is_plausible() -> None:
    torch = pytest.importorskip("torch")
    src = torch.empty(2**26, device="cuda", dtype=torch.float32).uniform_()  # 256 MiB
    dst = torch.empty_like(src)
    timing = time_graph(lambda i: dst.copy_(src), 1, GPU_SETTINGS)
    gbps = 2 * src.nbytes / (statistics.median(timing.samples_ms) * 1e-3) / 1e9
    assert 100 < gbps < 10_000, f"{gbps:.0f} GB/s"


@pytest.mark.gpu
@gpu
def test_graph_timing_excludes_launch_gap() -> None:
    """A tiny kernel's graph time is far below one eager launch between two events (which times the host)."""
    torch = pytest.importorskip("torch")
    x = torch.zeros(1, device="cuda")
    graph_ms = statistics.median(time_graph(lambda i: x.add_(1), 1, GPU_SETTINGS).samples_ms)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    eager = []
    for _ in range(20):
        torch.cuda.synchronize()
        start.record()
        x.add_(1)
        end.record()
        end.synchronize()
        eager.append(start.elapsed_time(end))
    assert graph_ms < statistics.median(eager) / 2, (graph_ms, eager)
