"""`opbench compare BASE NEW`: the per-row change between two result sets, judged against noise.

Each side is a summary.csv or a folder holding one (a published folder, results/<machine>/). Rows are matched by
their identity (IDENTITY: the matrix point, shape aside, which the suite, layer and batch decide); rows on one side
only are listed, not compared. A matched pair gets a verdict (docs/compare.md):

- status changes: `FAILS NOW` (PASS, then FAIL), `FIXED` (FAIL, then PASS), `still fails`, `SKIP` (either side);
- PASS on both: the time ratio new median / base median, `slower`, `faster` or `same`. A change counts only when
  it is beyond noise *and* at least the threshold (default 2%), so a significant 0.3% change is `same`:
  - with every sample of both rows (`samples_ms`): the Mann-Whitney U test (mann_whitney_u), two-sided, at `alpha`
    (default 0.01), where the sample counts could reach it at all (MIN_P_FOR_RANK_TEST);
  - otherwise (rows recorded before samples were kept): a noise band from the rows' coefficients of variation,
    |ratio - 1| > max(threshold, K_CV * sqrt(cv_base^2 + cv_new^2));
  - with neither: the threshold alone.

The method that judged a row is named beside its verdict. The exit status (exit_status) is 1 when any compared
row is `slower` or `FAILS NOW`, 0 otherwise; bad input (no such file, unknown columns) raises CompareError, which
the command reports with status 2.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tabulate import tabulate

from opbench.records import STATUSES, read_summary

IDENTITY = ("op", "suite", "layer", "batch", "dtype", "layout", "backend", "variant")
DEFAULT_THRESHOLD = 0.02  # smallest change (fraction of the base time) that can count as slower or faster
DEFAULT_ALPHA = 0.01  # significance level of the rank test
# The cv band's width in combined sample spreads. cv is the spread of single samples, not of the median (whose
# standard error is about 1.25 cv / sqrt(n)); that, times 3, is wide on purpose: two runs differ by more than one
# run's samples do (clocks, temperature, the neighbours of a shared node), and the band stands in for that.
K_CV = 3.0

SLOWER, FASTER, SAME = "slower", "faster", "same"
FAILS_NOW, FIXED, STILL_FAILS, SKIP, NO_TIME = "FAILS NOW", "FIXED", "still fails", "SKIP", "no time"
VERDICTS = (SLOWER, FAILS_NOW, FASTER, FIXED, SAME, STILL_FAILS, SKIP, NO_TIME)
REGRESSIONS = (SLOWER, FAILS_NOW)  # the verdicts that make the exit status 1

RANK_TEST, CV_BAND, THRESHOLD_ONLY = "U test", "cv band", "threshold only"


class CompareError(Exception):
    """Bad input: a path that is not a summary.csv, unreadable rows, an unknown series."""


# ------------------------------------------------------------------------------------------------ loading


def load_side(path: str | Path) -> list[dict[str, Any]]:
    """The rows of one side: `path` is a summary.csv file or a folder holding one."""
    path = Path(path)
    csv_path = path / "summary.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise CompareError(f"{path}: neither a summary.csv file nor a folder holding one")
    try:
        rows = read_summary(csv_path)
    except (ValueError, UnicodeDecodeError) as error:  # unknown columns, a cell that is not a number, not text
        raise CompareError(f"{csv_path}: {error}") from error
    if not rows:
        raise CompareError(f"{csv_path}: no rows")
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        lacking = [f for f in IDENTITY if row[f] is None]
        if lacking or row["status"] not in STATUSES:
            what = f"lacks {', '.join(lacking)}" if lacking else f"has status {row['status']!r}"
            raise CompareError(f"{csv_path}: line {i} {what}: not a summary.csv of opbench records")
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows, start=2):
        key = identity(row)
        if key in seen:
            raise CompareError(f"{csv_path}: lines {seen[key]} and {i} are the same row ({' '.join(map(str, key))})")
        seen[key] = i
    return rows


def identity(row: dict[str, Any]) -> tuple:
    return tuple(row[f] for f in IDENTITY)


def series(row: dict[str, Any]) -> str:
    return f"{row['backend']}:{row['variant']}"


def match_rows(
    base: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(pairs of base and new row with one identity, in base's order; rows only in base; rows only in new)."""
    by_key = {identity(r): r for r in new}
    base_keys = {identity(r) for r in base}
    pairs = [(r, by_key[identity(r)]) for r in base if identity(r) in by_key]
    removed = [r for r in base if identity(r) not in by_key]
    added = [r for r in new if identity(r) not in base_keys]
    return pairs, removed, added


