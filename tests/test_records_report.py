"""Records (make/write/read), timing statistics, and the summary report: CSV, Markdown and PNG plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from opbench import report
from opbench.matrix import Point
from opbench.records import FIELDS, make_record, read_record, write_record
from opbench.timing import gbps, summarize, tflops

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# ---------------------------------------------------------------- records


def test_fields_are_unique_and_start_with_the_point() -> None:
    assert len(set(FIELDS)) == len(FIELDS)
    assert FIELDS[:3] == ("op", "suite", "layer")
    for name in ("status", "reason", "relerr", "tolerance", "median_ms", "tflops", "seed", "commit", "config_hash"):
        assert name in FIELDS


def test_make_record_has_every_field_in_order() -> None:
    record = make_record(status="PASS", layer="conv1", op="conv2d", tflops=1.5)
    assert list(record) == list(FIELDS)
    assert record["op"] == "conv2d" and record["layer"] == "conv1" and record["tflops"] == 1.5
    assert record["reason"] is None and record["median_ms"] is None


def test_make_record_rejects_unknown_fields() -> None:
    with pytest.raises(KeyError, match="gflops"):
        make_record(status="PASS", gflops=1.0)


@pytest.mark.parametrize("status", ["FAIL", "SKIP"])
@pytest.mark.parametrize("reason", [None, ""])
def test_make_record_fail_or_skip_needs_reason(status: str, reason: str | None) -> None:
    with pytest.raises(ValueError, match=status):
        make_record(status=status, reason=reason)
    assert make_record(status=status, reason="why")["reason"] == "why"


@pytest.mark.parametrize("status", [None, "pass", "ERROR"])
def test_make_record_rejects_bad_status(status: str | None) -> None:
    with pytest.raises(ValueError, match="status"):
        make_record(status=status, reason="x")


def test_record_round_trip(tmp_path: Path) -> None:
    record = make_record(status="FAIL", reason="3 of 10 output elements are NaN or Inf", relerr=math.inf, seed=7)
    path = tmp_path / "a" / "b" / "rec.json"
    write_record(record, path)
    back = read_record(path)
    assert list(back) == list(FIELDS)
    assert back["relerr"] == math.inf
    assert {k: v for k, v in back.items() if k != "relerr"} == {k: v for k, v in record.items() if k != "relerr"}


def test_read_record_rejects_missing_fields(tmp_path: Path) -> None:
    record = make_record(status="PASS")
    del record["cv"]
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="cv"):
        read_record(path)


def test_a_record_written_before_fields_were_appended_reads_with_them_empty(tmp_path: Path) -> None:
    record = make_record(status="PASS", relerr=1e-6)
    older = {name: record[name] for name in FIELDS[:-2]}  # written before the last two fields existed
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(older))
    back = read_record(path)
    assert list(back) == list(FIELDS) and back[FIELDS[-1]] is None and back[FIELDS[-2]] is None
    assert back["relerr"] == 1e-6
    del older[FIELDS[0]]  # ... but a missing field that is not one of the last is still an error
    path.write_text(json.dumps(older))
    with pytest.raises(ValueError, match=FIELDS[0]):
        read_record(path)
    path.write_text("{}")  # and so is a record without the first format's fields
    with pytest.raises(ValueError, match="timestamp"):
        read_record(path)


# ---------------------------------------------------------------- timing


def test_summarize_known_samples() -> None:
    stats = summarize([7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0])  # 1..10, shuffled
    assert stats.median_ms == 5.5
    assert stats.min_ms == 1.0
    assert stats.p90_ms == pytest.approx(9.1)  # linear interpolation at rank 0.9 * 9 = 8.1
    assert stats.cv == pytest.approx(math.sqrt(55 / 6) / 5.5)  # sample std (n-1) over the mean
    assert stats.samples == 10


def test_summarize_odd_count_and_single_sample() -> None:
    stats = summarize([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, 100.0])
    assert stats.median_ms == 5.0
    assert stats.min_ms == 2.0
    assert stats.p90_ms == pytest.approx(9.0 + 0.2 * 91.0)  # rank 0.9 * 8 = 7.2
    one = summarize([3.25])
    assert (one.median_ms, one.min_ms, one.p90_ms, one.cv, one.samples) == (3.25, 3.25, 3.25, 0.0, 1)
    same = summarize([2.0] * 5)
    assert same.cv == 0.0


@pytest.mark.parametrize("samples", [[], [1.0, 0.0, 2.0], [1.0, -1.0], [1.0, math.nan], [math.inf, 1.0]])
def test_summarize_rejects_bad_samples(samples: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(samples)


def test_throughput() -> None:
    assert tflops(236027904, 1.0) == pytest.approx(0.236027904)
    assert tflops(2 * 10**12, 1000.0) == pytest.approx(2.0)
    assert gbps(3851008, 0.5) == pytest.approx(7.702016)


def test_geomean() -> None:
    assert report.geomean([1.0, 4.0, 16.0]) == pytest.approx(4.0)
    assert report.geomean([2.0, None, 0.0, 8.0]) == pytest.approx(4.0)  # missing/zero values ignored
    assert math.isnan(report.geomean([]))


# ---------------------------------------------------------------- report

BASE = {"op": "conv2d", "suite": "tiny", "batch": 1, "variant": "default", "commit": "abc1234", "config_hash": "h1"}
FAIL_REASON = "relative error 2.500e-01 exceeds tolerance 1.0e-04"
SKIP_REASON = "compile-only: no rocm device on this machine"


def _pass(**fields: object) -> dict:
    return make_record(**BASE, status="PASS", reason="", relerr=1e-7, tolerance=1e-4, median_ms=0.5, **fields)


def _rows() -> list[dict]:
    f32 = {"dtype": "f32", "layout": "nhwc_hwcf"}
    bf16 = {"dtype": "bf16", "layout": "nchw_fchw"}
    return [
        _pass(**f32, layer="odd_3x3", shape="n1_a", backend="iree-llvm-cpu", tflops=0.0123, device="cpu-x"),
        _pass(**f32, layer="s2_3x3", shape="n1_b", backend="iree-llvm-cpu", tflops=0.0456, device="cpu-x"),
        make_record(**BASE, **f32, layer="odd_3x3", shape="n1_a", backend="iree-cuda", status="FAIL",
                    reason=FAIL_REASON, relerr=0.25, tolerance=1e-4),
        _pass(**f32, layer="s2_3x3", shape="n1_b", backend="iree-cuda", tflops=0.5, device="gpu-y"),
        make_record(**BASE, **f32, layer="odd_3x3", shape="n1_a", backend="iree-rocm", status="SKIP",
                    reason=SKIP_REASON),
        _pass(**bf16, layer="odd_3x3", shape="n1_a", backend="iree-llvm-cpu", tflops=0.002, device="cpu-x"),
        # a group with nothing but SKIPs: a table, no plot
        make_record(**{**BASE, "batch": 2}, **bf16, layer="odd_3x3", shape="n2_a", backend="iree-rocm",
                    status="SKIP", reason=SKIP_REASON),
    ]  # fmt: skip


def _table(md: str, heading: str) -> list[dict[str, str]]:
    """The GitHub table under a `## heading`, as dicts keyed by its header."""
    lines = md.splitlines()
    start = lines.index(f"## {heading}")
    rows = [line for line in lines[start + 1 :] if line.startswith("|")]
    end = next((i for i, line in enumerate(lines[start + 1 :]) if line.startswith("## ")), None)
    if end is not None:
        rows = [line for line in lines[start + 1 : start + 1 + end] if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(rows[0])
    return [dict(zip(header, cells(r), strict=True)) for r in rows[2:]]


def test_write_summary(tmp_path: Path) -> None:
    rows = _rows()
    plots = report.write_summary(rows, tmp_path / "out", "opbench results: test")
    out = tmp_path / "out"

    with open(out / "summary.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        data = [dict(zip(header, r, strict=True)) for r in reader]
    assert header == list(FIELDS)
    assert len(data) == len(rows)
    fails = [r for r in data if r["status"] == "FAIL"]
    assert len(fails) == 1
    assert fails[0]["backend"] == "iree-cuda" and fails[0]["layer"] == "odd_3x3"
    assert fails[0]["reason"] == FAIL_REASON
    assert fails[0]["tflops"] == ""  # None is written as an empty cell
    assert float(fails[0]["relerr"]) == 0.25
    assert [r["status"] for r in data] == [r["status"] for r in rows]  # matrix order kept

    md = (out / "summary.md").read_text()
    assert md.startswith("# opbench results: test\n")
    assert "7 results: 4 PASS, 1 FAIL, 2 SKIP" in md
    assert "abc1234" in md
    table = _table(md, "op conv2d, suite tiny, batch 1, dtype f32, layout nhwc_hwcf")
    by_layer = {r["layer"]: r for r in table}
    assert by_layer["odd_3x3"]["iree-cuda:default"] == "FAIL"
    assert "iree-rocm:default" not in by_layer["odd_3x3"]  # SKIP on every layer: only in the Skipped list
    assert by_layer["odd_3x3"]["iree-llvm-cpu:default"] == "12.3"  # GFLOP/s
    assert by_layer["s2_3x3"]["iree-llvm-cpu:default"] == "45.6"
    assert by_layer["s2_3x3"]["iree-cuda:default"] == "500.0"
    geo = by_layer["geomean (PASS)"]
    assert float(geo["iree-llvm-cpu:default"]) == pytest.approx(math.sqrt(12.3 * 45.6), abs=0.05)
    assert geo["iree-cuda:default"] == "500.0"  # the FAIL is left out of the mean
    failed = _table(md, "Failed")
    assert {(r["status"], r["layer"], r["backend:variant"], r["reason"]) for r in failed} == {
        ("FAIL", "odd_3x3", "iree-cuda:default", FAIL_REASON),
    }
    skipped = _table(md, "Skipped")
    assert {(r["backend:variant"], r["rows"], r["reason"]) for r in skipped} == {
        ("iree-rocm:default", "2", SKIP_REASON),
    }

    # One plot per group that has a non-SKIP row: (f32, nhwc_hwcf, b1) and (bf16, nchw_fchw, b1), not the b2 one.
    assert len(plots) == 2
    assert sorted(p.name for p in plots) == sorted(
        [
            "conv2d__tiny__1__f32__nhwc_hwcf.png",
            "conv2d__tiny__1__bf16__nchw_fchw.png",
        ]
    )
    for path in plots:
        assert path.parent == out / "plots"
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) > 1000
    assert sorted((out / "plots").iterdir()) == sorted(plots)


def test_group_of_only_failures_still_gets_a_plot(tmp_path: Path) -> None:
    rows = [
        make_record(**BASE, dtype="f16", layout="nchw_fchw", layer=layer, shape=f"n1_{layer}", backend="iree-cuda",
                    status="FAIL", reason=FAIL_REASON)
        for layer in ("odd_3x3", "s2_3x3")
    ]  # fmt: skip
    plots = report.write_summary(rows, tmp_path, "all failed")
    assert [p.name for p in plots] == ["conv2d__tiny__1__f16__nchw_fchw.png"]
    assert plots[0].read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "summary.md").read_text()
    assert "2 results: 0 PASS, 2 FAIL, 0 SKIP" in md
    table = _table(md, "op conv2d, suite tiny, batch 1, dtype f16, layout nchw_fchw")
    cells = {r["layer"]: r["iree-cuda:default"] for r in table}
    assert cells == {"odd_3x3": "FAIL", "s2_3x3": "FAIL", "geomean (PASS)": "", "layers won": "0"}  # no PASS
    assert {r["layer"]: r["fastest"] for r in table}["odd_3x3"] == ""
    assert len(_table(md, "Failed")) == 2
    assert "## Skipped" not in md


def test_plot_legend_names_every_series_that_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend whose first layer FAILs but which PASSes later still gets a legend entry."""
    figures = []
    subplots = plt.subplots

    def capture(*args: object, **kwargs: object) -> tuple[plt.Figure, plt.Axes]:
        fig, ax = subplots(*args, **kwargs)
        figures.append(ax)
        return fig, ax

    monkeypatch.setattr(report.plt, "subplots", capture)
    monkeypatch.setattr(report.plt, "close", lambda fig: None)
    f32 = {"dtype": "f32", "layout": "nhwc_hwcf"}
    group = [
        _pass(**f32, layer="odd_3x3", shape="n1_a", backend="iree-llvm-cpu", tflops=0.01),
        make_record(**BASE, **f32, layer="odd_3x3", shape="n1_a", backend="iree-cuda", status="FAIL",
                    reason=FAIL_REASON),
        _pass(**f32, layer="s2_3x3", shape="n1_b", backend="iree-llvm-cpu", tflops=0.02),
        _pass(**f32, layer="s2_3x3", shape="n1_b", backend="iree-cuda", tflops=0.03),
    ]  # fmt: skip
    try:
        report.plot_group(("conv2d", "tiny", 1, "f32", "nhwc_hwcf"), group, tmp_path / "p.png")
        (ax,) = figures
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
    finally:
        for ax in figures:
            plt.close(ax.figure)
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(labels) == ["iree-cuda:default", "iree-llvm-cpu:default"]


