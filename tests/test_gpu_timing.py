"""opbench.gpu_timing: the L2 copies rule, the routine's control flow through a fake torch.cuda (outputs that rotate
with the buffer sets, the eager fallback), the check of the timed outputs, and (marked `gpu`, skipped without an NVIDIA
GPU) the routine on a real card."""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import types
import weakref
from collections.abc import Iterator

import ml_dtypes
import numpy as np
import pytest

from opbench import hardware, phases
from opbench.backends import BenchSettings
from opbench.gpu_timing import (
    MAX_COPIES,
    MAX_INNER,
    OUTPUT_UNIT_ROUNDOFF,
    buffer_copies,
    check_timed_outputs,
    compare_outputs,
    same_bits,
    time_graph,
    torch_dtype,
)

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

    An eager launch takes eager_ms; launches inside `graph()` are recorded, not run (or raise, with capture_fails);
    each replay takes the next of replay_ms. Events read the clock. `launch_out` is a launch that returns a new
    output, as an op that allocates its result does.
    """

    def __init__(self, eager_ms: float, replay_ms: list[float]) -> None:
        self.clock = 0.0
        self.eager_ms = eager_ms
        self.replay_ms = replay_ms
        self.eager: list[int] = []  # buffer sets of the launches run eagerly, in order
        self.captured: list[int] | None = None
        self.graphs: list[FakeGraph] = []
        self.capture_fails = False
        self.outputs: list[weakref.ref[FakeOutput]] = []  # every output a launch returned, in order
        self.events: list[str] = []  # "capture_end", "poison <serial>", "replay"
        self.latest: dict[int, weakref.ref[FakeOutput]] = {}  # per buffer set, its latest output

    def launch(self, i: int) -> None:
        if self.captured is not None:
            if self.capture_fails:
                raise RuntimeError("operation not permitted when stream is capturing\nmore detail")
            self.captured.append(i)
        else:
            self.eager.append(i)
            self.clock += self.eager_ms

    def launch_out(self, i: int) -> FakeOutput:
        """A launch returning its output. Every buffer set's latest output must still be alive when it runs (this
        one's too: it is released only once the new one exists)."""
        assert all(ref() is not None for ref in self.latest.values()), "a buffer set's latest output was freed"
        self.launch(i)
        out = FakeOutput(self, i, len(self.outputs), captured=self.captured is not None)
        self.outputs.append(weakref.ref(out))
        self.latest[i] = self.outputs[-1]
        return out

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
        try:
            yield
        finally:
            self.captured = None
            self.events.append("capture_end")


class FakeOutput:
    def __init__(self, cuda: FakeCuda, buffer_set: int, serial: int, captured: bool) -> None:
        self.cuda, self.buffer_set, self.serial, self.captured = cuda, buffer_set, serial, captured
        self.poisoned = False

    def is_floating_point(self) -> bool:
        return True

    def fill_(self, value: float) -> FakeOutput:
        assert value != value  # NaN
        self.poisoned = True
        self.cuda.events.append(f"poison {self.serial}")
        return self


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
        self.cuda.events.append("replay")
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
    assert timing.outputs is None  # the launches return nothing
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


def test_outputs_rotate_with_the_buffer_sets(fake: FakeCuda) -> None:
    """Each buffer set keeps the output of its latest launch until its next launch returns (launch_out asserts it
    at every launch); the timing returns, per set, the graph's last output of it, and nothing else stays alive."""
    timing = time_graph(fake.launch_out, 3, settings(min_sample_ms=3.5), noun="convolutions")
    assert fake.graphs[0].launches == [0, 1, 2, 0, 1, 2, 0]
    outputs = timing.outputs
    assert outputs is not None and [out.buffer_set for out in outputs] == [0, 1, 2]
    assert all(out.captured for out in outputs)
    # The graph's launches are the last 7 outputs: set 0's last is the 7th, set 1's the 5th, set 2's the 6th.
    first_captured = len(fake.outputs) - 7
    assert [out.serial - first_captured for out in outputs] == [6, 4, 5]
    assert not any(out.poisoned for out in outputs)  # poisoning is asked for
    assert timing.method.endswith("7 convolutions, 3 rotating input and output copies")
    alive = [ref() for ref in fake.outputs if ref() is not None]
    assert sorted(id(out) for out in alive) == sorted(id(out) for out in outputs)


def test_poisoned_outputs_are_filled_after_capture_before_replays(fake: FakeCuda) -> None:
    timing = time_graph(fake.launch_out, 2, settings(), poison_outputs=True)
    assert timing.outputs is not None and all(out.poisoned for out in timing.outputs)
    poisons = [e for e in fake.events if e.startswith("poison")]
    assert sorted(poisons) == sorted(f"poison {out.serial}" for out in timing.outputs)
    assert fake.events.index("capture_end") < fake.events.index(poisons[0])
    assert max(fake.events.index(p) for p in poisons) < fake.events.index("replay")