# ------------------------------------------------------------------------------------------------ statistics


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(U of x, two-sided p) of the Mann-Whitney U test: normal approximation, tie-corrected variance, continuity
    correction (scipy.stats.mannwhitneyu's `asymptotic` method gives the same p). U of x counts the pairs where x
    is the larger (ties count half); n1 * n2 / 2 when neither side tends to be larger.

    Why this test and not a bootstrap of the median ratio: it is deterministic (no seed, no resampling), it assumes
    no distribution (GPU timing samples are skewed, with one-sided outliers, which ranks ignore), and at ten samples
    a side, what the records hold, a bootstrapped median takes only a few distinct values, so its interval is
    coarse. It tests whether one side's samples tend to be larger, not by how much: the size of the change is the
    median ratio, held to the threshold separately.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("the U test needs samples on both sides")
    values = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    rank_sum_x, tie_term, i = 0.0, 0.0, 0
    while i < len(values):  # average ranks over runs of equal values
        j = i
        while j < len(values) and values[j][0] == values[i][0]:
            j += 1
        rank = (i + 1 + j) / 2  # ranks i+1 .. j
        rank_sum_x += rank * sum(1 for _, side in values[i:j] if side == 0)
        tie_term += (j - i) ** 3 - (j - i)
        i = j
    u = rank_sum_x - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:  # every value equal
        return u, 1.0
    z = max(abs(u - n1 * n2 / 2) - 0.5, 0.0) / math.sqrt(variance)
    return u, min(1.0, math.erfc(z / math.sqrt(2)))


def min_p(n1: int, n2: int) -> float:
    """The smallest p the U test can give with these sample counts (the two sides do not overlap)."""
    return mann_whitney_u(range(n1), range(n1, n1 + n2))[1]


def _cv(row: dict[str, Any]) -> float | None:
    if row["cv"] is not None:
        return row["cv"]
    samples = row["samples_ms"] or []
    if len(samples) < 2:
        return None
    mean = sum(samples) / len(samples)
    return math.sqrt(sum((s - mean) ** 2 for s in samples) / (len(samples) - 1)) / mean


def _median_ms(row: dict[str, Any]) -> float | None:
    if row["median_ms"] is not None:
        return row["median_ms"]
    samples = sorted(row["samples_ms"] or [])
    if not samples:
        return None
    mid = len(samples) // 2
    return samples[mid] if len(samples) % 2 else (samples[mid - 1] + samples[mid]) / 2


def _timing_kind(row: dict[str, Any]) -> str:
    """The timing method with its counts taken out (launches per sample differ between runs, the method not)."""
    return re.sub(r"\d+(\.\d+)?", "N", row["timing_method"] or "")


# ------------------------------------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class RowVerdict:
    base: dict[str, Any]
    new: dict[str, Any]
    verdict: str
    method: str  # what judged it (PASS on both sides), or what the statuses were
    ratio: float | None = None  # new median / base median, PASS on both sides
    band: float | None = None  # the half-width (fraction) a change had to exceed: the plot's shading
    p: float | None = None  # the U test's p, where it judged


def judge(
    base: dict[str, Any],
    new: dict[str, Any],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    k: float = K_CV,
) -> RowVerdict:
    """The verdict on one matched pair of rows (the module's docstring gives the rules)."""
    statuses = (base["status"], new["status"])
    if "SKIP" in statuses:
        return RowVerdict(base, new, SKIP, f"{statuses[0]} -> {statuses[1]}")
    if statuses == ("PASS", "FAIL"):
        return RowVerdict(base, new, FAILS_NOW, _short(new["reason"]))
    if statuses == ("FAIL", "PASS"):
        return RowVerdict(base, new, FIXED, "")
    if statuses == ("FAIL", "FAIL"):
        return RowVerdict(base, new, STILL_FAILS, _short(new["reason"]))
    base_ms, new_ms = _median_ms(base), _median_ms(new)
    if not base_ms or not new_ms:
        return RowVerdict(base, new, NO_TIME, "a PASS row without a median time")
    ratio = new_ms / base_ms
    change = ratio - 1
    direction = SLOWER if change > 0 else FASTER
    note = "; timing method differs" if _timing_kind(base) != _timing_kind(new) else ""
    xs, ys = base["samples_ms"] or [], new["samples_ms"] or []
    if xs and ys and min_p(len(xs), len(ys)) < alpha:
        u, p = mann_whitney_u(ys, xs)  # U of new: above n1*n2/2 when new's samples tend to be the slower
        agrees = (u > len(xs) * len(ys) / 2) == (change > 0)
        beyond = p < alpha and agrees and abs(change) > threshold
        method = f"{RANK_TEST} p={p:.2g}" + (" (under threshold)" if p < alpha and not beyond else "")
        return RowVerdict(base, new, direction if beyond else SAME, method + note, ratio, threshold, p)
    cv_base, cv_new = _cv(base), _cv(new)
    if cv_base is not None and cv_new is not None:
        band = max(threshold, k * math.hypot(cv_base, cv_new))
        verdict = direction if abs(change) > band else SAME
        return RowVerdict(base, new, verdict, f"{CV_BAND} ±{100 * band:.1f}%" + note, ratio, band)
    verdict = direction if abs(change) > threshold else SAME
    return RowVerdict(base, new, verdict, f"{THRESHOLD_ONLY} ±{100 * threshold:.1f}%" + note, ratio, threshold)


def _short(text: str | None, width: int = 80) -> str:
    text = (text or "").replace("|", "/").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class Comparison:
    verdicts: list[RowVerdict]
    removed: list[dict[str, Any]]  # only in base
    added: list[dict[str, Any]]  # only in new
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    k: float = K_CV
    base_rows: list[dict[str, Any]] = field(default_factory=list)
    new_rows: list[dict[str, Any]] = field(default_factory=list)


def compare_rows(
    base: Sequence[dict[str, Any]],
    new: Sequence[dict[str, Any]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    k: float = K_CV,
    only_series: Sequence[str] = (),
) -> Comparison:
    """Match and judge every row. `only_series` keeps the series named (`backend:variant`, or `backend` for all of
    its variants); a name that matches no row of either side is a CompareError."""
    if not 0 <= threshold < 1:
        raise CompareError(f"--threshold is a fraction of the base time in [0, 1), got {threshold}")
    if not 0 < alpha < 1:
        raise CompareError(f"--alpha is a significance level in (0, 1), got {alpha}")
    if only_series:
        present = {series(r) for r in [*base, *new]}
        for name in only_series:
            if not any(_series_matches(s, name) for s in present):
                raise CompareError(f"--series {name}: no such series on either side ({', '.join(sorted(present))})")
        keep = [r for r in base if any(_series_matches(series(r), n) for n in only_series)]
        new = [r for r in new if any(_series_matches(series(r), n) for n in only_series)]
        base = keep
    pairs, removed, added = match_rows(base, new)
    verdicts = [judge(b, n, threshold=threshold, alpha=alpha, k=k) for b, n in pairs]
    return Comparison(verdicts, removed, added, threshold, alpha, k, list(base), list(new))


def _series_matches(name: str, wanted: str) -> bool:
    return name == wanted or (":" not in wanted and name.split(":", 1)[0] == wanted)


def exit_status(comparison: Comparison) -> int:
    """1 when any matched row is slower beyond noise or fails where it passed, else 0."""
    return int(any(v.verdict in REGRESSIONS for v in comparison.verdicts))


def geomean_ratio(verdicts: Iterable[RowVerdict]) -> tuple[float, int]:
    """(geometric mean of new / base time over the rows that PASS on both sides, how many); NaN if none."""
    ratios = [v.ratio for v in verdicts if v.ratio]
    if not ratios:
        return math.nan, 0
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)), len(ratios)