def test_plot_of_a_wide_race_stays_readable(tmp_path: Path) -> None:
    """23 layers x 10 series (the tensor-core race) fits PLOT_MAX_WIDTH_IN, not 0.5 inch per bar (115 inches)."""
    f16 = {"dtype": "f16", "layout": "nhwc_fhwc"}
    group = [
        _pass(**f16, layer=f"l{i}", shape=f"n1_{i}", backend=f"b{j}", tflops=100.0 + j)
        for i in range(23)
        for j in range(10)
    ]
    path = tmp_path / "p.png"
    report.plot_group(("conv2d", "resnet50", 16, "f16", "nhwc_fhwc"), group, path)
    width_px = int.from_bytes(path.read_bytes()[16:20], "big")  # the PNG IHDR width
    assert 600 < width_px <= 3100, width_px  # at most 28 inches at 110 dpi


def test_collect_fills_skips_and_missing_records(tmp_path: Path) -> None:
    def point(layer: str, backend: str) -> Point:
        return Point(op="conv2d", suite="tiny", layer=layer, count=1, batch=1, shape=f"s_{layer}", dtype="f32",
                     layout="nhwc_hwcf", backend=backend, variant="default")  # fmt: skip

    ran, skipped, missing = point("a", "iree-llvm-cpu"), point("a", "iree-rocm"), point("b", "iree-llvm-cpu")
    records = tmp_path / "records"
    write_record(_pass(dtype="f32", layout="nhwc_hwcf", layer="a", shape="s_a", backend="iree-llvm-cpu", tflops=0.1),
                 records / ran.record_path)  # fmt: skip
    rows = report.collect(
        [ran, skipped, missing], records, {skipped: SKIP_REASON}, {"commit": "c0"}, lambda p: f"logs/{p.layer}.log"
    )
    assert [r["status"] for r in rows] == ["PASS", "SKIP", "FAIL"]
    assert rows[0]["tflops"] == 0.1
    assert rows[1]["reason"] == SKIP_REASON and rows[1]["backend"] == "iree-rocm" and rows[1]["commit"] == "c0"
    assert rows[2]["reason"].endswith("see logs/b.log") and rows[2]["layer"] == "b" and rows[2]["shape"] == "s_b"
    assert all(list(r) == list(FIELDS) for r in rows)


