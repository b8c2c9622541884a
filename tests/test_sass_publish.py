"""SASS summaries (read by the CUDA build rule) and publishing a GPU run with its roofline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from opbench.publish import UnpairedRows, publish
from opbench.records import make_record, read_summary, write_record
from opbench.sass import parse_sass

SASS = """
	code for sm_90
		Function : _Z6kernelPf
	.headerflags	@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0070*/                   LDG.E.128.CONSTANT R8, desc[UR6][R2.64] ;   /* 0x0000000602087981 */
        /*0080*/                   LDS.128 R12, [R3] ;                         /* 0x0000000003 */
        /*00e0*/                   FFMA R9, R8, R9, R10 ;                      /* 0x0000000908097223 */
        /*00f0*/              @!P0 FFMA R9, R8, R9, R10 ;                      /* 0x0000000908097223 */
        /*0100*/                   REDG.E.ADD.F32.FTZ.RN.STRONG.GPU desc[UR6][R6.64], R11 ; /* 0x0000 */
        /*0110*/                   HGMMA.64x128x16.F32 R24, gdesc[UR4], R24 ; /* 0x0000 */
arch = sm_80
	code for sm_80
		Function : _Z6kernelPf
        /*0050*/                   LDG.E.128 R8, [R2.64] ;                     /* 0x0000000402087981 */
        /*0060*/                   STL [R1], R8 ;                              /* 0x0000000402087981 */