# ------------------------------------------------------------------------------------------------ the report


def _change(ratio: float | None) -> str:
    return "" if ratio is None or ratio != ratio else f"{100 * (ratio - 1):+.1f}%"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _distinct(rows: Iterable[dict[str, Any]], name: str) -> list[str]:
    return sorted({str(r[name]) for r in rows if r[name]})


def _short_commit(commit: str) -> str:
    return commit[:7] + ("+dirty" if commit.endswith("+dirty") else "")


def _side_line(label: str, path: str, rows: list[dict[str, Any]]) -> str:
    stamps = sorted(str(r["timestamp"]) for r in rows if r["timestamp"])
    parts = [
        f"**{label}** `{path}`: {len(rows)} rows",
        "device " + (", ".join(f"`{d}`" for d in _distinct(rows, "device")) or "n/a"),
        "commit " + (", ".join(f"`{_short_commit(c)}`" for c in _distinct(rows, "commit")) or "n/a"),
        "run id " + (", ".join(f"`{r}`" for r in _distinct(rows, "run_id")) or "n/a (recorded before run ids)"),
    ]
    if stamps:
        parts.append(f"recorded {stamps[0]} to {stamps[-1]}")
    return "; ".join(parts) + "."


def summary_table(comparison: Comparison) -> list[list[str]]:
    """One row per series and one for all: rows matched, compared (PASS on both), geomean new/base time, counts."""
    by_series: dict[str, list[RowVerdict]] = defaultdict(list)
    for v in comparison.verdicts:
        by_series[series(v.base)].append(v)
    names = list(dict.fromkeys([*by_series, *(series(r) for r in comparison.removed + comparison.added)]))
    removed = Counter(series(r) for r in comparison.removed)
    added = Counter(series(r) for r in comparison.added)

    def line(name: str, verdicts: list[RowVerdict], only_base: int, only_new: int) -> list[str]:
        mean, n = geomean_ratio(verdicts)
        counts = Counter(v.verdict for v in verdicts)
        other = counts[STILL_FAILS] + counts[SKIP] + counts[NO_TIME]
        commits = [
            ", ".join(_short_commit(c) for c in _distinct([getattr(v, side) for v in verdicts], "commit"))
            for side in ("base", "new")
        ]
        return [
            name, str(len(verdicts)), str(n), _change(mean if n else None),
            *(str(counts[v]) for v in (SLOWER, FASTER, SAME, FAILS_NOW, FIXED)), str(other), str(only_base),
            str(only_new), " / ".join(commits) if verdicts else "",
        ]  # fmt: skip

    table = [line(s, by_series.get(s, []), removed[s], added[s]) for s in names]
    total = line("**all**", comparison.verdicts, len(comparison.removed), len(comparison.added))
    table.append([*total[:-1], ""])  # every commit is in the header
    return table


