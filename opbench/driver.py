"""`opbench bench`: the README's main command. Runs the matrix with Snakemake, keeps going past failures,
always leaves a summary (failed jobs as FAIL rows) and the HTML report, and exits non-zero on any failure."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from opbench import hardware
from opbench.config import load

REPO = Path(__file__).resolve().parent.parent


def results_dir(configfile: Path | None) -> Path:
    """results/<machine>/ as the workflow will name it: config.yaml, updated by --configfile as Snakemake does
    (a ConfigError, naming the file and key, where the config is invalid)."""
    config = load(*([configfile] if configfile is not None else []))
    return Path("results") / hardware.machine_name(config["machine"], config["gpu"])


def _snakemake(args: list[str]) -> int:
    cmd = [sys.executable, "-m", "snakemake", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


def bench(*, configfile: Path | None, cores: str, snakemake_args: list[str]) -> int:
    common = ["--cores", cores, *(["--configfile", str(configfile)] if configfile else []), *snakemake_args]
    results = results_dir(configfile)
    status = _snakemake([*common, "--keep-going"])
    partial: list[str] = []
    if status != 0:
        # Some jobs failed: summarize what exists, the rest as FAIL rows pointing at their logs.
        partial = ["--config", "summary_allow_missing=true"]
        _snakemake([*common, *partial, "--forcerun", "summary", "--", "summary"])
    _snakemake([*common, *partial, "--report", str(results / "report.html")])

    summary = REPO / results / "summary.csv"
    if not summary.exists():
        print(f"no summary was written ({summary}); see the Snakemake log above", file=sys.stderr)
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
