"""`opbench publish`: copy a GPU run's results into results/published/<card>/, the tracked place for them.

Re-renders the tables and plots (roofline included) from the run's per-job records and the device probe's
measured peaks, and copies the provenance: the probe, the CUDA build logs (resource reports, SASS summaries).
Rows published earlier for the card stay unless the new run has the same row (op, suite, layer, batch, dtype,
layout, backend, variant), which replaces them -- except that a new SKIP never replaces an earlier measured row.
Every row keeps its own provenance columns (commit, time stamp). `commits` restricts the run's records to those
of the given commits (prefixes): a results folder that also holds records of older runs (a reused machine, an
earlier config) then publishes only what this run measured.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from opbench.backends import BACKENDS
from opbench.peaks import read_peaks
from opbench.records import FIELDS, read_record
from opbench.report import write_summary


def publish(
    *,
    results: Path,
    card: str,
    logs: Path,
    out_root: Path = Path("results/published"),
    commits: tuple[str, ...] = (),
) -> Path:
    records = [read_record(p) for p in (results / "records").rglob("*.json")]
    if commits:
        records = [r for r in records if str(r.get("commit") or "").startswith(commits)]
    if not records:
        which = f" of commit {' or '.join(commits)}" if commits else ""
        raise FileNotFoundError(f"no records{which} under {results / 'records'}")
    out = out_root / card
    earlier_rows = read_summary(out / "summary.csv")
    order = _summary_order(results / "summary.csv")
    # Without the run's own summary (a stopped run), layers keep the order in which the card's tables list them.
    layer_rank = {key: i for i, key in enumerate(dict.fromkeys((r["suite"], r["layer"]) for r in earlier_rows))}

    def rank(row: dict) -> tuple[int, int]:
        return order.get(_key(row), len(order)), layer_rank.get((row["suite"], row["layer"]), len(layer_rank))

    new_rows = sorted(records, key=rank)
    kept = {_key(row) for row in earlier_rows if row["status"] != "SKIP"}
    new_rows = [row for row in new_rows if row["status"] != "SKIP" or _key(row) not in kept]
    measured = {_key(row) for row in new_rows}
    earlier = [row for row in earlier_rows if _key(row) not in measured]
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
    # the build logs of one-per-variant artifacts (CUDA binaries: nvcc's resource report, the SASS summary), by variant
    build_logs = sorted(
        log for name, backend in BACKENDS.items() if backend.build_scope == "variant"
        for log in (logs / "build" / name).glob("*/*.log")
    )  # fmt: skip
    if build_logs:
        (out / "build").mkdir(exist_ok=True)
        for log in build_logs:
            shutil.copy(log, out / "build" / f"{log.parent.name}.log")
    return out


# summary.csv columns holding numbers (the rest are text); empty cells are None.
_INT_FIELDS = {"count", "batch", "samples", "seed"}
_FLOAT_FIELDS = {
    "relerr", "tolerance", "median_ms", "min_ms", "p90_ms", "cv", "tflops", "gbps", "peak_tflops_frac",
    "peak_gbps_frac", "device_ms", "device_tflops",
}  # fmt: skip


def read_summary(path: Path) -> list[dict]:
    """The records of a summary.csv (as write_csv wrote them), typed back; [] if there is none."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    unknown = set(rows[0]) - set(FIELDS) if rows else set()
    if unknown:
        raise ValueError(f"{path}: unknown columns {sorted(unknown)}")

    def typed(field: str, value: str) -> object:
        if value == "":
            return None
        if field in _INT_FIELDS:
            return int(value)
        if field in _FLOAT_FIELDS:
            return float(value)
        return value

    # A summary written before a field was added (fields are only ever appended) lacks it: None.
    return [{field: typed(field, row.get(field, "")) for field in FIELDS} for row in rows]


def _key(row: dict) -> tuple:
    return tuple(str(row[k]) for k in ("op", "suite", "layer", "batch", "dtype", "layout", "backend", "variant"))


def _summary_order(summary: Path) -> dict[tuple, int]:
    if not summary.exists():
        return {}
    with open(summary) as f:
        return {_key(row): i for i, row in enumerate(csv.DictReader(f))}
