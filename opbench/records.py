"""The result record: one JSON object per job and one row of summary.csv, with one stable set of fields.

docs/records.md documents every field; add fields at the end, never rename or reorder them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

FIELDS: tuple[str, ...] = (
    # what was measured
    "op", "suite", "layer", "count", "shape", "batch", "dtype", "layout", "backend", "variant", "flags",
    # the verdict
    "status", "reason", "relerr", "tolerance",
    # timing
    "median_ms", "min_ms", "p90_ms", "cv", "samples", "timing_method",
    # throughput
    "tflops", "gbps", "peak_tflops_frac", "peak_gbps_frac",
    # provenance
    "device", "seed", "commit", "config_hash", "iree_compile", "iree_runtime", "nvcc", "cuda_driver",
    "torch", "cudnn", "host", "timestamp",
    # device time of an IREE module's dispatches (host overhead excluded), beside the end-to-end time above
    "device_ms", "device_tflops", "dispatch_ms",
    # the MLIR program an IREE row compiled (opbench.ops.conv2d.mlir.ProgramForm: `plain`, or split-K / reordered)
    "program_form",
    # the element-wise verdict: the worst element's |out - ref| over what rounding explains (> 1 fails), and where
    "elem_ratio", "worst_element",
    # the run whose timing this is (opbench.provenance.run_id): ratios and winners pair rows of one run only
    "run_id",
    # every timed sample (ms), for `opbench compare`'s noise-aware verdict
    "samples_ms",
    # what the backend chose when the job ran, where it chooses (cuDNN frontend: the fastest verified engine)
    "chosen",
)  # fmt: skip

STATUSES = ("PASS", "FAIL", "SKIP")
# The fields of the first record format: every record file holds at least these.
FIRST_FIELDS = FIELDS[: FIELDS.index("timestamp") + 1]


def make_record(**fields: Any) -> dict[str, Any]:
    """A record with every field present (None where not applicable); unknown fields are an error."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise KeyError(f"unknown record fields: {sorted(unknown)}")
    if fields.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {fields.get('status')!r}")
    if fields["status"] != "PASS" and not fields.get("reason"):
        raise ValueError(f"a {fields['status']} record needs a reason")
    return {name: fields.get(name) for name in FIELDS}


def write_record(record: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")


def read_record(path: str | Path) -> dict[str, Any]:
    """A record file; one written before fields were appended (it lacks only the last ones) reads with them None,
    as read_summary reads an older summary.csv. A record lacking any other field is an error."""
    record = json.loads(Path(path).read_text())
    present = [name in record for name in FIELDS]
    written = present.index(False) if not all(present) else len(FIELDS)  # the fields it was written with
    if written < len(FIRST_FIELDS) or any(present[written:]):
        raise ValueError(f"{path}: record lacks fields {sorted(set(FIELDS) - set(record))}")
    return {name: record.get(name) for name in FIELDS}


# summary.csv columns holding numbers or lists of numbers (the rest are text); empty cells are None.
_INT_FIELDS = {"count", "batch", "samples", "seed"}
_FLOAT_FIELDS = {
    "relerr", "tolerance", "median_ms", "min_ms", "p90_ms", "cv", "tflops", "gbps", "peak_tflops_frac",
    "peak_gbps_frac", "device_ms", "device_tflops", "elem_ratio",
}  # fmt: skip
_LIST_FIELDS = {"samples_ms"}  # space-separated in the CSV


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """summary.csv: one row per record, every field, in FIELDS order."""

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        return " ".join(f"{v:.6g}" for v in value) if isinstance(value, list) else value

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: cell(row[k]) for k in FIELDS})


def read_summary(path: Path) -> list[dict[str, Any]]:
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
        if field in _LIST_FIELDS:
            return [float(v) for v in value.split()]
        return value

    # A summary written before a field was added (fields are only ever appended) lacks it: None.
    return [{field: typed(field, row.get(field, "")) for field in FIELDS} for row in rows]