def test_capture_failure_raises_without_eager_fallback(fake: FakeCuda) -> None:
    fake.capture_fails = True
    with pytest.raises(RuntimeError, match="not permitted"):
        time_graph(fake.launch, 1, settings())


def test_capture_failure_falls_back_to_eager_launches(fake: FakeCuda) -> None:
    """Where the launches cannot be captured, `inner` eager launches lie between the events, and `method` says so."""
    fake.capture_fails = True
    eager_before = 1 + 20 + 3  # untimed, warm-up (10 ms of 0.5 ms launches), side stream
    timing = time_graph(fake.launch_out, 2, settings(), poison_outputs=True, eager_fallback=True)
    assert timing.inner == 8 and timing.samples_ms == [0.5, 0.5, 0.5]
    assert len(fake.eager) == eager_before + 3 * 8 and fake.eager[eager_before:] == [0, 1] * 12
    assert fake.replay_ms == [100.0, 8.0, 16.0, 4.0]  # no replay
    assert timing.method == (
        "CUDA events around 8 back-to-back eager launches (CUDA-graph capture failed: RuntimeError: operation not "
        "permitted when stream is capturing), 2 rotating input and output copies"
    )
    outputs = timing.outputs
    assert outputs is not None and [out.buffer_set for out in outputs] == [0, 1]
    assert not any(out.captured for out in outputs)  # the eager launches' outputs, not the failed capture's


def test_the_timings_phases_follow_its_steps(fake: FakeCuda, monkeypatch: pytest.MonkeyPatch) -> None:
    """With opbench.phases on the simulated device clock, each phase is the device time of its launches: the
    untimed launch, 20 warm-up launches of 0.5 ms, 3 on the side stream (captured ones take none), the untimed
    replay and the 3 timed ones; with the eager fallback, the timed launches are the samples and no replay is."""
    monkeypatch.setattr(phases, "now", lambda: fake.clock / 1000)
    with phases.recording() as graph:
        time_graph(fake.launch, 1, settings())
    steps = {"first_launch": 0.0005, "warmup": 0.010, "capture": 0.0015}
    assert graph.spans == pytest.approx({**steps, "first_replay": 0.100, "samples": 0.028})
    assert list(graph.spans) == ["first_launch", "warmup", "capture", "first_replay", "samples"]
    fake.capture_fails = True
    with phases.recording() as eager:
        time_graph(fake.launch_out, 2, settings(), poison_outputs=True, eager_fallback=True)
    assert eager.spans == pytest.approx({**steps, "samples": 3 * 8 * 0.0005})


# ---------------------------------------------------------------- the check of the timed outputs


def test_compare_outputs_bitwise_equal_is_consistent() -> None:
    a = np.array([[1.0, -2.5], [np.nan, 0.0]], dtype=np.float32)  # identical NaN bits compare equal, as memcmp does
    cmp = compare_outputs(a, a.copy(), OUTPUT_UNIT_ROUNDOFF["f32"])
    assert cmp.consistent and cmp.bitwise_mismatches == 0 and cmp.max_abs_diff == 0.0


def test_compare_outputs_one_ulp_of_a_16_bit_output_is_consistent() -> None:
    ref = np.array([1.0, 1.5, -3.0, 1000.0], dtype=np.float16)
    got = ref.copy()
    got[1] = np.nextafter(ref[1], np.float16(2))  # one f16 ulp up
    got[3] = np.nextafter(ref[3], np.float16(0))  # one f16 ulp down
    cmp = compare_outputs(ref, got, OUTPUT_UNIT_ROUNDOFF["f16"])
    assert cmp.consistent and cmp.bitwise_mismatches == 2
    bf16 = np.array([3.0, 5.0], dtype=ml_dtypes.bfloat16)
    up = bf16.copy()
    up.view(np.uint16)[0] += 1  # one bf16 ulp up
    assert up[0] != bf16[0]
    assert compare_outputs(bf16, up, OUTPUT_UNIT_ROUNDOFF["bf16"]).consistent


def test_compare_outputs_two_ulps_of_f16_or_the_f32_roundoff_test_fail() -> None:
    ref = np.array([1.0, 2.0], dtype=np.float16)
    got = ref.copy()
    got[0] = np.float16(1.0 + 2**-9)  # two ulps
    assert not compare_outputs(ref, got, OUTPUT_UNIT_ROUNDOFF["f16"]).consistent
    # A 1-ulp f16 difference judged as an f32 output is far more than f32 rounding explains.
    got[0] = np.float16(1.0 + 2**-10)
    assert not compare_outputs(ref, got, OUTPUT_UNIT_ROUNDOFF["f32"]).consistent