def test_fastest_column_wins_and_ratios_to_cudnn(tmp_path: Path) -> None:
    """Per layer the fastest PASS row is named; a FAIL never wins however fast; ratios skip layers that failed.

    A layer that a stopped run left without some row (no record at all) has no winner either.
    """
    f16 = {"dtype": "f16", "layout": "nhwc_fhwc"}

    def _pass(**fields: object) -> dict:
        return make_record(**{**BASE, **fields}, status="PASS", reason="", relerr=1e-4, tolerance=5e-3, median_ms=1)

    rows = [
        _pass(**f16, layer="a", shape="n1_a", backend="cudnn", variant="fp16", tflops=100.0, device="gpu"),
        _pass(**f16, layer="a", shape="n1_a", backend="cuda", variant="mma", tflops=50.0, device="gpu"),
        _pass(**f16, layer="b", shape="n1_b", backend="cudnn", variant="fp16", tflops=100.0, device="gpu"),
        _pass(**f16, layer="b", shape="n1_b", backend="cuda", variant="mma", tflops=200.0, device="gpu"),
        _pass(**f16, layer="c", shape="n1_c", backend="cudnn", variant="fp16", tflops=100.0, device="gpu"),
        make_record(**{**BASE, "variant": "mma"}, **f16, layer="c", shape="n1_c", backend="cuda", status="FAIL",
                    reason=FAIL_REASON, relerr=0.5, tolerance=5e-3, tflops=900.0),
        _pass(**f16, layer="d", shape="n1_d", backend="cuda", variant="mma", tflops=300.0, device="gpu"),
    ]  # fmt: skip
    report.write_summary(rows, tmp_path, "race")
    table = {r["layer"]: r for r in _table((tmp_path / "summary.md").read_text(), "op conv2d, suite tiny, batch 1, "
                                           "dtype f16, layout nhwc_fhwc")}  # fmt: skip
    winners = [table[layer]["fastest"] for layer in "abcd"]
    assert winners == ["cudnn:fp16", "cuda:mma", "cudnn:fp16", "n/a (not all timed)"]
    assert table["layers won"]["cudnn:fp16"] == "2" and table["layers won"]["cuda:mma"] == "1"
    ratio = table["geomean ratio to cuDNN fp16"]
    assert ratio["cudnn:fp16"] == "1.00"
    assert float(ratio["cuda:mma"]) == pytest.approx(math.sqrt(0.5 * 2.0), abs=0.005)  # layer c left out


