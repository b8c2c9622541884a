"""Aggregate per-job records into summary.csv, summary.md and plots. Reads records, never printed text."""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tabulate import tabulate

from opbench.matrix import Point
from opbench.records import FIELDS, make_record, read_record

GROUP_KEYS = ("op", "suite", "batch", "dtype", "layout")


def skip_record(point: Point, reason: str, **provenance: Any) -> dict[str, Any]:
    """The record of a point that has no job here (its device is absent)."""
    return make_record(**_point_fields(point), status="SKIP", reason=reason, **provenance)


def missing_record(point: Point, log_hint: str, **provenance: Any) -> dict[str, Any]:
    """The record of a point whose job failed or never ran: a FAIL that points at the logs."""
    return make_record(**_point_fields(point), status="FAIL", reason=f"job failed or did not run; see {log_hint}",
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
    log_hint: str,
) -> list[dict[str, Any]]:
    """One record per point, in matrix order: its job's record, a SKIP, or a FAIL where the job left none."""
    rows = []
    for point in points:
        if point in skipped:
            rows.append(skip_record(point, skipped[point], **provenance))
            continue
        path = records_dir / point.record_path
        rows.append(read_record(path) if path.exists() else missing_record(point, log_hint, **provenance))
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in FIELDS})


def _cell(row: dict[str, Any]) -> str:
    return f"{row['tflops'] * 1000:.1f}" if row["status"] == "PASS" else row["status"]


def _series(row: dict[str, Any]) -> str:
    return f"{row['backend']}:{row['variant']}"


def _groups(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in GROUP_KEYS)].append(row)
    return groups


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    """Per (op, suite, batch, dtype, layout): one table, a row per layer, a column per backend:variant."""
    counts = Counter(row["status"] for row in rows)
    provenance = rows[0] if rows else {}
    lines = [
        f"# {title}",
        "",
        f"{len(rows)} results: " + ", ".join(f"{counts[s]} {s}" for s in ("PASS", "FAIL", "SKIP")),
        "",
        f"Commit `{provenance.get('commit')}`, config `{provenance.get('config_hash')}`, "
        f"iree-compile `{provenance.get('iree_compile')}`, nvcc `{provenance.get('nvcc')}`.",
        "Cells: GFLOP/s from the median time. Failed and skipped rows are listed below the tables with their reasons.",
    ]
    for key, group in _groups(rows).items():
        if all(r["status"] == "SKIP" for r in group):
            continue  # counted in the SKIP list below
        series = list(dict.fromkeys(_series(r) for r in group))
        devices = sorted({str(r["device"]) for r in group if r["device"]})
        by_layer: dict[tuple, dict[str, str]] = defaultdict(dict)
        for row in group:
            by_layer[(row["layer"], row["shape"])][_series(row)] = _cell(row)
        table = [[layer, shape, *(cells.get(s, "") for s in series)] for (layer, shape), cells in by_layer.items()]
        if len(by_layer) > 1:
            means = [geomean(r["tflops"] for r in group if _series(r) == s and r["status"] == "PASS") for s in series]
            table.append(["geomean (PASS)", "", *(f"{m * 1000:.1f}" if m == m else "" for m in means)])
        lines += [
            "",
            "## " + ", ".join(f"{k} {v}" for k, v in zip(GROUP_KEYS, key, strict=True)),
            "",
            f"Device: {', '.join(devices) or 'n/a'}",
            "",
            tabulate(table, headers=["layer", "shape", *series], tablefmt="github", disable_numparse=True),
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


def plot_group(key: tuple, group: list[dict[str, Any]], path: Path) -> None:
    """Bars of GFLOP/s per layer and backend:variant; FAIL bars are red and labelled, SKIPs are absent."""
    series = list(dict.fromkeys(_series(r) for r in group if r["status"] != "SKIP"))
    layers = list(dict.fromkeys(r["layer"] for r in group))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(layers) * max(1, len(series))), 4.5))
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
                ax.bar(x, row["tflops"] * 1000, width, color=f"C{i}", label=None if labelled else name)
                labelled = True
            else:
                ax.bar(x, 0, width, color="red")
                ax.annotate("FAIL", (x, 0), rotation=90, color="red", ha="center", va="bottom", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("GFLOP/s (median)")
    ax.set_title(", ".join(f"{k} {v}" for k, v in zip(GROUP_KEYS, key, strict=True)), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_name(key: tuple) -> str:
    return "__".join(str(v) for v in key) + ".png"


def write_summary(rows: list[dict[str, Any]], outdir: Path, title: str) -> list[Path]:
    """Write summary.csv, summary.md and one plot per group into outdir; return the plot paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, outdir / "summary.csv")
    (outdir / "summary.md").write_text(markdown(rows, title))
    plots_dir = outdir / "plots"
    plots_dir.mkdir(exist_ok=True)
    paths = []
    for key, group in _groups(rows).items():
        if all(r["status"] == "SKIP" for r in group):
            continue
        path = plots_dir / plot_name(key)
        plot_group(key, group, path)
        paths.append(path)
    return paths


def failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "FAIL"]


def geomean(values: Iterable[float]) -> float:
    vals = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def summarize_workflow(
    *,
    points: list[Point],
    records_dir: Path,
    skipped: dict[Point, str],
    outdir: Path,
    title: str,
    config_hash: str,
    log: Path,
) -> list[dict[str, Any]]:
    """The summary rule: collect every point's record (SKIP/FAIL where none) and write tables and plots."""
    from opbench.jobs import provenance_fields

    fields = {**provenance_fields(), "config_hash": config_hash}
    rows = collect(points, records_dir, skipped, fields, log_hint=f"{outdir}/logs/")
    write_summary(rows, outdir, title)
    counts = Counter(r["status"] for r in rows)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"{len(rows)} rows: {dict(counts)}\n")
    return rows