def test_compare_outputs_a_nan_or_one_element_off_fails() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000).astype(np.float32)
    poisoned = ref.copy()
    poisoned[17] = np.nan  # an element the timed launches never wrote
    cmp = compare_outputs(ref, poisoned, OUTPUT_UNIT_ROUNDOFF["f32"])
    assert not cmp.consistent and cmp.bitwise_mismatches == 1 and cmp.max_abs_diff == float("inf")
    assert cmp.to_dict() == {"bitwise_mismatches": 1, "max_abs_diff": None}
    off = ref.copy()
    off[500] *= 1.001
    cmp = compare_outputs(ref, off, OUTPUT_UNIT_ROUNDOFF["f32"])
    assert not cmp.consistent and cmp.bitwise_mismatches == 1 and cmp.max_abs_diff > 0
    tiny = ref.copy()
    tiny[500] = np.nextafter(ref[500], np.float32(np.inf))  # one f32 ulp: reassociation
    assert compare_outputs(ref, tiny, OUTPUT_UNIT_ROUNDOFF["f32"]).consistent
    assert not compare_outputs(ref, ref[:-1], OUTPUT_UNIT_ROUNDOFF["f32"]).consistent  # another shape


def test_check_timed_outputs_compares_each_buffer_set_with_its_fresh_run() -> None:
    sets = [np.full(4, i, dtype=np.float32) for i in range(3)]
    fresh_calls: list[int] = []

    def fresh(i: int) -> np.ndarray:
        fresh_calls.append(i)
        return sets[i].copy()

    cmp = check_timed_outputs([s.copy() for s in sets], fresh, OUTPUT_UNIT_ROUNDOFF["f32"], np.asarray)
    assert cmp.consistent and fresh_calls == [0, 1, 2]
    swapped = [sets[0], sets[2], sets[1]]  # set 1 timed set 2's output
    cmp = check_timed_outputs(swapped, fresh, OUTPUT_UNIT_ROUNDOFF["f32"], np.asarray)
    assert not cmp.consistent and cmp.bitwise_mismatches == 8


def test_check_timed_outputs_copies_to_the_host_only_the_sets_that_are_not_identical() -> None:
    sets = [np.full(4, i, dtype=np.float32) for i in range(3)]
    copied: list[int] = []

    def to_host(a: np.ndarray) -> np.ndarray:
        copied.append(int(a[0]))
        return a

    def identical(a: np.ndarray, b: np.ndarray) -> bool:
        return a.tobytes() == b.tobytes()

    cmp = check_timed_outputs([s.copy() for s in sets], lambda i: sets[i].copy(), 2.0**-24, to_host, identical)
    assert cmp.consistent and cmp.bitwise_mismatches == 0 and copied == []
    # Set 1 timed a wrong output: only that set goes to the host, and the comparison still fails there.
    wrong = [sets[0].copy(), sets[1] + 1, sets[2].copy()]
    cmp = check_timed_outputs(wrong, lambda i: sets[i].copy(), 2.0**-24, to_host, identical)
    assert not cmp.consistent and cmp.bitwise_mismatches == 4 and copied == [1, 2]


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


@pytest.mark.gpu
@gpu
def test_graph_outputs_rotate_and_hold_the_replayed_results() -> None:
    """On a card: an op that allocates its output, three buffer sets; the kept outputs are distinct graph-pool
    tensors, poisoned before the replays, and hold exactly what an eager launch on their set computes."""
    torch = pytest.importorskip("torch")
    sources = [torch.randn(1 << 20, device="cuda") + i for i in range(3)]
    timing = time_graph(lambda i: sources[i] * 3.0 + 1.0, 3, GPU_SETTINGS, poison_outputs=True)
    outputs = timing.outputs
    assert outputs is not None and len({out.data_ptr() for out in outputs}) == 3
    torch.cuda.synchronize()
    for i, out in enumerate(outputs):
        fresh = sources[i] * 3.0 + 1.0
        assert compare_outputs(fresh.cpu().numpy(), out.cpu().numpy(), OUTPUT_UNIT_ROUNDOFF["f32"]).consistent
    assert "CUDA-graph replay" in timing.method and "input and output copies" in timing.method


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype_name", ["f32", "f16", "bf16"])
def test_same_bits_on_the_device(dtype_name: str) -> None:
    """same_bits is a bitwise test: a copy (NaNs included) is the same bits; one element one ulp off, -0.0 for
    0.0, another shape or dtype are not; a strided view compares by its logical order."""
    torch = pytest.importorskip("torch")
    dtype = torch_dtype(torch, dtype_name)
    a = torch.randn(64, 33, device="cuda").to(dtype)
    a[3, 5] = float("nan")
    a[7, 1] = 0.0
    assert same_bits(a, a.clone())
    off = a.clone()
    off.view(torch.int16 if off.element_size() == 2 else torch.int32)[10, 10] += 1  # the last bit: one ulp
    assert not same_bits(a, off)
    signed = a.clone()
    signed[7, 1] = -0.0
    assert not same_bits(a, signed)
    assert not same_bits(a, a.reshape(33, 64).clone())
    assert not same_bits(a.float(), a.double())
    assert same_bits(a.t(), a.t().contiguous())
