"""`opbench bench`: the README's main command. Runs the matrix with Snakemake, keeps going past failures,
always leaves a summary (failed jobs as FAIL rows) and the HTML report, and exits non-zero on any failure."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opbench import footprint, hardware, paths, provenance, run_stats, worker_client
from opbench.config import ConfigError, load

REPO = Path(__file__).resolve().parent.parent


def machine_dir(config: dict[str, Any]) -> Path:
    """results/<machine>: where the (validated) config's run puts its records, outputs and logs."""
    return Path(f"results/{hardware.machine_name(config['machine'], config['gpu'])}")


def results_dir(configfile: Path | None, machine: Path) -> Path:
    """Where the run's summary and report go, as the workflow names it (opbench.paths.summary_dir): under
    `machine` (machine_dir), one folder per --configfile."""
    try:
        return Path(paths.summary_dir(str(machine), [str(configfile)] if configfile is not None else []))
    except ValueError as error:
        raise ConfigError(str(error)) from None


RETIME_RULES = ("benchmark", "benchmark_gpu")  # workflow/rules/run.smk's timing rules


class Interrupted(Exception):
    """The user interrupted a Snakemake run (Ctrl-C); it has exited, its lock released."""


def _snakemake(args: list[str]) -> int:
    """Run Snakemake and return its exit status. On Ctrl-C, Snakemake (in our process group) gets the SIGINT too:
    wait for it to cancel its jobs and release its lock, never kill it (subprocess.run would, after 0.25 s, and leave
    the lock behind for the next run), then raise Interrupted."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    print("+", " ".join(cmd), flush=True)
    interrupted = False
    with subprocess.Popen(cmd, cwd=REPO) as process:
        while True:
            try:
                status = process.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
    if interrupted:
        raise Interrupted
    return status


def bench(
    *, configfile: Path | None, cores: str, snakemake_args: list[str], retime: bool = False, check_disk: bool = True
) -> int:
    """Run the matrix, summarize and report; exit status 1 on any failure, 130 when interrupted (the finished jobs
    are kept: the same command resumes). `check_disk`: first make sure the files still to be written fit
    (opbench.footprint; DiskSpaceError where they do not). A ConfigError, naming the file and key, where the config
    is invalid."""
    config = load(*([configfile] if configfile is not None else []))
    if check_disk:
        footprint.check(config, hardware.devices(config["gpu"]), REPO)
    try:
        return _bench(config=config, configfile=configfile, cores=cores, snakemake_args=snakemake_args, retime=retime)
    except Interrupted:
        print("\ninterrupted: finished jobs are kept; the same command resumes the run", file=sys.stderr)
        return 130


def _bench(
    *, config: dict[str, Any], configfile: Path | None, cores: str, snakemake_args: list[str], retime: bool
) -> int:
    common = ["--cores", cores, *(["--configfile", str(configfile)] if configfile else []), *snakemake_args]
    machine = machine_dir(config)
    results = results_dir(configfile, machine)
    os.environ[provenance.RUN_ID_ENV] = provenance.new_run_id()  # one run id for all the Snakemake calls below
    started = time.time()
    # --retime: every benchmark job of the matrix reruns (and the records after them), in this call only
    status = _snakemake([*common, "--keep-going", *(["--forcerun", *RETIME_RULES] if retime else [])])
    partial: list[str] = []
    if status != 0:
        # Some jobs failed: summarize what exists, the rest as FAIL rows pointing at their logs.
        partial = ["--config", "summary_allow_missing=true"]
        _snakemake([*common, *partial, "--forcerun", "summary", "--", "summary"])
    _snakemake([*common, *partial, "--report", str(results / "report.html")])
    worker_client.shutdown()  # this GPU's worker, if the run started one (it would exit when idle anyway)
    _write_run_stats(machine, results, started)

    summary = REPO / results / "summary.csv"
    if not summary.exists() or (status != 0 and summary.stat().st_mtime < started):
        # (an up-to-date tree rewrites nothing: only after a failed run is an older summary another run's)
        print(f"this run wrote no summary ({summary}); see the Snakemake log above", file=sys.stderr)
        return 1
    with open(summary) as f:
        rows = list(csv.DictReader(f))
    failed = [r for r in rows if r["status"] == "FAIL"]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    print(f"\n{results}/summary.md: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP")
    print(f"{results}/report.html, {results}/summary.csv, {results}/plots/")
    for row in failed:
        print(f"FAIL {row['backend']}:{row['variant']} {row['op']} {row['shape']} {row['dtype']} {row['layout']}: "
              f"{row['reason']}", file=sys.stderr)  # fmt: skip
    return 1 if status != 0 or failed else 0


def _write_run_stats(machine: Path, results: Path, started: float) -> None:
    """<results>/run.json, beside the summary: the run's wall time, its time inside timed samples, its jobs by rule,
    each GPU point's overhead and its run and benchmark jobs' phases (opbench.run_stats)."""
    from opbench.backends import BACKENDS

    stats = run_stats.collect(
        results=REPO / machine, logs=REPO / "results" / "logs", started=started, wall_s=time.time() - started,
        run_id=os.environ[provenance.RUN_ID_ENV], devices={name: b.device for name, b in BACKENDS.items()},
    )  # fmt: skip
    run_stats.write(stats, REPO / results / "run.json")
    overhead = stats["gpu_point_overhead_s"]
    if overhead:
        print(f"{results}/run.json: {stats['gpu_points_timed']} GPU points in {stats['wall_s']:.0f} s, "
              f"{stats['gpu_timed_s']:.0f} s inside timed samples; per point beyond them: median "
              f"{overhead['median']:.3f} s (p90 {overhead['p90']:.3f} s)")  # fmt: skip
