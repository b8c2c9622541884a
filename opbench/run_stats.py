"""A run's own statistics (`run.json` beside its summary): how long it took, how much of that was measurement, what
each point's GPU jobs cost beyond their timed samples, and where a point's run and benchmark jobs spent their wall
time (`job_phases_s`). Read from what the run left: Snakemake's benchmark files of its jobs (`*.bench.tsv`, newer than
the run's start), the phases line at the end of each run and benchmark job's log beside them (opbench.phases) and
the timing records carrying its run id."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from opbench import paths, phases

BENCH_SUFFIX = ".bench.tsv"
POINT_RULES = ("run", "benchmark")  # a point's jobs on its device (verify and record are CPU jobs)


def job_seconds(tsv: Path) -> float:
    """The wall seconds of one job (the `s` column of its Snakemake benchmark file)."""
    header, values = tsv.read_text().splitlines()[:2]
    return float(dict(zip(header.split("\t"), values.split("\t"), strict=False))["s"])


def timed_seconds(timing: dict[str, Any]) -> float:
    """Seconds inside the timed samples of a timing record (`samples_ms` are per call): each sample is `inner` calls
    (the CUDA-graph timings), or its own number of iterations (iree-benchmark-module); one call where the backend
    does not say (then a lower bound)."""
    samples = timing["samples_ms"]
    calls = timing.get("iterations_per_sample") or [timing.get("inner", 1)] * len(samples)
    return sum(ms * n for ms, n in zip(samples, calls, strict=True)) / 1000.0


def collect(
    *, results: Path, logs: Path, started: float, wall_s: float, run_id: str, devices: dict[str, str]
) -> dict[str, Any]:
    """The run's statistics. `results`: results/<machine>; `logs`: results/logs (the problems' and builds' jobs);
    `devices`: backend name -> device ("cuda", "cpu", ...), to tell GPU points from the others."""
    rules: dict[str, dict[str, float]] = {}
    point_jobs: dict[str, dict[str, float]] = {}
    job_phases: dict[str, dict[str, list[tuple[float, dict[str, float]]]]] = {}  # rule -> backend -> (wall, spans)
    for root in (logs, results / "logs"):
        for tsv in root.rglob(f"*{BENCH_SUFFIX}"):
            if tsv.stat().st_mtime < started:
                continue  # an earlier run's job
            relative = tsv.relative_to(root)
            rule, seconds = relative.parts[0], job_seconds(tsv)
            totals = rules.setdefault(rule, {"jobs": 0, "seconds": 0.0})
            totals["jobs"] += 1
            totals["seconds"] += seconds
            if root != logs and rule in POINT_RULES:
                point = str(relative.relative_to(rule)).removesuffix(BENCH_SUFFIX)
                point_jobs.setdefault(point, {})[rule] = seconds
                spans = _logged_phases(tsv)
                if spans is not None:
                    job_phases.setdefault(rule, {}).setdefault(point.split("/", 1)[0], []).append((seconds, spans))
    timed: dict[str, float] = {}
    for bench in (results / "runs").rglob(Path(paths.TIMING).name):
        timing = json.loads(bench.read_text())
        if timing.get("run_id") == run_id:
            timed[str(bench.parent.relative_to(results / "runs"))] = timed_seconds(timing)
    gpu = [p for p in timed if devices.get(p.split("/", 1)[0]) == "cuda"]
    # A GPU point's overhead: its run and benchmark jobs' wall seconds minus its seconds inside timed samples.
    overheads = sorted(
        sum(point_jobs[p].values()) - timed[p] for p in gpu if set(point_jobs.get(p, {})) == set(POINT_RULES)
    )
    timed_gpu = sum(timed[p] for p in gpu)
    return {
        "run_id": run_id,
        "wall_s": round(wall_s, 3),
        "points_timed": len(timed),
        "gpu_points_timed": len(gpu),
        "jobs": sum(int(t["jobs"]) for t in rules.values()),
        "timed_s": round(sum(timed.values()), 3),
        "gpu_timed_s": round(timed_gpu, 3),
        "gpu_point_overhead_s": _spread(overheads),
        "wall_per_gpu_point_s": round(wall_s / len(gpu), 3) if gpu else None,
        "rules": {
            name: {"jobs": int(t["jobs"]), "seconds": round(t["seconds"], 3)} for name, t in sorted(rules.items())
        },
        "job_phases_s": {
            rule: {backend: phase_table(jobs) for backend, jobs in sorted(by_backend.items())}
            for rule, by_backend in sorted(job_phases.items())
        },
    }


def _logged_phases(tsv: Path) -> dict[str, float] | None:
    """The phases a job's log (beside its benchmark file) ends with; None for a log without them (older code)."""
    log = tsv.with_name(tsv.name.removesuffix(BENCH_SUFFIX) + ".log")
    try:
        return phases.from_log(log.read_text(errors="replace"))
    except FileNotFoundError:
        return None


OTHER = "(other)"  # the part of a span that its inner spans do not cover


def _with_other(spans: dict[str, float]) -> dict[str, float]:
    """A job's spans with, for each span that has inner ones, `<span>/(other)`: its seconds outside them (e.g.
    `backend/(other)`: a PyTorch backend's operands moved to the device and their copies, outside time_graph)."""
    inner: dict[str, float] = {}
    for name, seconds in spans.items():
        if "/" in name:
            parent = name.rsplit("/", 1)[0]
            inner[parent] = inner.get(parent, 0.0) + seconds
    return {**spans, **{f"{parent}/{OTHER}": spans.get(parent, 0.0) - total for parent, total in inner.items()}}


def phase_table(jobs: list[tuple[float, dict[str, float]]]) -> dict[str, Any]:
    """One rule's jobs of one backend, each (wall seconds, its phases): the jobs' wall, each phase's median and total
    over the jobs (a job without the phase counts 0 in the median; `jobs`: how many had it), and `unaccounted`, the
    wall minus the outermost phases (Snakemake's job start and shell, the interpreter's exit, gaps between phases)."""
    rows = [_with_other(spans) for _, spans in jobs]
    seen = {name: i for i, name in enumerate(dict.fromkeys(name for row in rows for name in row))}  # first recorded
    tops = {top: i for i, top in enumerate(dict.fromkeys(name.split("/", 1)[0] for name in seen))}
    names = sorted(seen, key=lambda n: (tops[n.split("/", 1)[0]], "/" in n, seen[n]))  # each span, then its inner
    walls = [wall for wall, _ in jobs]
    unaccounted = [wall - sum(s for n, s in row.items() if "/" not in n) for wall, row in zip(walls, rows, strict=True)]
    return {
        "jobs": len(jobs),
        "wall": _median_total(walls),
        "phases": {
            name: {**_median_total([row.get(name, 0.0) for row in rows]), "jobs": sum(name in row for row in rows)}
            for name in names
        },
        "unaccounted": _median_total(unaccounted),
    }


def _median_total(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "total": round(sum(values), 3)}


def _spread(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {
        "points": len(values),
        "median": round(statistics.median(values), 4),
        "p10": round(values[len(values) // 10], 4),
        "p90": round(values[min(len(values) - 1, len(values) * 9 // 10)], 4),
        "total": round(sum(values), 3),
    }


def write(stats: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stats, indent=1) + "\n")
