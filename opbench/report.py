"""Aggregate per-job records into summary.csv, summary.md and plots. Reads records, never printed text."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tabulate import tabulate

from opbench.matrix import Point
from opbench.ops import OPS
from opbench.records import make_record, read_record, write_csv

GROUP_KEYS = ("op", "suite", "batch", "dtype", "layout")


def skip_record(point: Point, reason: str, **provenance: Any) -> dict[str, Any]:
    """The record of a point that has no job here (its device is absent)."""
    return make_record(**_point_fields(point), status="SKIP", reason=reason, **provenance)


def missing_record(point: Point, log: str, **provenance: Any) -> dict[str, Any]:
    """The record of a point whose job failed or never ran: a FAIL that points at that job's log."""
    return make_record(**_point_fields(point), status="FAIL", reason=f"job failed or did not run; see {log}",
                       **provenance)  # fmt: skip


def _point_fields(point: Point) -> dict[str, Any]:
    return {
        "op": point.op, "suite": point.suite, "layer": point.layer, "count": point.count, "shape": point.shape,
        "batch": point.batch, "dtype": point.dtype, "layout": point.layout, "backend": point.backend,
        "variant": point.variant,
    }  # fmt: skip


def collect(
    points: Iterable[Point],
    records_dir: Path,
    skipped: dict[Point, str],
    provenance: dict[str, Any],
    failed_log: Callable[[Point], str],
) -> list[dict[str, Any]]:
    """One record per point, in matrix order: its job's record, a SKIP, or a FAIL where the job left none (its
    reason names `failed_log(point)`, the log of the job that failed)."""
    rows = []
    for point in points:
        if point in skipped:
            rows.append(skip_record(point, skipped[point], **provenance))
            continue
        path = records_dir / point.record_path
        rows.append(read_record(path) if path.exists() else missing_record(point, failed_log(point), **provenance))
    return rows


@dataclass(frozen=True)
class Rate:
    """What a group's cells and bars show: a record field, its unit, the factor to that unit and the decimals."""

    field: str  # "tflops" or "gbps"
    unit: str
    scale: float
    digits: int


def _rate(group: list[dict[str, Any]]) -> Rate:
    """GB/s of the minimum traffic for a memory-bound op (Op.memory_bound; a decimal below 100 GB/s); else GFLOP/s
    for CPU-sized numbers, TFLOP/s once a group's best passes 1 TFLOP/s."""
    op = OPS.get(group[0]["op"])
    if op is not None and op.memory_bound:
        best_gbps = max((r["gbps"] for r in group if r["status"] == "PASS"), default=0.0)
        return Rate("gbps", "GB/s", 1.0, 0 if best_gbps >= 100 else 1)
    best = max((r["tflops"] for r in group if r["status"] == "PASS"), default=0.0)
    return Rate("tflops", "TFLOP/s", 1.0, 2) if best >= 1.0 else Rate("tflops", "GFLOP/s", 1000.0, 1)


def _cell(row: dict[str, Any], rate: Rate, run_labels: dict[str, str]) -> str:
    """A row's rate (or its status), and the label of its run where a table holds rows of several runs."""
    text = f"{row[rate.field] * rate.scale:.{rate.digits}f}" if row["status"] == "PASS" else row["status"]
    return text if row["status"] == "SKIP" else text + run_labels.get(run_key(row), "")


def _series(row: dict[str, Any]) -> str:
    return f"{row['backend']}:{row['variant']}"


def _groups(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in GROUP_KEYS)].append(row)
    return groups


PROVENANCE_FIELDS = ("commit", "iree_compile", "iree_runtime", "nvcc", "cuda_driver", "torch", "cudnn", "host")


