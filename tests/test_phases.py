"""opbench.phases: the recorder of a job's wall-clock spans (names, nesting, sums, failures), the current recording
code below a job's entry point reaches, the log line run_stats reads back, and the process's start."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from opbench import phases


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """phases.now on a clock the test moves (clock[0], seconds)."""
    t = [100.0]
    monkeypatch.setattr(phases, "now", lambda: t[0])
    yield t


def test_spans_nest_as_outer_slash_inner_and_repeated_names_add_up(clock: list[float]) -> None:
    recorder = phases.Phases()
    with recorder.span("backend"):
        clock[0] += 1
        for _ in range(2):
            with recorder.span("request"):
                clock[0] += 0.25
    with recorder.span("write"):
        clock[0] += 2
    recorder.add("to_worker", 0.5)
    recorder.add("to_worker", 0.25)
    assert recorder.spans == {"backend/request": 0.5, "backend": 1.5, "write": 2.0, "to_worker": 0.75}


def test_a_span_that_raises_is_recorded_and_the_next_is_not_nested_in_it(clock: list[float]) -> None:
    recorder = phases.Phases()
    with pytest.raises(RuntimeError), recorder.span("backend"):
        clock[0] += 3
        raise RuntimeError("a kernel failed")
    with recorder.span("write"):
        clock[0] += 1
    assert recorder.spans == {"backend": 3.0, "write": 1.0}


def test_module_spans_record_into_the_current_recording_only(clock: list[float]) -> None:
    with phases.span("outside"):  # no recording: nothing to record into, nothing fails
        clock[0] += 1
    assert phases.current() is None
    with phases.recording() as outer:
        assert phases.current() is outer
        with phases.span("load_inputs"):
            clock[0] += 1
        with phases.recording() as inner:  # a job function under the CLI's or the worker's recording joins it
            assert inner is outer
            with phases.span("backend"), phases.span("samples"):
                clock[0] += 2
    assert phases.current() is None
    assert outer.spans == {"load_inputs": 1.0, "backend/samples": 2.0, "backend": 2.0}


def test_the_log_line_reads_back_and_the_last_one_counts() -> None:
    recorder = phases.Phases()
    recorder.add("backend", 0.1234567)
    recorder.add("backend/samples", 0.1)
    text = f'harness warning\n{phases.LOG_PREFIX}{{"old": 1.0}}\nmore\n{recorder.log_line()}\n'
    assert phases.from_log(text) == {"backend": 0.123457, "backend/samples": 0.1}
    assert phases.from_log("a log of older code\n") is None


def test_the_process_start_is_before_its_first_line_on_the_same_clock() -> None:
    """A child's /proc start is before its first instant in Python, by its interpreter's start (not seconds), and
    after the parent launched it: the two processes' instants are on one clock."""
    code = "import time; t = time.perf_counter(); from opbench import phases; print(t, phases.process_started())"
    before = phases.now()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    after = phases.now()
    first, created = float(out[0]), float(out[1])
    assert before - 0.02 <= created <= first <= after  # /proc counts 10 ms ticks, rounded down
    assert first - created < 5
    assert phases.process_started() < time.perf_counter()