"""


def test_parse_sass_counts_watched_instructions_per_arch_and_kernel() -> None:
    summary = parse_sass("arch = sm_90\n" + SASS)
    sm90 = summary["sm_90"]["_Z6kernelPf"]
    assert sm90["FFMA"] == 2  # the predicated one counts too
    assert sm90["LDG.E.128"] == 1 and sm90["LDS.128"] == 1 and sm90["RED/ATOM"] == 1
    assert sm90["HGMMA (wgmma)"] == 1 and sm90["HMMA (mma.sync)"] == 0
    sm80 = summary["sm_80"]["_Z6kernelPf"]
    assert sm80["FFMA"] == 0 and sm80["STL (local store)"] == 1 and sm80["LDG.E.128"] == 1


def _row(layer: str, backend: str, variant: str, tflops: float, gbps: float) -> dict:
    return make_record(
        op="conv2d", suite="resnet50", layer=layer, count=1, shape=f"n16_{layer}", batch=16, dtype="f32",
        layout="nhwc_fhwc", backend=backend, variant=variant, status="PASS", relerr=1e-7, tolerance=1e-4,
        median_ms=1.0, tflops=tflops, gbps=gbps, device="NVIDIA H200",
    )  # fmt: skip


def test_publish_renders_tables_roofline_and_copies_provenance(tmp_path: Path) -> None:
    results = tmp_path / "results" / "nvidia-h200"
    rows = [
        _row("l1", "cuda", "register_tiled", 30.0, 500.0),
        _row("l1", "cudnn", "fp32", 20.0, 400.0),
        _row("l1", "cudnn", "tf32", 120.0, 2400.0),
        _row("l2", "cuda", "register_tiled", 10.0, 1000.0),
    ]
    for i, row in enumerate(rows):
        write_record(row, results / "records" / f"{i}.json")
    (results / "device").mkdir()
    peaks = {"f32": 51.0, "tf32": 363.0, "copy_gbps": 4232.0}
    (results / "device" / "cuda.json").write_text(json.dumps({"peaks": peaks}))
    logs = tmp_path / "results" / "logs"
    (logs / "build" / "cuda" / "register_tiled").mkdir(parents=True)
    (logs / "build" / "cuda" / "register_tiled" / "conv2d.log").write_text(
        "0 bytes spill stores, 0 bytes spill loads\n"
    )
    (logs / "build" / "cuda" / "naive").mkdir()  # a variant this run has no row of: its log is not the card's
    (logs / "build" / "cuda" / "naive" / "conv2d.log").write_text("0 bytes spill stores, 0 bytes spill loads\n")

    out = publish(results=results, card="nvidia-h200", logs=logs, out_root=tmp_path / "published").folder
    md = (out / "summary.md").read_text()
    assert "cuda:register_tiled" in md and "TFLOP/s" in md and "30.0" in md
    assert json.loads((out / "device.json").read_text())["peaks"] == peaks
    assert sorted(p.name for p in (out / "build").iterdir()) == ["register_tiled.log"]
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["conv2d__resnet50__16__f32__nhwc_fhwc.png", "roofline__conv2d__resnet50__16__f32__nhwc_fhwc.png"]
    assert all((out / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in plots)


def test_publish_keeps_earlier_rows_and_replaces_remeasured_ones(tmp_path: Path) -> None:
    """A second run adds rows; a row it measured again replaces the earlier one, a SKIP does not; types survive."""
    published = tmp_path / "published"
    logs = tmp_path / "logs"
    first = tmp_path / "run1"
    for i, row in enumerate(
        [_row("l1", "cuda", "split_reduction", 30.0, 500.0), _row("l1", "cudnn", "tf32", 120.0, 1)]
    ):
        write_record(row, first / "records" / f"{i}.json")
    publish(results=first, card="gpu", logs=logs, out_root=published)
    second = tmp_path / "run2"
    skipped = make_record(**{**_row("l1", "cuda", "split_reduction", 0, 0), "status": "SKIP", "reason": "not timed"})
    for i, row in enumerate([_row("l1", "cudnn", "tf32", 130.0, 1), _row("l1", "cuda", "mma", 200.0, 1), skipped]):
        write_record(row, second / "records" / f"{i}.json")
    out = publish(results=second, card="gpu", logs=logs, out_root=published).folder

    rows = {(r["backend"], r["variant"]): r for r in read_summary(out / "summary.csv")}
    assert set(rows) == {("cuda", "split_reduction"), ("cudnn", "tf32"), ("cuda", "mma")}
    assert rows[("cudnn", "tf32")]["tflops"] == 130.0  # re-measured: the new row
    # a SKIP of the new run does not replace a row the earlier run measured
    assert rows[("cuda", "split_reduction")]["tflops"] == 30.0 and rows[("cuda", "split_reduction")]["batch"] == 16
    assert read_summary(tmp_path / "none.csv") == []


def test_publish_takes_only_the_given_commits_records(tmp_path: Path) -> None:
    """Records of an older run left in the results folder are not published when the run's commit is given."""
    results = tmp_path / "run"
    old = {**_row("l1", "cuda", "split_reduction", 30.0, 1), "commit": "f515adf502b4"}
    new = [{**_row(layer, "cuda", "split_reduction", 40.0, 1), "commit": "b5af6690a67f"} for layer in ("l1", "l2")]
    for i, row in enumerate([old, *new]):
        write_record(row, results / "records" / f"{i}.json")
    out = publish(
        results=results, card="gpu", logs=tmp_path / "logs", out_root=tmp_path / "pub", commits=("b5af669",)
    ).folder
    rows = read_summary(out / "summary.csv")
    assert [(r["layer"], r["commit"], r["tflops"]) for r in rows] == [
        ("l1", "b5af6690a67f", 40.0),
        ("l2", "b5af6690a67f", 40.0),
    ]
    with pytest.raises(FileNotFoundError, match="of commit 0000"):
        publish(results=results, card="gpu", logs=tmp_path / "logs", out_root=tmp_path / "pub", commits=("0000",))


def test_publish_keeps_a_series_with_the_baseline_of_its_run(tmp_path: Path) -> None:
    """A run's rows are refused without the cuDNN rows of that run where the card's table has cuDNN rows (the ratio
    would pair them with another run's); a run that brings its cuDNN rows replaces them, and the earlier rows it
    leaves without their run's baseline are reported."""
    published, logs = tmp_path / "published", tmp_path / "logs"

    def run(name: str, rows: list[dict]) -> Path:
        for i, row in enumerate(rows):
            write_record({**row, "run_id": name}, tmp_path / name / "records" / f"{i}.json")
        return tmp_path / name

    first = run("R1", [_row("l1", "cuda", "split_reduction", 30.0, 1), _row("l1", "cudnn", "tf32", 120.0, 1)])
    assert publish(results=first, card="gpu", logs=logs, out_root=published).unpaired == []
    alone = run("R2", [_row("l1", "cuda", "mma", 200.0, 1)])
    with pytest.raises(UnpairedRows, match=r"cuda:mma resnet50/l1 batch 16 f32 nhwc_fhwc \(run R2\)"):
        publish(results=alone, card="gpu", logs=logs, out_root=published)
    assert "mma" not in (published / "gpu" / "summary.csv").read_text()  # nothing written
    paired = run("R3", [_row("l1", "cuda", "mma", 200.0, 1), _row("l1", "cudnn", "tf32", 130.0, 1)])
    result = publish(results=paired, card="gpu", logs=logs, out_root=published)
    assert result.unpaired == ["cuda:split_reduction resnet50/l1 batch 16 f32 nhwc_fhwc (run R1)"]
    rows = {(r["backend"], r["variant"]): r["run_id"] for r in read_summary(result.folder / "summary.csv")}
    assert rows == {("cuda", "split_reduction"): "R1", ("cuda", "mma"): "R3", ("cudnn", "tf32"): "R3"}


