"""The disk check before a run (opbench.footprint): the estimate is what the jobs write, only new problems of points
that run here count, and `opbench bench` stops before Snakemake with both numbers where they do not fit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from opbench import cli, driver, footprint, jobs
from opbench.config import load
from opbench.matrix import Point

REPO = Path(__file__).resolve().parents[1]


def point(op: str, shape: str, dtype: str, layout: str, backend: str = "iree-llvm-cpu") -> Point:
    return Point(op=op, suite="s", layer="l", count=1, batch=1, shape=shape, dtype=dtype, layout=layout,
                 backend=backend, variant="default")  # fmt: skip


PROBLEMS = [
    point("conv2d", "n2_h9_w7_c5_k6_r3_s3_st1_p1", "f32", "nhwc_hwcf"),
    point("conv2d", "n2_h9_w7_c5_k6_r3_s3_st1_p1", "f16", "nchw_fchw"),
    point("conv2d", "n1_h8_w8_c4_k8_r1_s1_st1_p0", "bf16", "nhwc_fhwc"),
    point("attention", "b2_h3_s40_d16_causal", "f16", "bhsd"),
    point("depthwise_conv2d", "n1_h9_w9_c8_r3_s3_st2_p1", "f16", "nhwc_hwc"),
    point("separable_conv2d", "n1_h9_w9_c8_k16_r3_s3_st1_p1", "bf16", "nhwc_hwc_kc"),
]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: f"{p.op}-{p.dtype}")
def test_the_estimate_is_what_the_problem_jobs_write(tmp_path: Path, problem: Point) -> None:
    """Inputs, reference and scales as make_inputs and compute_reference write them, to within the .npy/.npz
    headers (a few hundred bytes an array)."""
    files = {name: tmp_path / name for name in ("inputs.npz", "reference.npy", "scale.npz")}
    fields = dict(op=problem.op, shape=problem.shape, layout=problem.layout)
    jobs.make_inputs(**fields, dtype=problem.dtype, seed=1, out=files["inputs.npz"])
    jobs.compute_reference(**fields, inputs=files["inputs.npz"], out=files["reference.npy"],
                           scale_out=files["scale.npz"])  # fmt: skip
    written = sum(path.stat().st_size for path in files.values())
    assert 0 <= written - footprint.problem_bytes(problem) < 2500


def test_only_new_problems_count_each_once_and_outputs_where_kept(tmp_path: Path) -> None:
    conv, other_backend = PROBLEMS[0], point("conv2d", PROBLEMS[0].shape, "f32", "nhwc_hwcf", backend="cuda")
    attention = PROBLEMS[3]
    points = [conv, other_backend, attention]
    problems = footprint.problem_bytes(conv) + footprint.problem_bytes(attention)
    assert footprint.missing_bytes(points, tmp_path, "m", keep_outputs=False) == (problems, 2)
    outputs = 2 * footprint.output_bytes(conv) + footprint.output_bytes(attention)
    assert footprint.output_bytes(attention) == 2 * 3 * 40 * 16 * 2  # B·H·S·D in f16
    assert footprint.missing_bytes(points, tmp_path, "m", keep_outputs=True) == (problems + outputs, 2)
    reference = tmp_path / "results/problems" / attention.problem_dir / "reference.npy"
    verdict = tmp_path / "results/m/runs" / attention.run_dir / "verify.json"
    for made in (reference, verdict):
        made.parent.mkdir(parents=True)
        made.touch()
    assert footprint.missing_bytes(points, tmp_path, "m", keep_outputs=True) == (
        footprint.problem_bytes(conv) + 2 * footprint.output_bytes(conv),
        1,
    )


def test_points_that_do_not_run_here_write_no_problem_files() -> None:
    config = load()
    here = footprint.executed_points(config, {"cpu"})
    assert here and {p.backend for p in here} == {"iree-llvm-cpu"}  # rocm and vulkan compile only; GPU rows SKIP
    with_gpu = footprint.executed_points(config, {"cpu", "cuda"})
    assert {"iree-llvm-cpu", "iree-cuda", "cuda"} <= {p.backend for p in with_gpu}


def test_the_attention_race_fits_a_gpu_nodes_disk_now() -> None:
    """config/attention.yaml's problems (the FlashAttention-2 grid, 33.5 M elements a tensor): ~0.74 GB each, where
    float32 inputs and float64 scales made them 1.2 GB and filled a 64 GiB disk with the outputs."""
    config = load(REPO / "config/attention.yaml")
    assert config["keep_run_outputs"] is False
    points = footprint.executed_points(config, {"cpu", "cuda"})
    needed, problems = footprint.missing_bytes(points, Path("/nonexistent"), "m", keep_outputs=False)
    assert problems >= 48
    assert 0.7e9 < needed / problems < 0.75e9


def test_bench_stops_before_snakemake_where_the_problems_do_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def no_snakemake(args: list[str]) -> int:
        raise AssertionError(f"Snakemake ran: {args}")

    monkeypatch.setattr(driver, "_snakemake", no_snakemake)
    monkeypatch.setattr(footprint.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    monkeypatch.setattr(driver, "REPO", tmp_path)  # no problem files there yet
    assert cli.main(["bench", "--cores", "1"]) == 2
    said = capsys.readouterr().err
    assert "opbench: not enough disk:" in said and "GB are free" in said and "--skip-disk-check" in said
    assert "Traceback" not in said


def test_the_check_passes_where_they_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free: dict[str, Any] = {"free": 10**12}
    monkeypatch.setattr(footprint.shutil, "disk_usage", lambda path: SimpleNamespace(free=free["free"]))
    footprint.check(load(), {"cpu"}, tmp_path)
    free["free"] = 10**6
    with pytest.raises(footprint.DiskSpaceError, match=r"\(96 new problems\) need 0\.\d GB .*and run outputs"):
        footprint.check(load(), {"cpu"}, tmp_path)
