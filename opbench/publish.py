"""`opbench publish`: copy a GPU run's results into results/published/<card>/, the tracked place for them.

Re-renders the tables and plots (roofline included) from the run's per-job records and the device probe's
measured peaks, and copies the provenance: the probe, the CUDA build logs (resource reports, SASS summaries).
Rows published earlier for the card stay unless the new run has the same row (op, suite, layer, batch, dtype,
layout, backend, variant), which replaces them -- except that a new SKIP never replaces an earlier measured row.
Every row keeps its own provenance columns (commit, time stamp, run id).

Ratios pair a row with its baseline (cuDNN) measured in the same run (opbench.report), so a series is published
together with the baseline of its run, never one without the other: a new row whose table layer has baseline rows,
but none of its own run, is refused (UnpairedRows: add the baseline to the run's config), or left out where the
caller asks (`leave_out_unpaired`); earlier rows whose run's
baseline a new run replaced stay, unpaired (no ratio), and are returned as warnings.

`commits` restricts the run's records to those of the given commits (prefixes): a results folder that also holds
records of older runs (a reused machine, an earlier config) then publishes only what this run measured.
"""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from opbench.backends import BACKENDS
from opbench.config import load as load_config
from opbench.peaks import read_peaks
from opbench.records import read_record, read_summary
from opbench.report import GROUP_KEYS, baseline_class, run_key, write_summary


class UnpairedRows(ValueError):
    """New rows whose baseline (measured beside them in their run) the run does not have."""


@dataclass(frozen=True)
class Published:
    folder: Path
    unpaired: list[str]  # earlier rows left without their run's baseline by this publish
    left_out: list[str] = field(default_factory=list)  # new rows without a baseline of their run (leave_out_unpaired)


def publish(
    *,
    results: Path,
    card: str,
    logs: Path,
    out_root: Path = Path("results/published"),
    commits: tuple[str, ...] = (),
    summary: Path | None = None,
    leave_out_unpaired: bool = False,
) -> Published:
    """Publish the records under `results` (results/<machine> of the run) for `card`; `summary`: the run's
    summary.csv (default results/summary.csv, the default config's), whose row order the tables keep.
    `leave_out_unpaired`: publish without the new rows that have no baseline of their run (a run stopped and resumed
    can time a series' row in its second part and the layer's baseline in its first) instead of refusing them all;
    they are returned in Published.left_out."""
    records = [read_record(p) for p in (results / "records").rglob("*.json")]
    if commits:
        records = [r for r in records if str(r.get("commit") or "").startswith(commits)]
    if not records:
        which = f" of commit {' or '.join(commits)}" if commits else ""
        raise FileNotFoundError(f"no records{which} under {results / 'records'}")
    out = out_root / card
    earlier_rows = read_summary(out / "summary.csv")
    order, layer_place = _summary_order(summary or results / "summary.csv")
    # Without the run's own summary (a stopped run), layers keep the order in which the card's tables list them, and
    # layers new to the card the order of their suite in config.yaml.
    layer_rank = {key: i for i, key in enumerate(dict.fromkeys((r["suite"], r["layer"]) for r in earlier_rows))}
    suite_rank = {
        (suite, layer["name"]): i
        for suite, body in load_config()["suites"].items()
        for i, layer in enumerate(body["layers"])
    }

    def rank(row: dict) -> tuple[int, int, int, int]:
        layer = (row["suite"], row["layer"])
        return (
            layer_place.get(_layer_key(row), len(order)),
            order.get(_key(row), len(order)),
            layer_rank.get(layer, len(layer_rank)),
            suite_rank.get(layer, len(suite_rank)),
        )

    new_rows = sorted(records, key=rank)
    kept = {_key(row) for row in earlier_rows if row["status"] != "SKIP"}
    new_rows = [row for row in new_rows if row["status"] != "SKIP" or _key(row) not in kept]
    earlier = _not_replaced(earlier_rows, new_rows)
    refused = _unpaired_rows(earlier + new_rows, new_rows)
    if refused and not leave_out_unpaired:
        raise UnpairedRows(
            f"{len(refused)} rows of this run have no baseline row of their run where the card's tables have one "
            "(their ratios would pair them with another run's baseline); run the baseline in the same config, or "
            "publish without them (--leave-out-unpaired). First: " + "; ".join(map(_describe, refused[:5]))
        )
    if refused:
        left_out = {_key(row) for row in refused}
        new_rows = [row for row in new_rows if _key(row) not in left_out]
        earlier = _not_replaced(earlier_rows, new_rows)  # an earlier row of a left-out key stays
    probe = results / "device" / "cuda.json"
    if not probe.exists() and (out / "device.json").exists():
        probe = out / "device.json"
    peaks = read_peaks(probe) if probe.exists() else None

    out.mkdir(parents=True, exist_ok=True)
    if (out / "plots").exists():
        shutil.rmtree(out / "plots")
    write_summary(earlier + new_rows, out, f"opbench results: {card}", peaks)
    if probe.exists() and probe != out / "device.json":
        shutil.copy(probe, out / "device.json")
    run_json = (summary or results / "summary.csv").parent / "run.json"  # the run's statistics (opbench.run_stats)
    if run_json.exists():
        shutil.copy(run_json, out / "run.json")
    # the build logs of one-per-variant artifacts (CUDA binaries: nvcc's resource report, the SASS summary), of the
    # variants the card's tables show
    shown = {(row["backend"], row["variant"]) for row in earlier + new_rows}
    build_logs = sorted(
        log for name, variant in shown if name in BACKENDS and BACKENDS[name].build_scope == "variant"
        for log in (logs / "build" / name / variant).glob("*.log")
    )  # fmt: skip
    if build_logs:
        (out / "build").mkdir(exist_ok=True)
        for log in build_logs:
            shutil.copy(log, out / "build" / f"{log.parent.name}.log")
    unpaired = [_describe(row) for row in _unpaired_rows(earlier + new_rows, earlier)]
    return Published(folder=out, unpaired=unpaired, left_out=[_describe(row) for row in refused])