def test_a_resumed_run_publishes_without_the_rows_that_lack_their_runs_baseline_when_asked(tmp_path: Path) -> None:
    """A run stopped while timing a series' row and resumed times that row in its second part and the layer's
    baseline in its first: with leave_out_unpaired that row is left out (and said), the rest published."""
    published, logs = tmp_path / "published", tmp_path / "logs"
    results = tmp_path / "run"
    rows = [
        {**_row("l1", "cuda", "mma", 200.0, 1), "run_id": "A"},
        {**_row("l1", "cudnn", "tf32", 120.0, 1), "run_id": "A"},
        {**_row("l2", "cudnn", "tf32", 130.0, 1), "run_id": "A"},
        {**_row("l2", "cuda", "mma", 210.0, 1), "run_id": "B"},
    ]
    for i, row in enumerate(rows):
        write_record(row, results / "records" / f"{i}.json")
    with pytest.raises(UnpairedRows, match=r"--leave-out-unpaired\)\. First: cuda:mma resnet50/l2 .*\(run B\)"):
        publish(results=results, card="gpu", logs=logs, out_root=published)
    result = publish(results=results, card="gpu", logs=logs, out_root=published, leave_out_unpaired=True)
    assert result.left_out == ["cuda:mma resnet50/l2 batch 16 f32 nhwc_fhwc (run B)"]
    kept = {(r["layer"], r["backend"]) for r in read_summary(result.folder / "summary.csv")}
    assert kept == {("l1", "cuda"), ("l1", "cudnn"), ("l2", "cudnn")}


def test_a_stopped_run_publishes_new_layers_in_their_suites_order(tmp_path: Path) -> None:
    """Without the run's summary (stopped at its time budget) and without earlier rows of the card, the layers come
    in the order config.yaml's suite lists them, not in the order the records were found."""
    results = tmp_path / "run"
    in_suite_order = ["conv1", "l1_3x3_64", "l2_3x3_128", "l3_3x3_256", "l4_3x3_512"]  # resnet50's, in config.yaml
    for layer in reversed(in_suite_order):
        write_record(_row(layer, "cuda", "split_reduction", 10.0, 1), results / "records" / f"{layer}.json")
    out = publish(results=results, card="gpu", logs=tmp_path / "logs", out_root=tmp_path / "pub").folder
    assert [r["layer"] for r in read_summary(out / "summary.csv")] == in_suite_order


def test_a_layer_keeps_its_place_when_its_first_row_in_the_runs_summary_is_not_published(tmp_path: Path) -> None:
    """The run's summary lists series after series; a layer whose row of the first series is not published (left out
    for want of its run's baseline) stays between its neighbours, not after the last layer."""
    results = tmp_path / "run"
    layers = ["conv1", "l1_3x3_64", "l2_3x3_128"]
    summary = [_row(layer, backend, variant, 10.0, 1) for backend, variant in (("cuda", "mma"), ("cudnn", "tf32"))
               for layer in layers]  # fmt: skip
    header = list(summary[0])
    (results / "summary.csv").parent.mkdir(parents=True)
    with open(results / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(summary)
    for i, row in enumerate(summary):
        if (row["layer"], row["backend"]) != ("l1_3x3_64", "cuda"):
            write_record(row, results / "records" / f"{i}.json")
    out = publish(results=results, card="gpu", logs=tmp_path / "logs", out_root=tmp_path / "pub").folder
    assert list(dict.fromkeys(r["layer"] for r in read_summary(out / "summary.csv"))) == layers