def test_ratios_and_winners_pair_rows_of_one_run_only(tmp_path: Path) -> None:
    """The baseline of a row is the fastest cuDNN row (PyTorch's pick or the frontend's engine) of the row's own
    run; a layer whose rows come from two runs has no winner, and its cells say which run each came from."""
    f16 = {"dtype": "f16", "layout": "nhwc_fhwc", "device": "gpu"}

    def _pass(run: str, **fields: object) -> dict:
        return make_record(**{**BASE, **fields}, **f16, status="PASS", reason="", relerr=1e-4, tolerance=5e-3,
                           median_ms=1, run_id=run)  # fmt: skip

    rows = [
        _pass("R1", layer="a", shape="n1_a", backend="cudnn", variant="fp16", tflops=100.0),
        _pass("R1", layer="a", shape="n1_a", backend="cudnn", variant="frontend_fp16", tflops=125.0),
        _pass("R1", layer="a", shape="n1_a", backend="cuda", variant="mma", tflops=50.0),
        _pass("R1", layer="b", shape="n1_b", backend="cudnn", variant="fp16", tflops=100.0),
        _pass("R1", layer="b", shape="n1_b", backend="cudnn", variant="frontend_fp16", tflops=100.0),
        _pass("R2", layer="b", shape="n1_b", backend="cuda", variant="mma", tflops=200.0),  # another run
    ]
    report.write_summary(rows, tmp_path, "runs")
    md = (tmp_path / "summary.md").read_text()
    table = {r["layer"]: r for r in _table(md, "op conv2d, suite tiny, batch 1, dtype f16, layout nhwc_fhwc")}
    assert table["a"]["fastest"] == "cudnn:frontend_fp16"
    assert table["b"]["fastest"] == "n/a (rows of different runs)"  # 200 is not compared with R1's cuDNN
    assert table["b"]["cuda:mma"] == "200.00 (b)" and table["b"]["cudnn:fp16"] == "100.00 (a)"
    assert "(a) `R1`, (b) `R2`" in md
    ratio = table["geomean ratio to cuDNN fp16"]
    assert float(ratio["cuda:mma"]) == pytest.approx(0.4)  # layer a only, against the frontend's 125
    assert float(ratio["cudnn:fp16"]) == pytest.approx(math.sqrt(0.8 * 1.0), abs=0.005)


