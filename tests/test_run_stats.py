"""opbench.run_stats: a run's statistics from its jobs' benchmark files and its timing records."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from opbench import run_stats

RUN_ID = "20261206T120000Z-abcdef"
DEVICES = {"cuda": "cuda", "cudnn": "cuda", "iree-llvm-cpu": "cpu"}
POINT = "{backend}/v/conv2d/nhwc_fhwc/f16/n1_h8_w8_c8_k8_r3_s3_st1_p1"


def _job(results: Path, rule: str, point: str, seconds: float, mtime: float | None = None) -> None:
    tsv = results / "logs" / rule / f"{point}.bench.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100\n")
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
