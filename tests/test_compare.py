"""`opbench compare`: matching rows, the noise-aware verdicts, the geomean, the report and the exit status."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from opbench import compare
from opbench.cli import main
from opbench.records import FIELDS, make_record, write_csv

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Ten fixed relative deviations (mean 0.11, spread about 0.6) and a reordering of them: two runs' sample noise.
NOISE = [-1.0, 0.5, 0.2, -0.3, 0.8, -0.6, 0.1, 0.9, -0.9, 1.4]
NOISE2 = [0.2, -0.9, 1.4, 0.5, -0.3, 0.9, -1.0, 0.1, 0.8, -0.6]


def samples(median: float, spread: float, noise: list[float] = NOISE) -> list[float]:
    return [median * (1 + spread * e) for e in noise]


def row(
    *, layer: str = "l1", status: str = "PASS", ms: float | None = 1.0, cv: float | None = None,
    samples_ms: list[float] | None = None, backend: str = "cuda", variant: str = "v", **more: Any,
) -> dict[str, Any]:  # fmt: skip
    """A record of one point; its median and cv come from its samples where it has some."""
    if samples_ms:
        ordered = sorted(samples_ms)
        ms = (ordered[4] + ordered[5]) / 2 if len(ordered) == 10 else ordered[len(ordered) // 2]
        mean = sum(samples_ms) / len(samples_ms)
        cv = math.sqrt(sum((s - mean) ** 2 for s in samples_ms) / (len(samples_ms) - 1)) / mean
    fields: dict[str, Any] = dict(
        op="conv2d", suite="resnet50", layer=layer, count=1, shape=f"{layer}_shape", batch=16, dtype="f16",
        layout="nhwc_fhwc", backend=backend, variant=variant, status=status,
        reason=None if status == "PASS" else "the output is wrong", device="GPU A", commit="abc1234",
        timing_method="CUDA events around a CUDA-graph replay of 100 launches",
    )  # fmt: skip
    if status == "PASS":
        fields.update(median_ms=ms, cv=cv, samples=len(samples_ms) if samples_ms else 10, samples_ms=samples_ms)
    fields.update(more)
    return make_record(**fields)


def verdict_of(base: dict[str, Any], new: dict[str, Any], **options: Any) -> compare.RowVerdict:
    comparison = compare.compare_rows([base], [new], **options)
    assert len(comparison.verdicts) == 1
    return comparison.verdicts[0]


# ---------------------------------------------------------------- the rank test


def test_mann_whitney_hand_computed_with_a_tie() -> None:
    # x = 1 2 3, y = 3 4 5 6: ranks 1 2 3.5 | 3.5 5 6 7, so R_x = 6.5 and U_x = 6.5 - 3*4/2 = 0.5; mean n1*n2/2 = 6.
    # One tie of two: variance = n1*n2/12 * ((N+1) - (2^3-2)/(N(N-1))) = 1 * (8 - 6/42) = 55/7.
    # z = (|0.5 - 6| - 0.5) / sqrt(55/7); p = erfc(z / sqrt 2) = 0.0744618314 (scipy.stats.mannwhitneyu agrees).
    u, p = compare.mann_whitney_u([1.0, 2.0, 3.0], [3.0, 4.0, 5.0, 6.0])
    assert u == 0.5
    assert p == pytest.approx(math.erfc(5 / math.sqrt(55 / 7) / math.sqrt(2)), rel=1e-12)
    assert p == pytest.approx(0.0744618314, rel=1e-8)
    # the other side's U is n1*n2 - U, the two-sided p the same
    u2, p2 = compare.mann_whitney_u([3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0])
    assert u2 == 11.5 and p2 == pytest.approx(p)


def test_mann_whitney_separated_and_identical() -> None:
    # ten against ten, no overlap: U = 0, z = (50 - 0.5) / sqrt(100 * 21 / 12)
    u, p = compare.mann_whitney_u(list(range(10)), list(range(10, 20)))
    assert u == 0
    assert p == pytest.approx(math.erfc(49.5 / math.sqrt(175) / math.sqrt(2)))
    assert p < 2e-4
    assert compare.mann_whitney_u([1.0] * 5, [1.0] * 5) == (12.5, 1.0)  # every value tied: no evidence
    assert compare.mann_whitney_u(NOISE, NOISE)[1] == 1.0
    # five a side cannot reach p < 0.01 at all, six can: min_p decides whether the test is used
    assert compare.min_p(5, 5) > 0.01 > compare.min_p(6, 6)


# ---------------------------------------------------------------- verdicts


def test_identical_samples_are_same_and_exit_0() -> None:
    base = row(samples_ms=samples(1.0, 0.01))
    comparison = compare.compare_rows([base], [row(samples_ms=samples(1.0, 0.01))])
    (v,) = comparison.verdicts
    assert v.verdict == compare.SAME and v.ratio == pytest.approx(1.0)
    assert v.method.startswith(compare.RANK_TEST) and "p=1" in v.method
    assert compare.exit_status(comparison) == 0


def test_ten_percent_slower_with_small_noise_is_slower_and_exit_1() -> None:
    base, new = row(samples_ms=samples(1.0, 0.005)), row(samples_ms=samples(1.1, 0.005, NOISE2))
    comparison = compare.compare_rows([base], [new])
    (v,) = comparison.verdicts
    assert v.verdict == compare.SLOWER and v.ratio == pytest.approx(1.1)
    assert v.method.startswith(compare.RANK_TEST) and v.p is not None and v.p < 1e-3
    assert compare.exit_status(comparison) == 1
    # and the other way round it is faster, which does not fail
    back = compare.compare_rows([new], [base])
    assert back.verdicts[0].verdict == compare.FASTER and compare.exit_status(back) == 0


def test_overlapping_samples_are_same_even_when_medians_differ() -> None:
    # 10% apart in the median, but a 30% spread: the ranks interleave, the test finds nothing
    v = verdict_of(row(samples_ms=samples(1.0, 0.3)), row(samples_ms=samples(1.1, 0.3, NOISE2)))
    assert v.verdict == compare.SAME and v.p is not None and v.p > 0.01 and v.ratio > 1.05


def test_without_samples_a_large_cv_hides_ten_percent() -> None:
    noisy = verdict_of(row(ms=1.0, cv=0.2), row(ms=1.1, cv=0.2))
    assert noisy.verdict == compare.SAME
    assert noisy.method.startswith(compare.CV_BAND)
    assert noisy.band == pytest.approx(3 * math.hypot(0.2, 0.2))
    # the same change with a quiet cv is beyond the band
    quiet = verdict_of(row(ms=1.0, cv=0.003), row(ms=1.1, cv=0.003))
    assert quiet.verdict == compare.SLOWER and quiet.band == pytest.approx(0.02)  # 3 * sqrt(2) * 0.3% = 1.3% < 2%
    # between: 3 * sqrt(2) * 2% = 8.5% band, a 10% change exceeds it, a 8% one does not
    assert verdict_of(row(ms=1.0, cv=0.02), row(ms=1.10, cv=0.02)).verdict == compare.SLOWER
    assert verdict_of(row(ms=1.0, cv=0.02), row(ms=1.08, cv=0.02)).verdict == compare.SAME


def test_one_side_without_samples_uses_the_cv_band() -> None:
    v = verdict_of(row(ms=1.0, cv=0.001), row(samples_ms=samples(1.1, 0.001)))
    assert v.method.startswith(compare.CV_BAND) and v.verdict == compare.SLOWER
    few = verdict_of(row(samples_ms=[1.0, 1.001, 0.999]), row(samples_ms=[1.1, 1.101, 1.099]))
    assert few.method.startswith(compare.CV_BAND)  # three samples a side: the U test could not decide anything


def test_neither_samples_nor_cv_uses_the_threshold() -> None:
    v = verdict_of(row(ms=1.0, cv=None), row(ms=1.03, cv=None))
    assert v.verdict == compare.SLOWER and v.method.startswith(compare.THRESHOLD_ONLY)
    assert verdict_of(row(ms=1.0, cv=None), row(ms=1.01, cv=None)).verdict == compare.SAME


def test_significant_one_percent_is_same_under_the_threshold() -> None:
    base, new = row(samples_ms=samples(1.0, 0.0005)), row(samples_ms=samples(0.99, 0.0005, NOISE2))
    v = verdict_of(base, new)
    assert v.p is not None and v.p < 1e-3  # the change is real ...
    assert v.verdict == compare.SAME and "under threshold" in v.method  # ... and too small to count
    assert verdict_of(base, new, threshold=0.005).verdict == compare.FASTER  # a smaller threshold counts it


def test_status_changes() -> None:
    fails = compare.compare_rows([row()], [row(status="FAIL")])
    assert fails.verdicts[0].verdict == compare.FAILS_NOW and compare.exit_status(fails) == 1
    assert "output is wrong" in fails.verdicts[0].method
    fixed = compare.compare_rows([row(status="FAIL")], [row()])
    assert fixed.verdicts[0].verdict == compare.FIXED and compare.exit_status(fixed) == 0
    still = compare.compare_rows([row(status="FAIL")], [row(status="FAIL")])
    assert still.verdicts[0].verdict == compare.STILL_FAILS and compare.exit_status(still) == 0
    skip = compare.compare_rows([row()], [row(status="SKIP", reason="no GPU")])
    assert skip.verdicts[0].verdict == compare.SKIP and compare.exit_status(skip) == 0
    assert skip.verdicts[0].method == "PASS -> SKIP"


def test_timing_method_change_is_noted() -> None:
    other = row(ms=1.0, cv=0.001, timing_method="host wall time of 7 calls")
    assert "timing method differs" in verdict_of(row(ms=1.0, cv=0.001), other).method
    launches = row(ms=1.0, cv=0.001, timing_method="CUDA events around a CUDA-graph replay of 250 launches")
    assert "differs" not in verdict_of(row(ms=1.0, cv=0.001), launches).method  # only the count changed


# ---------------------------------------------------------------- matching, geomean, the report


def test_added_and_removed_rows_are_listed_not_compared() -> None:
    base = [row(layer="a"), row(layer="b"), row(layer="gone")]
    new = [row(layer="b"), row(layer="a", ms=1.5), row(layer="fresh")]
    pairs, removed, added = compare.match_rows(base, new)
    assert [(b["layer"], n["layer"]) for b, n in pairs] == [("a", "a"), ("b", "b")]
    assert [r["layer"] for r in removed] == ["gone"] and [r["layer"] for r in added] == ["fresh"]
    comparison = compare.compare_rows(base, new)
    text = compare.markdown(comparison, "BASE", "NEW")
    assert "## Only in base (not compared)" in text and "## Only in new (not compared)" in text
    only_base = text.split("## Only in base")[1].split("## Only in new")[0]
    assert "gone" in only_base and "fresh" not in only_base
    assert "fresh" in text.split("## Only in new")[1]
    assert len(comparison.verdicts) == 2


def test_identity_ignores_shape_but_not_the_series() -> None:
    pairs, removed, added = compare.match_rows([row(shape="x")], [row(shape="y")])
    assert len(pairs) == 1 and not removed and not added
    pairs, removed, added = compare.match_rows([row(variant="a")], [row(variant="b")])
    assert not pairs and len(removed) == 1 and len(added) == 1


def test_geomean_per_series_and_overall() -> None:
    base = [row(layer="a", cv=0.001), row(layer="b", cv=0.001), row(layer="a", cv=0.001, variant="w")]
    new = [
        row(layer="a", ms=1.21, cv=0.001), row(layer="b", ms=1.0, cv=0.001),
        row(layer="a", ms=0.5, cv=0.001, variant="w"),
    ]  # fmt: skip
    comparison = compare.compare_rows(base, [*new, row(layer="c", status="FAIL")])
    mean, n = compare.geomean_ratio(v for v in comparison.verdicts if v.base["variant"] == "v")
    assert n == 2 and mean == pytest.approx(1.1)  # sqrt(1.21 * 1.0)
    mean, n = compare.geomean_ratio(comparison.verdicts)
    assert n == 3 and mean == pytest.approx((1.21 * 0.5) ** (1 / 3))
    table = {line[0]: line for line in compare.summary_table(comparison)}
    header = compare.SUMMARY_HEADERS
    assert table["cuda:v"][header.index("geomean change")] == "+10.0%"
    assert table["cuda:w"][header.index("geomean change")] == "-50.0%"
    assert table["**all**"][header.index("geomean change")] == f"{100 * ((1.21 * 0.5) ** (1 / 3) - 1):+.1f}%"
    assert table["cuda:v"][header.index("slower")] == "1" and table["cuda:v"][header.index("same")] == "1"
    assert table["cuda:v"][header.index("only new")] == "1"
    # rows that do not PASS on both sides are not in the geomean
    fails = compare.compare_rows([row(), row(layer="b")], [row(ms=2.0, cv=0.001), row(layer="b", status="FAIL")])
    assert compare.geomean_ratio(fails.verdicts) == (pytest.approx(2.0), 1)
    assert math.isnan(compare.geomean_ratio([])[0])


def test_report_names_devices_commits_and_methods() -> None:
    base = [row(ms=1.0, cv=0.001, run_id="run-1")]
    new = [row(ms=1.2, cv=0.001, device="GPU B", commit="def5678+dirty", run_id="run-2")]
    text = compare.markdown(compare.compare_rows(base, new), "old/summary.csv", "new/")
    assert "**Different devices** (GPU A against GPU B)" in text
    assert "`abc1234`" in text and "`def5678+dirty`" in text and "`run-1`" in text and "`run-2`" in text
    assert "| +20.0%" in text and "slower" in text and compare.CV_BAND in text
    assert "Exit status 1: 1 slower." in text
    same_device = compare.markdown(compare.compare_rows(base, [row(ms=1.0, cv=0.001)]), "a", "b")
    assert "Different devices" not in same_device and "Exit status 0" in same_device


def test_only_changed_and_series_filter() -> None:
    base = [row(layer="a", cv=0.001), row(layer="b", cv=0.001), row(layer="a", backend="cudnn", variant="fp16")]
    new = [row(layer="a", ms=1.5, cv=0.001), row(layer="b", cv=0.001), row(layer="a", backend="cudnn", variant="fp16")]
    text = compare.markdown(compare.compare_rows(base, new), "a", "b", only_changed=True)
    series_table = text.split("## cuda:v")[1].split("## cudnn:fp16")[0]
    assert "| a " in series_table and "| b " not in series_table and "1 of 2 rows `same`" in series_table
    assert "1 matched rows, all `same`" in text.split("## cudnn:fp16")[1]
    only = compare.compare_rows(base, new, only_series=["cudnn"])
    assert [compare.series(v.base) for v in only.verdicts] == ["cudnn:fp16"] and compare.exit_status(only) == 0
    assert len(compare.compare_rows(base, new, only_series=["cuda:v"]).verdicts) == 2
    with pytest.raises(compare.CompareError, match="cudnn:tf32"):
        compare.compare_rows(base, new, only_series=["cudnn:tf32"])
    with pytest.raises(compare.CompareError, match="threshold"):
        compare.compare_rows(base, new, threshold=-0.1)


# ---------------------------------------------------------------- files and the command


def test_a_folder_and_a_file_both_load_with_their_samples(tmp_path: Path) -> None:
    rows = [row(samples_ms=samples(1.0, 0.004)), row(layer="b", status="SKIP", reason="no GPU")]
    (tmp_path / "run").mkdir()
    write_csv(rows, tmp_path / "run" / "summary.csv")
    from_folder = compare.load_side(tmp_path / "run")
    from_file = compare.load_side(tmp_path / "run" / "summary.csv")
    assert from_folder == from_file and len(from_file) == 2
    assert from_file[0]["samples_ms"] == pytest.approx(samples(1.0, 0.004), rel=1e-5)  # %.6g in the CSV
    # what comes back from the CSV goes to the rank test
    (v, _) = compare.compare_rows(from_folder, from_file).verdicts
    assert v.method.startswith(compare.RANK_TEST)


@pytest.mark.parametrize("which", ["base", "new"])
def test_a_bad_path_exits_2_naming_it(tmp_path: Path, which: str, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv([row()], tmp_path / "summary.csv")
    missing = tmp_path / "no-such-run"
    args = [str(missing), str(tmp_path)] if which == "base" else [str(tmp_path), str(missing)]
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "summary.csv" in err
    (tmp_path / "empty").mkdir()  # a folder without a summary.csv
    assert main(["compare", str(tmp_path), str(tmp_path / "empty")]) == 2
    assert str(tmp_path / "empty") in capsys.readouterr().err


def test_unknown_columns_and_duplicates_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.csv"
    write_csv([row()], good)
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join([*FIELDS, "gflops"]) + "\n" + ",".join(["x"] * (len(FIELDS) + 1)) + "\n")
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "gflops" in err
    twice = tmp_path / "twice.csv"
    write_csv([row(), row(ms=2.0)], twice)
    assert main(["compare", str(good), str(twice)]) == 2
    assert "lines 2 and 3" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("name,value\na,1\n")
    assert main(["compare", str(good), str(other)]) == 2
    assert "unknown columns" in capsys.readouterr().err


def test_command_writes_report_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [row(layer="a", samples_ms=samples(1.0, 0.003)), row(layer="b", samples_ms=samples(2.0, 0.003))]
    new = [
        row(layer="a", samples_ms=samples(1.1, 0.003, NOISE2)), row(layer="b", status="FAIL"),
        row(layer="c", samples_ms=samples(1.0, 0.003)),
    ]  # fmt: skip
    write_csv(base, tmp_path / "base.csv")
    (tmp_path / "new").mkdir()
    write_csv(new, tmp_path / "new" / "summary.csv")
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "base.csv"), str(tmp_path / "new"), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert (out / "compare.md").read_text() == printed
    assert "Exit status 1: 1 slower, 1 FAILS NOW." in printed
    assert (out / "compare.png").read_bytes()[:8] == PNG_MAGIC
    # a --series that names nothing here is bad input; a run against itself is all same
    assert main(["compare", str(tmp_path / "base.csv"), str(tmp_path / "new"), "--series", "cudnn"]) == 2
    assert main(["compare", str(tmp_path / "base.csv"), str(tmp_path / "base.csv")]) == 0


@pytest.mark.parametrize("card", ["nvidia-h100", "nvidia-h200/gpu-check"])
def test_a_published_folder_against_itself_is_all_same(card: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = REPO / "results" / "published" / card
    if not (folder / "summary.csv").exists():
        pytest.skip(f"{folder} is not in this checkout")
    assert main(["compare", str(folder), str(folder / "summary.csv")]) == 0
    text = capsys.readouterr().out
    assert "| **all**" in text and "Different devices" not in text
    summary = {line[0]: line for line in compare.summary_table(compare.compare_rows(*[compare.load_side(folder)] * 2))}
    header = compare.SUMMARY_HEADERS
    assert summary["**all**"][header.index("slower")] == "0" and summary["**all**"][header.index("faster")] == "0"
    assert summary["**all**"][header.index("geomean change")] == "+0.0%"