def _unpaired_rows(table: list[dict], rows: list[dict]) -> list[dict]:
    """Those of `rows` (non-baseline, measured) whose table layer (in `table`) has baseline rows, none of their run."""
    baseline_runs: dict[tuple, set[str]] = defaultdict(set)
    for row in table:
        if row["status"] != "SKIP" and baseline_class(row):
            baseline_runs[_layer_key(row)].add(run_key(row))
    return [
        row for row in rows
        if row["status"] != "SKIP" and not baseline_class(row)
        and baseline_runs.get(_layer_key(row)) and run_key(row) not in baseline_runs[_layer_key(row)]
    ]  # fmt: skip


def _describe(row: dict) -> str:
    return (
        f"{row['backend']}:{row['variant']} {row['suite']}/{row['layer']} batch {row['batch']} {row['dtype']} "
        f"{row['layout']} (run {run_key(row)})"
    )


def _layer_key(row: dict) -> tuple:
    return (*(str(row[k]) for k in GROUP_KEYS), str(row["layer"]))


def _key(row: dict) -> tuple:
    return tuple(str(row[k]) for k in ("op", "suite", "layer", "batch", "dtype", "layout", "backend", "variant"))


def _not_replaced(earlier_rows: list[dict], new_rows: list[dict]) -> list[dict]:
    """The card's earlier rows that no new row replaces (same key)."""
    measured = {_key(row) for row in new_rows}
    return [row for row in earlier_rows if _key(row) not in measured]


def _summary_order(summary: Path) -> tuple[dict[tuple, int], dict[tuple, int]]:
    """Each row's place in the run's summary, and each table layer's: its earliest row's, so that a layer keeps its
    place where its first row there is not published (the summary lists a series' layers before the next series')."""
    if not summary.exists():
        return {}, {}
    order: dict[tuple, int] = {}
    layer_place: dict[tuple, int] = {}
    with open(summary) as f:
        for i, row in enumerate(csv.DictReader(f)):
            order[_key(row)] = i
            layer_place.setdefault(_layer_key(row), i)
    return order, layer_place