def test_rows_without_a_run_id_are_paired_by_commit(tmp_path: Path) -> None:
    """Rows recorded before run ids existed: each published run had its own commit, which stands in for the run."""
    f16 = {"dtype": "f16", "layout": "nhwc_fhwc", "device": "gpu", "layer": "a", "shape": "n1_a"}
    rows = [
        make_record(**{**BASE, **f16, "commit": "b5af669", "variant": "mma"}, backend="cuda", status="PASS",
                    reason="", relerr=1e-4, tolerance=5e-3, median_ms=1, tflops=90.0),
        make_record(**{**BASE, **f16, "commit": "1c19f79", "variant": "fp16"}, backend="cudnn", status="PASS",
                    reason="", relerr=1e-4, tolerance=5e-3, median_ms=1, tflops=100.0),
    ]  # fmt: skip
    assert report.run_key(rows[0]) == "commit b5af669" and report.run_key({**rows[0], "run_id": "R9"}) == "R9"
    report.write_summary(rows, tmp_path, "old")
    row = _table((tmp_path / "summary.md").read_text(), "op conv2d, suite tiny, batch 1, dtype f16, layout nhwc_fhwc")
    assert row[0]["fastest"] == "n/a (rows of different runs)"


def test_dispatch_time_gets_its_own_column_beside_end_to_end(tmp_path: Path) -> None:
    f16 = {**BASE, "dtype": "f16", "layout": "nhwc_fhwc", "layer": "a", "shape": "n1_a"}
    rows = [
        make_record(**{**f16, "variant": "tuned"}, backend="iree-cuda", status="PASS", reason="", relerr=1e-4,
                    tolerance=5e-3, median_ms=2.0, tflops=10.0, device_ms=0.5, device_tflops=40.0),
        make_record(**{**f16, "variant": "fp16"}, backend="cudnn", status="PASS", reason="", relerr=1e-4,
                    tolerance=5e-3, median_ms=0.4, tflops=50.0),
    ]  # fmt: skip
    report.write_summary(rows, tmp_path, "iree")
    md = (tmp_path / "summary.md").read_text()
    row = _table(md, "op conv2d, suite tiny, batch 1, dtype f16, layout nhwc_fhwc")[0]
    assert row["iree-cuda:tuned"] == "10.00" and row["iree-cuda:tuned [dispatch time]"] == "40.00"
    assert row["cudnn:fp16"] == "50.00" and row["fastest"] == "cudnn:fp16"
    assert len((tmp_path / "summary.csv").read_text().splitlines()) == 3  # header + the two measured rows
    assert "2 results: 2 PASS, 0 FAIL, 0 SKIP" in md  # the dispatch-time twin is a column, not a result


