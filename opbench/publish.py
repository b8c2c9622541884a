"""`opbench publish`: copy a GPU run's results into results/published/<card>/, the tracked place for them.

Re-renders the tables and plots (roofline included) from the run's per-job records and the device probe's
measured peaks, and copies the provenance: the probe, the CUDA build logs (resource reports, SASS summaries).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from opbench.device_probe import read_peaks
from opbench.records import read_record
from opbench.report import write_summary


def publish(*, results: Path, card: str, logs: Path, out_root: Path = Path("results/published")) -> Path:
    records = [read_record(p) for p in (results / "records").rglob("*.json")]
    if not records:
        raise FileNotFoundError(f"no records under {results / 'records'}")
    order = _summary_order(results / "summary.csv")
    rows = sorted(records, key=lambda row: order.get(_key(row), len(order)))
    probe = results / "device" / "cuda.json"
    peaks = read_peaks(probe) if probe.exists() else None

    out = out_root / card
    if out.exists():
        shutil.rmtree(out)
    write_summary(rows, out, f"opbench results: {card}", peaks)
    if probe.exists():
        shutil.copy(probe, out / "device.json")
    build_logs = sorted((logs / "build_cuda").glob("*.log"))
    if build_logs:
        (out / "build").mkdir()
        for log in build_logs:
            shutil.copy(log, out / "build" / log.name)
    return out


def _key(row: dict) -> tuple:
    return tuple(str(row[k]) for k in ("op", "suite", "layer", "batch", "dtype", "layout", "backend", "variant"))


def _summary_order(summary: Path) -> dict[tuple, int]:
    if not summary.exists():
        return {}
    with open(summary) as f:
        return {_key(row): i for i, row in enumerate(csv.DictReader(f))}
