"""Every published record is reproduced by today's code from the same inputs: its point comes out of the expansion
of one of the shipped configs, and the record job, given that point's record plan, the row's own verdict and timing
(verify.json, bench.json as the run wrote them) and the run's device probe (its peaks), writes the same fields.
Left out: the provenance of the machine and moment that made the record (commit, host, time stamp, tool versions).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from opbench.backends import Availability, get_backend
from opbench.config import load
from opbench.dtypes import get_dtype
from opbench.jobs import record
from opbench.matrix import expand, skip_reasons
from opbench.plan import RecordPlan, record_plan
from opbench.records import FIELDS, read_record, read_summary

REPO = Path(__file__).resolve().parent.parent
# every published folder: the cards' and their check runs' (gpu-check/, gpu-cudnn/ and its run1/)
CARDS = sorted(p.parent for p in (REPO / "results" / "published").rglob("summary.csv"))
MACHINE_PROVENANCE = {"commit", "host", "timestamp", "iree_compile", "iree_runtime", "nvcc", "cuda_driver"}
# Rows whose variant's config (IREE `tuned`'s tuning rules and specs) was edited after their run: their config hash
# and flags are those of the config they ran with. Every other field is still reproduced.
EDITED_SINCE = {("iree-cuda", "tuned", "1c19f79b60eef2ef39d4b4a8d5eb0bcad4f67a12"): 46,
                ("iree-cuda", "tuned", "9f82ecd615705d3f479747f58b6199d745d3b5cd"): 14}  # fmt: skip


@pytest.fixture(scope="module")
def plans() -> dict[str, list[RecordPlan]]:
    """Record path -> the plans of that point in every shipped config (config.yaml and each of config/)."""
    ran = Availability(runs=True, compiles=True)
    found: dict[str, list[RecordPlan]] = {}
    for configfile in [None, *sorted((REPO / "config").glob("*.yaml"))]:
        config = load(*([configfile] if configfile else []), overrides={"gpu": True})
        points = expand(config)
        # what a backend does not implement, not what this machine lacks (the cuDNN frontend, say)
        reasons = skip_reasons(points, {name: ran for name in config["backends"]})
        unsupported = {p for p, reason in reasons.items() if reason.startswith("not supported: ")}
        for point in points:
            if point not in unsupported:
                plan = record_plan(config, point, results="run", available=ran)
                found.setdefault(point.record_path, []).append(plan)
    return found


def run_files(row: dict, folder: Path) -> tuple[Path, Path]:
    """The verify.json and bench.json that made the row, rebuilt from its fields."""
    verdict = {k: row[k] for k in ("status", "reason", "relerr", "tolerance")}
    verdict["reason"] = verdict["reason"] or ""
    if row["elem_ratio"] is not None:  # the element-wise verdict (rows since 2026-12-06)
        verdict["elem_ratio"] = row["elem_ratio"]
        verdict["worst_element"] = [int(i) for i in row["worst_element"].split(",")]
    stats = {k: row[k] for k in ("median_ms", "min_ms", "p90_ms", "cv", "samples")}
    bench = {"stats": stats, "method": row["timing_method"], "device": row["device"]}
    bench |= {k: row[k] for k in ("torch", "cudnn", "run_id", "samples_ms", "chosen") if row[k] is not None}
    if row["device_ms"] is not None:
        parts = [re.fullmatch(r"(\S+) (\S+)", part) for part in row["dispatch_ms"].split(" + ")]
        per_dispatch = {m[1]: {"median_ms": float(m[2])} for m in parts if m}
        bench["dispatches"] = {"total_ms": row["device_ms"], "per_dispatch": per_dispatch}
    verification, timing = folder / "verify.json", folder / "bench.json"
    verification.write_text(json.dumps(verdict))
    timing.write_text(json.dumps(bench))
    return verification, timing


def run_probes(rows: list[dict], folder: Path) -> dict[str, Path]:
    """Commit -> the device probe of the run at that commit, rebuilt from its rows (a card's device.json is its latest
    run's; each run's records used their own): each row's rate over its fraction of peak is that run's peak."""
    peaks: dict[str, dict[str, float]] = {}
    for row in rows:
        run = peaks.setdefault(row["commit"], {})
        precision = get_backend(row["backend"]).tolerance_key(get_dtype(row["dtype"]), row["variant"])
        for key, rate, fraction in ((precision, "tflops", "peak_tflops_frac"), ("copy_gbps", "gbps", "peak_gbps_frac")):
            if row[fraction]:
                peak = row[rate] / row[fraction]
                assert math.isclose(run.setdefault(key, peak), peak, rel_tol=1e-9), (row["commit"], key)
    probes = {}
    for commit, run in peaks.items():
        probes[commit] = folder / f"probe-{commit}.json"
        probes[commit].write_text(json.dumps({"peaks": run}))
    return probes


def same(published: object, made: object) -> bool:
    """Equal as summary.csv holds them (an empty cell is None or "")."""
    if published is None:
        return made in (None, "")
    if isinstance(published, float) and isinstance(made, float):
        return math.isclose(published, made, rel_tol=1e-12) or (math.isnan(published) and math.isnan(made))
    return published == made


@pytest.mark.parametrize("card", CARDS, ids=lambda p: str(p.relative_to(REPO / "results" / "published")))
def test_published_records_are_reproduced(card: Path, plans: dict[str, list[RecordPlan]], tmp_path: Path) -> None:
    rows = read_summary(card / "summary.csv")
    probes = run_probes(rows, tmp_path)
    compared = sorted(set(FIELDS) - MACHINE_PROVENANCE)
    edited: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        path = "{op}/{suite}/{layer}/{backend}/{variant}/{layout}/{dtype}/{shape}.json".format(**row)
        assert path in plans, f"{card.name} row {i}: no shipped config has the point {path}"
        candidates = plans[path]
        plan = next((p for p in candidates if p.fields["config_hash"] == row["config_hash"]), None)
        fields = compared
        if plan is None:  # its config was edited since: the plan of today's config, without what the edit decides
            plan = candidates[0]
            key = (row["backend"], row["variant"], row["commit"])
            edited[key] = edited.get(key, 0) + 1
            fields = [f for f in compared if f not in ("config_hash", "flags", "program_form")]
        if row["status"] == "SKIP":
            plan = replace(plan, verification=None, timing=None, probe=None, artifact=None, skip_reason=row["reason"])
        else:
            verification, timing = run_files(row, tmp_path)
            plan = replace(plan, verification=str(verification), timing=str(timing), artifact=None,
                           probe=str(probes[row["commit"]]) if plan.probe else None)  # fmt: skip
        out = tmp_path / "record.json"
        record(plan=plan, out=out)
        made = read_record(out)
        if row["program_form"] is None:  # published before rows named their program form
            made["program_form"] = None
        differ = {f: (row[f], made[f]) for f in fields if not same(row[f], made[f])}
        assert not differ, f"{card.name} row {i} ({path}): {differ}"
    assert edited == {k: v for k, v in EDITED_SINCE.items() if k in edited}
    assert sum(edited.values()) == sum(v for (b, var, commit), v in EDITED_SINCE.items() if commit in {
        r["commit"] for r in rows})  # fmt: skip