def _provenance(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The distinct values of each provenance field over the rows that measured something, plus the time span."""
    measured = [r for r in rows if r["status"] != "SKIP"] or rows
    values = {f: sorted({str(r[f]) for r in measured if r[f] is not None}) for f in PROVENANCE_FIELDS}
    stamps = sorted(str(r["timestamp"]) for r in measured if r["timestamp"])
    if stamps:
        values["recorded"] = [f"{stamps[0]} to {stamps[-1]}"]
    return {f: v for f, v in values.items() if v}


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    """Per (op, suite, batch, dtype, layout): one table, a row per layer, a column per backend:variant (and one per
    series with dispatch times, dispatch_time_rows). The counts are of the measured rows."""
    counts = Counter(row["status"] for row in rows)
    lines = [
        f"# {title}",
        "",
        f"{len(rows)} results: " + ", ".join(f"{counts[s]} {s}" for s in ("PASS", "FAIL", "SKIP")),
        "",
        "Provenance (each row of summary.csv carries its own): "
        + ", ".join(f"{field} `{'`, `'.join(values)}`" for field, values in _provenance(rows).items())
        + ".",
        "Failed and skipped rows are listed below the tables with their reasons.",
    ]
    for key, group in _groups(rows + dispatch_time_rows(rows)).items():
        if all(r["status"] == "SKIP" for r in group):
            continue  # counted in the SKIP list below
        # a series that is SKIP on every layer here (say, a math mode for another dtype) is only in the SKIP list
        series = list(dict.fromkeys(_series(r) for r in group if r["status"] != "SKIP"))
        devices = sorted({str(r["device"]) for r in group if r["device"]})
        rate = _rate(group)
        by_layer: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
        for row in group:
            by_layer[(row["layer"], row["shape"])][_series(row)] = row
        # A layer where some row was not measured (SKIP, or no record: a stopped run) has no winner; a FAIL never wins.
        untimed = {
            layer
            for layer, cells in by_layer.items()
            if len(cells) < len(series) or any(r["status"] == "SKIP" for r in cells.values())
        }
        # Nor has a layer whose rows come from different runs: their times were not taken side by side.
        mixed = {layer for layer, cells in by_layer.items() if len({run_key(r) for r in cells.values()}) > 1}
        winners = {
            layer: "n/a (not all timed)" if layer in untimed
            else "n/a (rows of different runs)" if layer in mixed else fastest(cells.values())
            for layer, cells in by_layer.items()
        }  # fmt: skip
        runs = list(dict.fromkeys(run_key(r) for r in group if r["status"] != "SKIP"))
        label = {run: f" ({_run_label(i)})" for i, run in enumerate(runs)} if len(runs) > 1 else {}

        table = [
            [layer, shape, *(_cell(cells[s], rate, label) if s in cells else "" for s in series),
             winners[(layer, shape)]]
            for (layer, shape), cells in by_layer.items()
        ]  # fmt: skip
        if len(by_layer) > 1:
            means = [geomean(r[rate.field] for r in group if _series(r) == s and r["status"] == "PASS") for s in series]
            table.append(
                ["geomean (PASS)", "", *(f"{m * rate.scale:.{rate.digits}f}" if m == m else "" for m in means), ""]
            )
            if rate.field == "gbps" and any(r["peak_gbps_frac"] for r in group if r["status"] == "PASS"):
                fractions = [
                    geomean(r["peak_gbps_frac"] for r in group if _series(r) == s and r["status"] == "PASS" and
                            r["peak_gbps_frac"])
                    for s in series
                ]  # fmt: skip
                table.append(
                    ["geomean fraction of copy bandwidth", "", *(f"{f:.2f}" if f == f else "" for f in fractions), ""]
                )
            wins = Counter(winners.values())
            table.append(["layers won", "", *(str(wins[s]) for s in series), ""])
            for baseline in dict.fromkeys(filter(None, (baseline_class(r) for r in group if r["status"] == "PASS"))):
                ratios = [geomean_ratio(by_layer.values(), s, baseline) for s in series]
                table.append([f"geomean ratio to {baseline}", "", *(f"{r:.2f}" if r == r else "" for r in ratios), ""])
        runs_note = (
            [
                "",
                f"Rows of {len(runs)} runs, marked after each cell: "
                + ", ".join(f"({_run_label(i)}) `{run}`" for i, run in enumerate(runs))
                + ". Rows of different runs are never paired (no ratio, no winner); to time every row again in one "
                "run: `opbench bench --retime`.",
            ]
            if label
            else []
        )
        lines += [
            "",
            "## " + ", ".join(f"{k} {v}" for k, v in zip(GROUP_KEYS, key, strict=True)),
            "",
            f"Device: {', '.join(devices) or 'n/a'}. Cells: {rate.unit} from the median time"
            + (" (the shape's minimum traffic: inputs read once, output written once)" if rate.field == "gbps" else "")
            + "; `fastest`: the PASS row "
            "with the highest rate, on layers where every row was timed in one run. Ratio rows: per layer, the row's "
            "rate over the fastest PASS row of the baseline measured in the same run; geometric mean over the layers "
            "where both exist.",
            *runs_note,
            *(line for note in _backend_notes(group) for line in ("", note)),
            "",
            tabulate(table, headers=["layer", "shape", *series, "fastest"], tablefmt="github", disable_numparse=True),
        ]
    skipped = Counter((_series(r), r["reason"]) for r in rows if r["status"] == "SKIP")
    if skipped:
        lines += ["", "## Skipped", ""]
        lines.append(
            tabulate(
                [[series, count, reason] for (series, reason), count in skipped.items()],
                headers=["backend:variant", "rows", "reason"],
                tablefmt="github",
            )
        )
    bad = [r for r in rows if r["status"] == "FAIL"]
    if bad:
        lines += ["", "## Failed", ""]
        lines.append(
            tabulate(
                [[r["status"], r["layer"], r["shape"], r["dtype"], r["layout"], _series(r), r["reason"]] for r in bad],
                headers=["status", "layer", "shape", "dtype", "layout", "backend:variant", "reason"],
                tablefmt="github",
            )
        )
    return "\n".join(lines) + "\n"


PLOT_MAX_WIDTH_IN = 28  # widest per-layer bar plot, inches (at 110 dpi: about 3100 pixels)


def plot_group(key: tuple, group: list[dict[str, Any]], path: Path) -> None:
    """Bars of the group's rate (_rate) per layer and backend:variant; FAIL bars are red and labelled, SKIPs are
    absent."""
    series = list(dict.fromkeys(_series(r) for r in group if r["status"] != "SKIP"))
    layers = list(dict.fromkeys(r["layer"] for r in group))
    rate = _rate(group)
    # About 0.15 inch per bar, capped: 23 layers x 10 series stays a readable 28-inch page, not 115 inches.
    fig, ax = plt.subplots(figsize=(min(PLOT_MAX_WIDTH_IN, max(6, 2 + 0.15 * len(layers) * max(1, len(series)))), 5))
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        rows = {r["layer"]: r for r in group if _series(r) == name}
        labelled = False
        for j, layer in enumerate(layers):
            row = rows.get(layer)
            if row is None or row["status"] == "SKIP":
                continue
            x = j + (i - (len(series) - 1) / 2) * width
            if row["status"] == "PASS":
                ax.bar(x, row[rate.field] * rate.scale, width, color=f"C{i}", label=None if labelled else name)
                labelled = True
            else:
                ax.bar(x, 0, width, color="red")
                ax.annotate("FAIL", (x, 0), rotation=90, color="red", ha="center", va="bottom", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"{rate.unit} (median)")
    ax.set_title(", ".join(f"{k} {v}" for k, v in zip(GROUP_KEYS, key, strict=True)), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roofline(key: tuple, group: list[dict[str, Any]], peaks: dict[str, float], path: Path) -> None:
    """Each PASS row at its arithmetic intensity (FLOPs over the fewest bytes it must move) against the card's
    measured ceilings: min(peak rate, intensity x copy bandwidth) for each precision class present."""
    rows = [r for r in group if r["status"] == "PASS" and r["gbps"]]
    fig, ax = plt.subplots(figsize=(7, 5))
    intensities = [1000 * r["tflops"] / r["gbps"] for r in rows]
    lo, hi = min(intensities) / 2, max(intensities) * 2
    bandwidth = peaks["copy_gbps"] / 1000  # TB/s
    present = {_precision(r) for r in rows}
    ceilings = [k for k in ("f32", "tf32", "f16", "bf16") if k in peaks and k in present]
    for i, precision in enumerate(ceilings):
        knee = peaks[precision] / bandwidth
        xs = [lo, knee, max(hi, knee * 2)] if knee > lo else [lo, max(hi, lo * 2)]
        ax.plot(xs, [min(peaks[precision], x * bandwidth) for x in xs], color="k", lw=1, ls=("-", "--", ":", "-.")[i],
                label=f"{precision} ceiling {peaks[precision]:.0f} TFLOP/s, {bandwidth:.2f} TB/s")  # fmt: skip
    for i, name in enumerate(dict.fromkeys(_series(r) for r in rows)):
        mine = [(x, r["tflops"]) for x, r in zip(intensities, rows, strict=True) if _series(r) == name]
        ax.scatter(*zip(*mine, strict=True), s=14, color=f"C{i}", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / minimum byte)")
    ax.set_ylabel("TFLOP/s (median)")
    ax.set_title("roofline: " + ", ".join(f"{k} {v}" for k, v in zip(GROUP_KEYS, key, strict=True)), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_name(key: tuple) -> str:
    return "__".join(str(v) for v in key) + ".png"


def write_summary(
    rows: list[dict[str, Any]], outdir: Path, title: str, peaks: dict[str, float] | None = None
) -> list[Path]:
    """Write summary.csv, summary.md and one plot per group into outdir (and a roofline per group where the
    device's measured peaks are known); return the plot paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, outdir / "summary.csv")
    (outdir / "summary.md").write_text(markdown(rows, title))
    plots_dir = outdir / "plots"
    plots_dir.mkdir(exist_ok=True)
    paths = []
    for key, group in _groups(rows + dispatch_time_rows(rows)).items():  # dispatch times: a series of their own
        if all(r["status"] == "SKIP" for r in group):
            continue
        path = plots_dir / plot_name(key)
        plot_group(key, group, path)
        paths.append(path)
        if peaks and "copy_gbps" in peaks and any(r["status"] == "PASS" for r in group):
            path = plots_dir / ("roofline__" + plot_name(key))
            plot_roofline(key, group, peaks, path)
            paths.append(path)
    return paths


def _backend_notes(group: list[dict[str, Any]]) -> list[str]:
    """The table notes of the backends with rows in a group (e.g. what IREE's CUDA modules were compiled for)."""
    from opbench.backends import BACKENDS

    names = dict.fromkeys(r["backend"] for r in group)
    return [BACKENDS[n].table_note for n in names if n in BACKENDS and BACKENDS[n].table_note]


def _precision(row: dict[str, Any]) -> str:
    from opbench.backends import get_backend
    from opbench.dtypes import get_dtype

    return get_backend(row["backend"]).tolerance_key(get_dtype(row["dtype"]), row["variant"])


DISPATCH_SUFFIX = "[dispatch time]"


def dispatch_time_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For rows that also measured the device time of their dispatches (IREE on a GPU), a twin row whose rate is
    that device time's, as its own series `backend:variant [dispatch time]` beside the end-to-end one."""
    return [
        {**row, "variant": f"{row['variant']} {DISPATCH_SUFFIX}", "tflops": row["device_tflops"],
         "median_ms": row["device_ms"]}
        for row in rows
        if row["status"] == "PASS" and row.get("device_tflops")
    ]  # fmt: skip


def fastest(rows: Iterable[dict[str, Any]]) -> str:
    """The backend:variant of the fastest PASS row ("" if none passed)."""
    passed = [r for r in rows if r["status"] == "PASS" and r["tflops"]]
    return _series(max(passed, key=lambda r: r["tflops"])) if passed else ""


def run_key(row: dict[str, Any]) -> str:
    """The run a row's timing belongs to: its run id; for a row recorded before run ids existed (2026-12-06), its
    commit (each earlier published run was at a commit of its own)."""
    if row.get("run_id"):
        return str(row["run_id"])
    return f"commit {row['commit']}" if row.get("commit") else "unknown run"


def _run_label(index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[index] if index < len(letters) else str(index + 1)


def baseline_class(row: dict[str, Any]) -> str | None:
    """The baseline a row is a candidate for (Backend.baseline_class), or None."""
    from opbench.backends import BACKENDS

    return BACKENDS[row["backend"]].baseline_class(row["variant"]) if row["backend"] in BACKENDS else None


def geomean_ratio(layers: Iterable[dict[str, dict[str, Any]]], series: str, baseline: str) -> float:
    """Geometric mean over layers of series' rate over the fastest PASS row of `baseline` (a baseline class) from
    the same run, where both exist (NaN if none)."""
    ratios = []
    for cells in layers:
        row = cells.get(series)
        if row is None or row["status"] != "PASS" or not row["tflops"]:
            continue
        candidates = [
            r["tflops"] for r in cells.values()
            if baseline_class(r) == baseline and r["status"] == "PASS" and r["tflops"] and run_key(r) == run_key(row)
        ]  # fmt: skip
        if candidates:
            ratios.append(row["tflops"] / max(candidates))
    return geomean(ratios)


def geomean(values: Iterable[float]) -> float:
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def summarize_workflow(
    *,
    points: list[Point],
    records_dir: Path,
    skipped: dict[Point, str],
    results: Path,
    outdir: Path,
    title: str,
    config_hash: str,
    log: Path,
    problems: str,
    runs_here: set[str],
    device_probe: Path | None = None,
) -> list[dict[str, Any]]:
    """The summary rule: collect every point's record (SKIP/FAIL where none) and write tables and plots.
    A row without a record names the log of its job that failed (`results`: results/<machine>, where the jobs'
    outputs and logs are; `problems`: where the problems' inputs and references are; `runs_here`: the backends whose
    points run here, the others' only build). `outdir`: where this run's tables go (opbench.paths.summary_dir)."""
    from opbench.backends import get_backend
    from opbench.jobs import provenance_fields
    from opbench.paths import failed_job_log
    from opbench.peaks import read_peaks

    fields = {**provenance_fields(), "config_hash": config_hash}

    def failed_log(point: Point) -> str:
        build_scope = get_backend(point.backend).build_scope
        return failed_job_log(str(results), problems, build_scope, point.backend in runs_here, **point.fields)

    rows = collect(points, records_dir, skipped, fields, failed_log=failed_log)
    peaks = read_peaks(device_probe) if device_probe else None
    write_summary(rows, outdir, title, peaks)
    counts = Counter(r["status"] for r in rows)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"{len(rows)} rows: {dict(counts)}\n")
    return rows