def test_tables_with_iree_cuda_rows_say_what_the_modules_were_compiled_for(tmp_path: Path) -> None:
    f16 = {**BASE, "dtype": "f16", "layout": "nhwc_fhwc", "layer": "a", "shape": "n1_a"}
    rows = [
        make_record(**{**f16, "variant": "default"}, backend="iree-cuda", status="PASS", reason="", relerr=1e-4,
                    tolerance=5e-3, median_ms=2.0, tflops=10.0),
        make_record(**{**f16, "variant": "fp16"}, backend="cudnn", status="PASS", reason="", relerr=1e-4,
                    tolerance=5e-3, median_ms=0.4, tflops=50.0),
        make_record(**{**f16, "batch": 2, "variant": "fp16"}, backend="cudnn", status="PASS", reason="", relerr=1e-4,
                    tolerance=5e-3, median_ms=0.4, tflops=50.0),
    ]  # fmt: skip
    report.write_summary(rows, tmp_path, "notes")
    md = (tmp_path / "summary.md").read_text()
    with_iree, without = md.split("## op conv2d, suite tiny, batch 1")[1].split("## op conv2d, suite tiny, batch 2")
    assert "compiled for `sm_80` PTX" in with_iree and "JIT-compiles" in with_iree
    assert "sm_80" not in without


