"""A run or benchmark job's phases (opbench.phases) as opbench.jobs and the CLI record them, through a stand-in
backend: the benchmark's timing JSON holds them up to its writing, the job's log ends with all of them (what
opbench.run_stats reads), a failed job's log too. The worker's side: tests/test_worker.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opbench import cli, jobs, phases
from opbench.backends import BenchSettings, Job

PROBLEM = {"op": "conv2d", "shape": "n1_h5_w4_c2_k3_r3_s3_st1_p1", "dtype": "f32", "layout": "nhwc_hwcf"}


class StubBackend:
    """Doubles the input; its work is one span of its own, as a backend's harness or tool calls are."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def run(self, job: Job) -> np.ndarray:
        with phases.span("kernel"):
            if self.fail:
                raise RuntimeError("the kernel failed")
            return job.inputs["input"] * 2

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        with phases.span("kernel"):
            return {"samples_ms": [1.0, 2.0, 3.0], "method": "stub"}


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(jobs, "get_backend", lambda name: StubBackend(fail=name == "failing"))
    jobs.make_inputs(**PROBLEM, seed=1, out=tmp_path / "inputs.npz")
    return tmp_path / "inputs.npz"


def _args(command: str, inputs: Path, out: Path, backend: str = "stub") -> list[str]:
    args = [command, "--backend", backend, "--variant", "v", "--inputs", str(inputs), "--out", str(out)]
    args += [f"--{key}={value}" for key, value in PROBLEM.items()]
    if command == "benchmark":
        args += ["--warmup-ms", "1", "--repetitions", "3", "--min-sample-ms", "1", "--flush-l2", "0"]
    return args


def test_a_benchmark_job_called_by_hand_writes_its_phases_up_to_the_writing(inputs: Path, tmp_path: Path) -> None:
    jobs.benchmark(
        backend="stub", variant="v", **PROBLEM, inputs=inputs, artifact=None, options={},
        settings=BenchSettings(warmup_ms=1, repetitions=3, min_sample_ms=1, flush_l2=False), out=tmp_path / "b.json",
    )  # fmt: skip
    timing = json.loads((tmp_path / "b.json").read_text())
    assert list(timing["phases_s"]) == ["load_inputs", "backend/kernel", "backend"]
    assert timing["phases_s"]["backend"] >= timing["phases_s"]["backend/kernel"] > 0
    assert timing["stats"]["samples"] == 3  # the timing is as before


def test_a_run_jobs_log_ends_with_its_phases(inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(_args("run", inputs, tmp_path / "out.npy"), started=phases.now()) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(phases.LOG_PREFIX)
    spans = phases.from_log(last)
    assert spans is not None
    # python_start only where /proc says when the process started (Linux), as on the GPU machines
    assert [name for name in spans if name != "python_start"] == [
        "cli_start", "import_jobs", "load_inputs", "backend/kernel", "backend", "write_output"
    ]  # fmt: skip
    with np.load(inputs) as data:
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data["input"] * 2)


def test_a_benchmark_jobs_log_has_the_timing_jsons_phases_and_its_writing(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(_args("benchmark", inputs, tmp_path / "b.json")) == 0
    logged = phases.from_log(capsys.readouterr().out)
    written = json.loads((tmp_path / "b.json").read_text())["phases_s"]
    assert logged is not None and logged == {**written, "write_output": logged["write_output"]}
    assert list(logged) == ["import_jobs", "load_inputs", "backend/kernel", "backend", "write_output"]


def test_a_failed_jobs_log_has_its_phases_too(inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(RuntimeError, match="the kernel failed"):
        cli.main(_args("run", inputs, tmp_path / "out.npy", backend="failing"))
    spans = phases.from_log(capsys.readouterr().out)
    assert spans is not None and list(spans) == ["import_jobs", "load_inputs", "backend/kernel", "backend"]
    assert not (tmp_path / "out.npy").exists()
