"""Where the workflow's files are, as patterns of the points' fields: the rules' output patterns and the paths the
package computes for a point are these same strings."""

from __future__ import annotations

from pathlib import Path

# The MLIR program of a problem in one program form.
MLIR = "compiled/mlir/{op}/{layout}/{dtype}/{shape}.{form}.mlir"
# A backend's artifact, by its build_scope: one per (variant, op), e.g. a CUDA binary; one folder per problem, e.g.
# an IREE module with what was built beside it.
VARIANT_ARTIFACT = "compiled/{backend}/{variant}/{op}_{variant}"
PROBLEM_ARTIFACT = "compiled/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}"
# A problem's inputs, float64 reference and its elements' product scale, under results/problems/.
PROBLEM_DIR = "{op}/{layout}/{dtype}/{shape}"
INPUTS = PROBLEM_DIR + "/inputs.npz"
REFERENCE = PROBLEM_DIR + "/reference.npy"
PRODUCT_SCALE = PROBLEM_DIR + "/product_scale.npz"
# One backend variant's output, verdict and timing of a problem, under results/<machine>/runs/.
RUN_DIR = "{backend}/{variant}/" + PROBLEM_DIR
OUTPUT = RUN_DIR + "/output.npy"
VERDICT = RUN_DIR + "/verify.json"
TIMING = RUN_DIR + "/bench.json"
# A point's record, under results/<machine>/records/.
RECORD = "{op}/{suite}/{layer}/{backend}/{variant}/{layout}/{dtype}/{shape}.json"


# Logs: of the problem's jobs, under results/logs/; of a point's jobs, under results/<machine>/logs/.
MLIR_LOG = "results/logs/generate_mlir/{op}/{layout}/{dtype}/{shape}.{form}.log"
BUILD_LOG = {
    "variant": "results/logs/build/{backend}/{variant}/{op}.log",
    "problem": "results/logs/build/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.log",
}
RECORD_LOG = "logs/record/" + RECORD.removesuffix(".json") + ".log"  # under results/<machine>/


# A run's tables, plots and report: results/<machine>/ for config.yaml alone; results/<machine>/<stem>/ for a run
# with --configfile <stem>.yaml (stems joined by `+` for several), so that one config's run never overwrites
# another's summary. Records are per point and shared: a point two configs have in common is measured once.
RESERVED_SUMMARY_NAMES = frozenset({"records", "runs", "logs", "device", "plots"})


def summary_dir(results: str, configfiles: list[str] | tuple[str, ...]) -> str:
    """Where a run's summary goes (`results`: results/<machine>; `configfiles`: the --configfile arguments)."""
    if not configfiles:
        return results
    name = "+".join(Path(f).stem for f in configfiles)
    if name in RESERVED_SUMMARY_NAMES:
        raise ValueError(f"--configfile {configfiles[-1]}: a config may not be named {name!r} (results/<machine>/"
                         f"{name}/ holds the run's {name}); rename the file")  # fmt: skip
    return f"{results}/{name}"


def problem_log(rule: str) -> str:
    """The log pattern of a problem's job (make_inputs, reference)."""
    return f"results/logs/{rule}/{PROBLEM_DIR}.log"


def run_log(rule: str) -> str:
    """The log pattern, under results/<machine>/, of a point's run, verify or benchmark job."""
    return f"logs/{rule}/{RUN_DIR}.log"


def bench_file(log: str) -> str:
    """Where Snakemake's `benchmark:` file of a job goes: beside its log (opbench.run_stats reads them)."""
    return log.removesuffix(".log") + ".bench.tsv"


def failed_job_log(results: str, problems: str, build_scope: str, runs: bool, **fields: str) -> str:
    """The log of the first job of a point (its fields by name) that left no output: where a row without a record
    failed. `results`: results/<machine>; `problems`: where inputs and references are; `runs`: whether the point
    runs here (else its only job before the record is its build)."""
    stages: list[tuple[tuple[str, ...], str]] = []  # (any of these files shows the job finished, the job's log)
    if runs:
        stages += [
            ((f"{problems}/{INPUTS.format(**fields)}",), problem_log("make_inputs").format(**fields)),
            ((f"{problems}/{REFERENCE.format(**fields)}",), problem_log("reference").format(**fields)),
        ]
    artifact = artifact_path(build_scope, **fields)
    if artifact is not None:
        stages.append(((artifact,), BUILD_LOG[build_scope].format(**fields)))
    if runs:
        # a run's output may be temp (keep_run_outputs: false): its verdict shows that the run finished too
        finished = {"run": (OUTPUT, VERDICT), "verify": (VERDICT,), "benchmark": (TIMING,)}
        stages += [
            (
                tuple(f"{results}/runs/{file.format(**fields)}" for file in files),
                f"{results}/" + run_log(rule).format(**fields),
            )
            for rule, files in finished.items()
        ]
    for files, log in stages:
        if not any(Path(file).exists() for file in files):
            return log
    return f"{results}/" + RECORD_LOG.format(**fields)


def artifact_path(build_scope: str, **fields: str) -> str | None:
    """The artifact of a point (its fields by name) for a backend of this build_scope; None if it builds nothing."""
    if build_scope == "variant":
        return VARIANT_ARTIFACT.format(**fields)
    if build_scope == "problem":
        return PROBLEM_ARTIFACT.format(**fields)
    return None