def test_a_missing_record_names_the_log_of_the_job_that_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first job of the point's chain that left no output: its log (the build's for a module that did not
    compile, the run's for a crash, ...); a point that only builds here names its build."""
    from opbench.paths import failed_job_log

    monkeypatch.chdir(tmp_path)  # the workflow's paths are relative to its directory
    fields = dict(op="conv2d", suite="tiny", layer="a", backend="iree-llvm-cpu", variant="default",
                  layout="nhwc_hwcf", dtype="f32", shape="s")  # fmt: skip
    results, problems = "results/m", "results/problems"

    def failed(runs: bool = True) -> str:
        return failed_job_log(results, problems, "problem", runs, **fields)

    def made(path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()

    assert failed() == "results/logs/make_inputs/conv2d/nhwc_hwcf/f32/s.log"
    made("results/problems/conv2d/nhwc_hwcf/f32/s/inputs.npz")
    assert failed() == "results/logs/reference/conv2d/nhwc_hwcf/f32/s.log"
    made("results/problems/conv2d/nhwc_hwcf/f32/s/reference.npy")
    build = "results/logs/build/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/s.log"
    assert failed() == build
    assert failed(runs=False) == build  # compile-only: its build is its only job
    Path("compiled/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/s").mkdir(parents=True)
    assert failed() == "results/m/logs/run/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/s.log"
    assert failed(runs=False) == "results/m/logs/record/conv2d/tiny/a/iree-llvm-cpu/default/nhwc_hwcf/f32/s.log"
    run = "results/m/runs/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/s"
    made(f"{run}/output.npy")
    assert failed() == "results/m/logs/verify/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/s.log"
    made(f"{run}/verify.json")
    Path(f"{run}/output.npy").unlink()  # keep_run_outputs: false deletes it once verified: the run did finish
    assert failed() == "results/m/logs/benchmark/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/s.log"


def test_a_memory_bound_op_is_tabled_in_gb_per_s_with_its_fraction_of_copy_bandwidth(tmp_path: Path) -> None:
    """depthwise_conv2d (Op.memory_bound): cells in GB/s of the minimum traffic, and the geometric mean of the
    fraction of the card's copy bandwidth per series; a compute-bound op's tables keep FLOP/s."""
    base = {**BASE, "op": "depthwise_conv2d", "suite": "mobilenet", "dtype": "f16", "layout": "nhwc_hwc"}

    def _pass(**fields: object) -> dict:
        return make_record(**{**base, **fields}, status="PASS", reason="", relerr=1e-4, tolerance=5e-3, median_ms=1)

    rows = [
        _pass(layer="a", shape="n1_a", backend="cuda", variant="smem", tflops=0.9, gbps=3000.0, peak_gbps_frac=0.75,
              device="gpu"),
        _pass(layer="b", shape="n1_b", backend="cuda", variant="smem", tflops=0.5, gbps=1200.0, peak_gbps_frac=0.3,
              device="gpu"),
    ]  # fmt: skip
    report.write_summary(rows, tmp_path, "memory")
    md = (tmp_path / "summary.md").read_text()
    heading = "op depthwise_conv2d, suite mobilenet, batch 1, dtype f16, layout nhwc_hwc"
    table = {r["layer"]: r for r in _table(md, heading)}
    assert table["a"]["cuda:smem"] == "3000" and table["b"]["cuda:smem"] == "1200"
    assert table["geomean (PASS)"]["cuda:smem"] == f"{math.sqrt(3000 * 1200):.0f}"
    assert table["geomean fraction of copy bandwidth"]["cuda:smem"] == "0.47"  # sqrt(0.75 * 0.3)
    assert "Cells: GB/s" in md
    report.write_summary([{**row, "op": "conv2d", "layout": "nhwc_fhwc"} for row in rows], tmp_path, "compute")
    assert "Cells: GFLOP/s" in (tmp_path / "summary.md").read_text()
