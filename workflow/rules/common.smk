# Config validation, the expanded matrix, wildcard constraints and input functions. Rule files hold only rules.
# Nothing here names an op or a backend: what a point needs comes from its op (opbench/ops/<op>/) and its backend
# (opbench/backends/), through the registries.
import functools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))  # the opbench package beside the Snakefile

from snakemake.exceptions import WorkflowError

from opbench import hardware, paths, provenance, worker_client
from opbench.backends import BACKENDS, availability, get_backend
from opbench.codedeps import module_files
from opbench.config import ConfigError, config_hash, validate
from opbench.peaks import PROBED_DEVICES
from opbench.dtypes import get_dtype
from opbench.matrix import expand, make_problem, problem_seed, skip_reasons
from opbench.ops import form_pattern, get_op, layout_pattern, shape_pattern
from opbench.plan import record_plan

# The run's id, recorded with every timing its jobs take (ratios pair rows of one run only): `opbench bench` sets it
# for all its Snakemake calls; a direct Snakemake call gets one here. `envvars` passes it on to cluster jobs.
os.environ.setdefault(provenance.RUN_ID_ENV, provenance.new_run_id())


envvars:
    provenance.RUN_ID_ENV,


try:
    CFG = validate({k: v for k, v in config.items() if k != "summary_allow_missing"})
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

PY = sys.executable
MACHINE = hardware.machine_name(CFG["machine"], CFG["gpu"])
RESULTS = f"results/{MACHINE}"
try:
    SUMMARY_DIR = paths.summary_dir(RESULTS, [str(f) for f in workflow.overwrite_configfiles or []])
except ValueError as error:
    raise WorkflowError(str(error)) from None
PROBLEMS = "results/problems"
CONFIG_HASH = config_hash(CFG)
DEVICES = hardware.devices(CFG["gpu"])
POINTS = expand(CFG)
AVAILABILITY = {name: availability(get_backend(name), DEVICES) for name in CFG["backends"]}
# Points with no job here (the backend does not implement them, or cannot build them here): SKIP rows with the reason.
SKIPPED = skip_reasons(POINTS, AVAILABILITY)
POINTS_BY_RECORD = {p.record_path: p for p in POINTS}
BENCH = CFG["benchmark"]
# A run's output: kept for later re-verification, or deleted once verified (temp) where the config says so.
RUN_OUTPUT = f"{RESULTS}/runs/{paths.OUTPUT}" if CFG["keep_run_outputs"] else temp(f"{RESULTS}/runs/{paths.OUTPUT}")
# The GPU worker's settings reach GPU jobs through the environment (`envvars` passes them to cluster jobs), not
# through params: switching the worker or its timeout reruns nothing.
os.environ[worker_client.SETTINGS_ENV] = worker_client.settings_to_env({**CFG["gpu_worker"], "logs": f"{RESULTS}/logs/worker"})
os.environ[worker_client.CODE_ENV] = worker_client.code_fingerprint()


envvars:
    worker_client.SETTINGS_ENV,
    worker_client.CODE_ENV,


def gpu_job_flag(wildcards):
    """`--gpu-job` for a GPU backend's run and benchmark jobs: they go through the GPU worker where it is on."""
    return "--gpu-job" if get_backend(wildcards.backend).device == "cuda" else ""


def backends_where(predicate):
    """The registered backends a predicate holds for, as a wildcard constraint."""
    return "|".join(name for name, backend in BACKENDS.items() if predicate(backend)) or "(?!)"


# Rules are split by the device their backend needs, so that only GPU jobs ask the scheduler for a GPU.
GPU_BACKENDS = backends_where(lambda b: b.device == "cuda")
CPU_BACKENDS = backends_where(lambda b: b.device != "cuda")
VARIANT_BUILT = backends_where(lambda b: b.build_scope == "variant")
PROBLEM_BUILT = backends_where(lambda b: b.build_scope == "problem")


