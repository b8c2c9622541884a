"""Where a run or benchmark job's wall time goes (issue #20): wall-clock spans of its parts, in seconds by name.
Standard library only: the GPU worker's thin client (opbench.worker_client) records its own spans.

A job's entry point opens a recording (`with phases.recording() as job_phases:`); code below it, however deep
(opbench.jobs, a backend, opbench.gpu_timing, the harness calls), marks its parts with `with phases.span("name"):`,
which records into the current recording and does nothing outside one, so no recorder is passed down through the
backends' interfaces. A span opened inside another is named `outer/inner`; a name recorded twice (two harness
requests, a retried connection) adds up. Spans of other processes arrive as numbers (`Phases.add`): the client's
reach the worker in its request, the worker's come back in its answer. Instants compared across processes are
`now()`, CLOCK_MONOTONIC on Linux (the one clock of every process of a host; the worker is Linux only).

Where they go: the benchmark job's timing JSON (`phases_s`: the spans up to its writing) and, for every run and
benchmark job, one line at the end of the job's log (`LOG_PREFIX` + JSON), which opbench.run_stats reads beside the
job's Snakemake benchmark file. The log rather than a file beside the output: it is already a declared file of the
job (truncated by every run of it: no stale file of an earlier run to tell apart), it is written by the job's own
process last, so it holds the client's spans after the worker's answer too, and a failed job's log has them as well.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
from collections.abc import Iterator

LOG_PREFIX = "opbench phases: "
now = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across the processes of one host


class Phases:
    """One job's spans: seconds by name (`outer/inner` for a span inside another)."""

    def __init__(self) -> None:
        self.spans: dict[str, float] = {}
        self._open: list[str] = []  # the names of the spans open now, outermost first

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Time the block as `name` (inside an open span: `outer/name`), also where it raises."""
        full = "/".join([*self._open, name])
        self._open.append(name)
        started = now()
        try:
            yield
        finally:
            self._open.pop()
            self.add(full, now() - started)

    def add(self, name: str, seconds: float) -> None:
        self.spans[name] = self.spans.get(name, 0.0) + seconds

    def to_dict(self) -> dict[str, float]:
        return {name: round(seconds, 6) for name, seconds in self.spans.items()}

    def log_line(self) -> str:
        """The line a job's log ends with (opbench.run_stats reads it back with `from_log`)."""
        return LOG_PREFIX + json.dumps(self.to_dict())


_current: contextvars.ContextVar[Phases | None] = contextvars.ContextVar("opbench_phases", default=None)


@contextlib.contextmanager
def recording() -> Iterator[Phases]:
    """The current recording, or, outside one, a new one that `span` records into until the block ends: a job
    function called by hand (a test, a script) records as one called by the CLI or the worker."""
    recorder = _current.get()
    if recorder is not None:
        yield recorder
        return
    recorder = Phases()
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)


def span(name: str) -> contextlib.AbstractContextManager[None]:
    """`Phases.span` of the current recording; outside one, nothing is recorded."""
    recorder = _current.get()
    return contextlib.nullcontext() if recorder is None else recorder.span(name)


def current() -> Phases | None:
    return _current.get()


def from_log(text: str) -> dict[str, float] | None:
    """The spans of a job's log (its last phases line); None where it has none."""
    for line in reversed(text.splitlines()):
        if line.startswith(LOG_PREFIX):
            return json.loads(line.removeprefix(LOG_PREFIX))
    return None


def process_started() -> float | None:
    """When this process was created, on `now()`'s clock: /proc's start time (clock ticks since boot, usually 10 ms)
    moved from CLOCK_BOOTTIME to CLOCK_MONOTONIC. None where /proc does not say (not Linux) or the clocks disagree
    (a start after now)."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime; fields[0] is field 3
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot
    return now() - age if age >= 0 else None
