"""opbench.run_stats: a run's statistics from its jobs' benchmark files and its timing records."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from opbench import phases, run_stats

RUN_ID = "20261206T120000Z-abcdef"
DEVICES = {"cuda": "cuda", "cudnn": "cuda", "iree-llvm-cpu": "cpu"}
POINT = "{backend}/v/conv2d/nhwc_fhwc/f16/n1_h8_w8_c8_k8_r3_s3_st1_p1"


def _job(
    results: Path, rule: str, point: str, seconds: float, mtime: float | None = None,
    spans: dict[str, float] | None = None,
) -> None:  # fmt: skip
    """A job's Snakemake benchmark file and, with `spans`, its log ending with them (opbench.phases)."""
    tsv = results / "logs" / rule / f"{point}.bench.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100\n")
    if spans is not None:
        recorder = phases.Phases()
        recorder.spans.update(spans)
        tsv.with_name(tsv.name.replace(".bench.tsv", ".log")).write_text(f"job output\n{recorder.log_line()}\n")
    if mtime is not None:
        os.utime(tsv, (mtime, mtime))


def _timing(results: Path, point: str, samples_ms: list[float], inner: int | None, run_id: str = RUN_ID) -> None:
    bench = results / "runs" / point / "bench.json"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(json.dumps({"samples_ms": samples_ms, "run_id": run_id, **({"inner": inner} if inner else {})}))


def test_gpu_point_overhead_is_its_jobs_wall_time_beyond_its_timed_samples(tmp_path: Path) -> None:
    started = time.time() - 5
    results, logs = tmp_path / "results/m", tmp_path / "results/logs"
    for backend, (run_s, bench_s) in {"cuda": (0.1, 0.6), "cudnn": (0.2, 0.9)}.items():
        point = POINT.format(backend=backend)
        _job(results, "run", point, run_s)
        _job(results, "benchmark", point, bench_s)
        _job(results, "verify", point, 0.5)
        _timing(results, point, [0.01] * 10, inner=4000)  # 10 samples of 4000 launches of 10 us: 0.4 s timed
    cpu = POINT.format(backend="iree-llvm-cpu")
    _job(results, "run", cpu, 1.0)
    _job(results, "benchmark", cpu, 2.0)
    _timing(results, cpu, [1.0, 2.0], inner=None)  # no inner: one call per sample (a lower bound)
    _job(results, "run", POINT.format(backend="old"), 9.0, mtime=started - 100)  # an earlier run's job
    _timing(results, POINT.format(backend="other"), [5.0], inner=1, run_id="another run")
    _job(logs.parent, "build", "cuda/v/conv2d", 30.0)  # results/logs/build/...

    stats = run_stats.collect(results=results, logs=logs, started=started, wall_s=40.0, run_id=RUN_ID, devices=DEVICES)
    assert stats["points_timed"] == 3 and stats["gpu_points_timed"] == 2
    assert stats["gpu_timed_s"] == pytest.approx(0.8) and stats["timed_s"] == pytest.approx(0.803)
    overhead = stats["gpu_point_overhead_s"]
    assert overhead["points"] == 2 and overhead["median"] == pytest.approx((0.3 + 0.7) / 2)
    assert stats["rules"]["run"] == {"jobs": 3, "seconds": 1.3}  # the earlier run's job is not counted
    assert stats["rules"]["build"] == {"jobs": 1, "seconds": 30.0} and stats["jobs"] == 9
    assert stats["wall_per_gpu_point_s"] == 20.0


def test_a_run_without_gpu_points_has_no_gpu_overhead(tmp_path: Path) -> None:
    stats = run_stats.collect(
        results=tmp_path, logs=tmp_path / "logs", started=0, wall_s=1.0, run_id=RUN_ID, devices=DEVICES
    )
    assert stats["gpu_point_overhead_s"] is None and stats["wall_per_gpu_point_s"] is None and stats["jobs"] == 0


def test_iree_samples_count_their_iterations() -> None:
    timing = {"samples_ms": [0.5, 0.25], "iterations_per_sample": [100, 400]}
    assert run_stats.timed_seconds(timing) == pytest.approx(0.15)


def test_job_phases_per_rule_and_backend_with_what_they_leave_unaccounted(tmp_path: Path) -> None:
    """Each phase's median (a job without it counts 0) and total over a backend's jobs of a rule, the part of a span
    its inner spans leave (`(other)`), and the wall the outermost phases do not cover; jobs of an earlier run and
    logs without phases (older code) are left out."""
    started = time.time() - 5
    results, logs = tmp_path / "results/m", tmp_path / "results/logs"
    served = {"cli_start": 0.05, "to_worker": 0.01, "backend/samples": 0.1, "backend/check_outputs": 0.02}
    for shape, (wall, backend_s, extra) in enumerate([
        (3.5, 0.2, {"connect/start_worker": 3.0, "connect": 3.01}),  # the first job started the worker
        (0.45, 0.25, {"connect": 0.01}),
        (0.4, 0.15, {"connect": 0.01}),
    ]):  # fmt: skip
        point = POINT.format(backend="cudnn").replace("p1", f"p{shape}")
        _job(results, "benchmark", point, wall, spans={**served, **extra, "backend": backend_s})
    cpu = POINT.format(backend="iree-llvm-cpu")
    _job(results, "run", cpu, 1.0, spans={"import_jobs": 0.5, "backend/iree_tool": 0.3, "backend": 0.35})
    _job(results, "run", POINT.format(backend="cuda"), 0.3)  # no log: not in the phases
    _job(results, "benchmark", POINT.format(backend="cuda"), 9.0, mtime=started - 100, spans={"backend": 8.0})

    stats = run_stats.collect(results=results, logs=logs, started=started, wall_s=40.0, run_id=RUN_ID, devices=DEVICES)
    table = stats["job_phases_s"]
    assert set(table) == {"run", "benchmark"} and set(table["benchmark"]) == {"cudnn"}
    cudnn = table["benchmark"]["cudnn"]
    assert cudnn["jobs"] == 3 and cudnn["wall"] == {"median": 0.45, "total": 4.35}
    assert cudnn["phases"]["connect"] == {"median": 0.01, "total": 3.03, "jobs": 3}
    assert cudnn["phases"]["connect/start_worker"] == {"median": 0.0, "total": 3.0, "jobs": 1}
    assert cudnn["phases"]["connect/(other)"] == {"median": 0.0, "total": pytest.approx(0.01), "jobs": 1}
    assert cudnn["phases"]["backend/(other)"]["median"] == pytest.approx(0.08)  # 0.2 - 0.12: the setup, copies
    # Each span before its inner ones, in the order the jobs recorded them.
    assert list(cudnn["phases"]) == [
        "cli_start", "to_worker", "backend", "backend/samples", "backend/check_outputs", "backend/(other)",
        "connect", "connect/start_worker", "connect/(other)",
    ]  # fmt: skip
    # Unaccounted: wall - (cli_start + to_worker + backend + connect) = 3.5 - 3.27, 0.45 - 0.32, 0.4 - 0.22.
    assert cudnn["unaccounted"]["median"] == pytest.approx(0.18)
    assert cudnn["unaccounted"]["total"] == pytest.approx(0.23 + 0.13 + 0.18)
    llvm = table["run"]["iree-llvm-cpu"]
    assert llvm["jobs"] == 1 and llvm["unaccounted"] == {"median": 0.15, "total": 0.15}
    assert llvm["phases"]["backend/(other)"]["total"] == pytest.approx(0.05)