wildcard_constraints:
    op=r"[a-z][a-z0-9_]*",
    layout=layout_pattern(),
    dtype=r"[a-z0-9_]+",
    shape=shape_pattern(),
    backend=r"[a-z][a-z0-9-]*",
    variant=r"[A-Za-z0-9][A-Za-z0-9_.]*",
    suite=r"[A-Za-z0-9][A-Za-z0-9_.]*",
    layer=r"[A-Za-z0-9][A-Za-z0-9_.]*",
    form=form_pattern(),


def point_of(wildcards):
    return POINTS_BY_RECORD[paths.RECORD.format(**dict(wildcards.items()))]


def problem_of(wildcards):
    """The problem a job's wildcards name."""
    return make_problem(op=wildcards.op, shape=wildcards.shape, dtype=wildcards.dtype, layout=wildcards.layout)


def settings_of(wildcards):
    return CFG["backends"][wildcards.backend]


def op_code(stage):
    """Input function: the files whose code decides an op's `stage` jobs (editing one reruns just those)."""
    return lambda wildcards: [str(p) for p in get_op(wildcards.op).code_files(stage)]


def backend_code(*modules):
    """Input function: the backend's code and the named shared modules' (editing one reruns its jobs only)."""
    shared = module_files(*modules) if modules else []
    return lambda wildcards: sorted({str(p) for p in [*get_backend(wildcards.backend).code_files(), *shared]})


def seed_of(wildcards):
    return problem_seed(CFG["seed"], wildcards.op, wildcards.shape, wildcards.dtype)


def build_target(wildcards):
    """(backend, settings, variant, op, problem or None) of a build job."""
    problem = problem_of(wildcards) if "shape" in wildcards.keys() else None
    return get_backend(wildcards.backend), settings_of(wildcards), wildcards.variant, wildcards.op, problem


def build_inputs(wildcards):
    backend, settings, variant, op, problem = build_target(wildcards)
    return backend.build_inputs(settings, variant, op, problem)


def build_params(wildcards):
    """The backend's build_params as JSON. A function of the wildcards only (not of `output`: Snakemake would then
    evaluate it only when the job runs, and a changed parameter would not rebuild)."""
    backend, settings, variant, op, problem = build_target(wildcards)
    artifact = Path(paths.artifact_path(backend.build_scope, **dict(wildcards.items())))
    return json.dumps(backend.build_params(settings, variant, op, problem, artifact), sort_keys=True)


def artifact_of(wildcards):
    """What a run needs built first (opbench.paths.artifact_path), or nothing."""
    return paths.artifact_path(get_backend(wildcards.backend).build_scope, **dict(wildcards.items())) or []


def job_options(wildcards):
    """The backend's options of its run and benchmark jobs, as JSON."""
    options = get_backend(wildcards.backend).job_options(settings_of(wildcards), wildcards.variant, problem_of(wildcards))
    return json.dumps(options, sort_keys=True)


def precision_of(wildcards):
    """The row's precision class: its tolerance key (a TF32 variant of f32 is `tf32`)."""
    return get_backend(wildcards.backend).tolerance_key(get_dtype(wildcards.dtype), wildcards.variant)


def tolerance_of(wildcards):
    return CFG["tolerances"][precision_of(wildcards)]


def plan_of(wildcards):
    """The point's record plan (the record rule asks for it twice: its inputs and its parameter)."""
    return _record_plan(point_of(wildcards))


@functools.cache
def _record_plan(point):
    return record_plan(CFG, point, results=RESULTS, available=AVAILABILITY[point.backend])


def record_paths():
    """Records the summary reads: every point with a job; after a failed run, only those that exist."""
    records = [f"{RESULTS}/records/{p.record_path}" for p in POINTS if p not in SKIPPED]
    if config.get("summary_allow_missing"):
        records = [path for path in records if Path(path).exists()]
    return records


def summary_outputs():
    return [f"{SUMMARY_DIR}/summary.md", f"{SUMMARY_DIR}/summary.csv", f"{SUMMARY_DIR}/plots"]


def device_probes():
    """One probe job per probed device that rows run on here: where the benchmarks' GPU jobs land."""
    return [f"{RESULTS}/device/{device}.json" for device in PROBED_DEVICES if device in DEVICES]