SUMMARY_HEADERS = [
    "series", "matched", "compared", "geomean change", SLOWER, FASTER, SAME, FAILS_NOW, FIXED, "other",
    "only base", "only new", "commits (base / new)",
]  # fmt: skip


def markdown(comparison: Comparison, base_path: str, new_path: str, *, only_changed: bool = False) -> str:
    """The report: both sides' provenance, the rules, a summary per series, a table per series, unmatched rows."""
    c = comparison
    lines = [
        "# opbench compare",
        "",
        _side_line("base", base_path, c.base_rows),
        "",
        _side_line("new", new_path, c.new_rows),
    ]
    base_devices, new_devices = _distinct(c.base_rows, "device"), _distinct(c.new_rows, "device")
    if base_devices != new_devices:
        lines += [
            "",
            f"**Different devices** ({', '.join(base_devices) or 'n/a'} against {', '.join(new_devices) or 'n/a'}): "
            "the verdicts compare the devices (and whatever else differs), not a change of code alone.",
        ]
    lines += [
        "",
        "Change: new median time / base median time - 1 (+ is slower). On rows that PASS on both sides a change "
        f"counts when it is at least {100 * c.threshold:g}% and beyond noise: by the {RANK_TEST} (Mann-Whitney, "
        f"p < {c.alpha:g}) where both rows kept their samples, else by the {CV_BAND} max(threshold, "
        f"{c.k:g} x sqrt(cv_base^2 + cv_new^2)). Geomean: over the rows compared (PASS on both sides).",
        "",
        "## Summary",
        "",
        tabulate(summary_table(c), headers=SUMMARY_HEADERS, tablefmt="github", disable_numparse=True),
    ]
    by_series: dict[str, list[RowVerdict]] = defaultdict(list)
    for v in c.verdicts:
        by_series[series(v.base)].append(v)
    for name, verdicts in by_series.items():
        # rows of one (op, suite, batch, dtype, layout) together, in the order they first appear in base
        blocks: dict[tuple, int] = {}
        for v in verdicts:
            blocks.setdefault(_block(v.base), len(blocks))
        verdicts = sorted(verdicts, key=lambda v: blocks[_block(v.base)])
        shown = [v for v in verdicts if not (only_changed and v.verdict == SAME)]
        mean, n = geomean_ratio(verdicts)
        lines += ["", f"## {name}", ""]
        if not shown:
            lines.append(f"{len(verdicts)} matched rows, all `same` (geomean {_change(mean)}).")
            continue
        # op and suite only where they vary (layer names are a suite's)
        extra = [f for f in ("op", "suite") if len({v.base[f] for v in verdicts}) > 1]
        headers = [*extra, "layer", "batch", "dtype", "layout", "base ms", "new ms", "change", "verdict", "method"]
        table = [[*(v.base[f] for f in extra), *_row_cells(v)] for v in shown]
        total = [""] * len(headers)
        total[0], total[headers.index("change")] = f"geomean ({n} compared)", _change(mean if n else None)
        table.append(total)
        if only_changed and len(shown) < len(verdicts):
            lines.append(f"{len(verdicts) - len(shown)} of {len(verdicts)} rows `same`, not shown (--only-changed).")
            lines.append("")
        lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    for title, rows in (("Only in base (not compared)", c.removed), ("Only in new (not compared)", c.added)):
        if rows:
            lines += ["", f"## {title}", "", _unmatched_table(rows)]
    regressions = Counter(v.verdict for v in c.verdicts if v.verdict in REGRESSIONS)
    lines += [
        "",
        f"Exit status {exit_status(c)}: "
        + (", ".join(f"{regressions[v]} {v}" for v in REGRESSIONS if regressions[v]) or "nothing slower or failing")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _block(row: dict[str, Any]) -> tuple:
    return tuple(row[f] for f in ("op", "suite", "batch", "dtype", "layout"))


def _row_cells(v: RowVerdict) -> list[str]:
    """layer, batch, dtype, layout, base ms, new ms, change, verdict, method."""
    b = v.base
    point = [b["layer"], str(b["batch"]), b["dtype"], b["layout"]]
    return [*point, _ms(_median_ms(b)), _ms(_median_ms(v.new)), _change(v.ratio), v.verdict, v.method]


def _unmatched_table(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple, list[str]] = defaultdict(list)
    for r in rows:
        groups[(series(r), r["op"], r["suite"], r["batch"], r["dtype"], r["layout"])].append(r["layer"])
    table = [[*map(str, key), str(len(layers)), ", ".join(layers)] for key, layers in groups.items()]
    headers = ["series", "op", "suite", "batch", "dtype", "layout", "rows", "layers"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


# ------------------------------------------------------------------------------------------------ the plot

PLOT_MAX_WIDTH_IN = 28


def plot(comparison: Comparison, path: Path) -> bool:
    """log2(new / base time) per compared row, one panel per series: slower rows red, faster green, same grey, the
    band a change had to exceed shaded, FAILS NOW marked. False (and no file) when no row has a ratio or FAILS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_series: dict[str, list[RowVerdict]] = defaultdict(list)
    for v in comparison.verdicts:
        if v.ratio or v.verdict == FAILS_NOW:
            by_series[series(v.base)].append(v)
    if not by_series:
        return False
    most = max(len(vs) for vs in by_series.values())
    width = min(PLOT_MAX_WIDTH_IN, max(7, 2 + 0.14 * most))
    fig, axes = plt.subplots(len(by_series), 1, figsize=(width, 3.2 * len(by_series)), squeeze=False)
    colors = {SLOWER: "tab:red", FASTER: "tab:green", SAME: "tab:gray"}
    for ax, (name, verdicts) in zip(axes[:, 0], by_series.items(), strict=True):
        heights = [math.log2(v.ratio) if v.ratio else 0.0 for v in verdicts]
        limit = max(math.log2(1.1), *(abs(h) for h in heights)) * 1.15
        for x, (v, h) in enumerate(zip(verdicts, heights, strict=True)):
            if v.band is not None:
                low = math.log2(1 - v.band) if v.band < 1 else -limit
                ax.bar(x, math.log2(1 + v.band) - low, 0.9, bottom=low, color="0.85", zorder=1)
            if v.verdict == FAILS_NOW:
                ax.plot(x, 0, "x", color="tab:red", zorder=3)
                ax.annotate("FAIL", (x, 0), rotation=90, color="tab:red", ha="center", va="bottom", fontsize=7)
            else:
                ax.bar(x, h, 0.6, color=colors.get(v.verdict, "tab:gray"), zorder=2)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylim(-limit, limit)
        labels = [f"{v.base['layer']} n{v.base['batch']} {v.base['dtype']}" for v in verdicts]
        ax.set_xticks(range(len(verdicts)), labels, rotation=90, fontsize=6)
        ax.set_xlim(-0.7, max(len(verdicts), 8) - 0.3)
        mean, n = geomean_ratio(verdicts)
        ax.set_title(f"{name}: geomean {_change(mean if n else None)} over {n} rows", fontsize=9, loc="left")
        ax.set_ylabel("log2(new / base)\n> 0: slower", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("time change per row (new / base); shaded: the band a change had to exceed", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.2 * len(by_series))))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------------ the command


def run(
    base: str | Path,
    new: str | Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    only_series: Sequence[str] = (),
    only_changed: bool = False,
    out: Path | None = None,
    stdout: TextIO | None = None,
) -> int:
    """The command: print the report (and write compare.md and compare.png into `out`); return the exit status.
    CompareError for bad input."""
    comparison = compare_rows(
        load_side(base), load_side(new), threshold=threshold, alpha=alpha, only_series=only_series
    )
    text = markdown(comparison, str(base), str(new), only_changed=only_changed)
    (stdout or sys.stdout).write(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(text)
        if not plot(comparison, out / "compare.png"):
            (out / "compare.png").unlink(missing_ok=True)
    return exit_status(comparison)
