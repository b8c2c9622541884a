# Config validation, the expanded matrix, wildcard constraints and input functions. Rule files hold only rules.
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))  # the opbench package beside the Snakefile

from snakemake.exceptions import WorkflowError

from opbench import hardware
from opbench.backends import BACKENDS, availability, get_backend
from opbench.backends.cuda import build_sources, variant_archs
from opbench.backends.cutlass import build_sources as cutlass_build_sources
from opbench.backends.cutlass import cutlass_version
from opbench.backends.iree import tool as iree_tool
from opbench.backends.iree import Problem as IreeProblem
from opbench.backends.iree import program_form, tuning_spec
from opbench.mlirgen import ProgramForm
from opbench.ops import get_op
from opbench.dtypes import get_dtype
from opbench.config import ConfigError, config_hash, point_config, validate
from opbench.matrix import expand, problem_seed
from opbench.provenance import iree_compile_version, nvcc_version

try:
    CFG = validate({k: v for k, v in config.items() if k != "summary_allow_missing"})
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

PY = sys.executable
MACHINE = hardware.machine_name(CFG["machine"], CFG["gpu"])
RESULTS = f"results/{MACHINE}"
PROBLEMS = "results/problems"
CONFIG_HASH = config_hash(CFG)
DEVICES = hardware.devices(CFG["gpu"])
POINTS = expand(CFG)
AVAILABILITY = {name: availability(get_backend(name), DEVICES) for name in CFG["backends"]}
# Points with no job at all here (their device is absent and there is nothing to compile): SKIP rows.
SKIPPED = {
    p: AVAILABILITY[p.backend].reason
    for p in POINTS
    if not AVAILABILITY[p.backend].compiles
}
POINTS_BY_RECORD = {p.record_path: p for p in POINTS}
BENCH = CFG["benchmark"]
# Rules are split by the device their backend needs, so that only GPU jobs ask the scheduler for a GPU.
GPU_BACKENDS = "|".join(name for name, b in BACKENDS.items() if b.device == "cuda")
CPU_BACKENDS = "|".join(name for name, b in BACKENDS.items() if b.device != "cuda")


wildcard_constraints:
    op=r"[a-z][a-z0-9_]*",
    layout=r"[a-z]+_[a-z]+",
    dtype=r"[a-z0-9_]+",
    shape=r"n\d+_h\d+_w\d+_c\d+_k\d+_r\d+_s\d+_st[\dx]+_p[\dx]+(_d[\dx]+)?",
    backend=r"[a-z][a-z0-9-]*",
    variant=r"[A-Za-z0-9][A-Za-z0-9_.]*",
    suite=r"[A-Za-z0-9][A-Za-z0-9_.]*",
    layer=r"[A-Za-z0-9][A-Za-z0-9_.]*",


def point_of(wildcards):
    key = (
        f"{wildcards.op}/{wildcards.suite}/{wildcards.layer}/{wildcards.backend}/{wildcards.variant}/"
        f"{wildcards.layout}/{wildcards.dtype}/{wildcards.shape}.json"
    )
    return POINTS_BY_RECORD[key]


PACKAGE = Path(workflow.basedir) / "opbench"


def op_code(wildcards):
    """The package modules whose code decides an op's inputs, reference and MLIR (edits rerun their jobs)."""
    return [str(PACKAGE / "ops" / f"{wildcards.op}.py"), str(PACKAGE / "mlirgen.py")]


def seed_of(wildcards):
    return problem_seed(CFG["seed"], wildcards.op, wildcards.shape, wildcards.dtype)


def backend_settings(wildcards):
    return CFG["backends"][wildcards.backend]


def _iree_problem(wildcards):
    """What decides an IREE problem's tuning spec."""
    shape = get_op(wildcards.op).shape_from_name(wildcards.shape)
    return IreeProblem(shape=shape, dtype=wildcards.dtype, layout=wildcards.layout)


def iree_compile_flags(wildcards):
    backend = get_backend(wildcards.backend)
    return shlex.join(backend.compile_flags(backend_settings(wildcards), wildcards.variant, _iree_problem(wildcards)))


def program_form_of(wildcards):
    """The MLIR program form the problem's tuning rule asks for (`plain`: the named linalg op)."""
    return program_form(backend_settings(wildcards), wildcards.variant, _iree_problem(wildcards))


def mlir_of(wildcards):
    """The MLIR an IREE compile job builds: the problem's program in the form its tuning rule asks for."""
    return (
        f"compiled/mlir/{wildcards.op}/{wildcards.layout}/{wildcards.dtype}/{wildcards.shape}."
        f"{program_form_of(wildcards)}.mlir"
    )


def iree_tuning_spec(wildcards):
    """The problem's tuning spec, an input of its compile jobs (editing it recompiles what it applies to)."""
    spec = tuning_spec(backend_settings(wildcards), wildcards.variant, _iree_problem(wildcards))
    return [spec] if spec else []


def _iree_compiler_path():
    try:
        return iree_tool("iree-compile")
    except (FileNotFoundError, ImportError):
        return "iree-compile"


IREE_VERSION = iree_compile_version()


def iree_toolchain(wildcards):
    """The compile rule's toolchain parameter: this node's iree-compile version, or, where it has none, the
    version that built the module (so a run-only node does not ask to recompile)."""
    if IREE_VERSION is not None:
        return IREE_VERSION
    built = Path(module_path(wildcards) + ".toolchain")
    return built.read_text().strip() if built.exists() else "no iree-compile on this node"


# Where iree-compile is does not decide what it builds (its version, a parameter of the compile rule, does), so
# the path is no parameter: the same compiler reached through another path recompiles nothing.
IREE_COMPILE = _iree_compiler_path()


def host_cpu_of(wildcards):
    """llvm-cpu modules built for `host` depend on the CPU they were built on."""
    settings = backend_settings(wildcards)
    if wildcards.backend == "iree-llvm-cpu" and settings.get("target", "host") == "host":
        return hardware.cpu_model()
    return ""


def cuda_sources(wildcards):
    """The harness, the variant's file and the headers they include: the only inputs of its build."""
    return [str(p.relative_to(workflow.basedir)) for p in build_sources(wildcards.variant)]


def cuda_arch_args(wildcards):
    """The config's archs, or the ones the variant file declares (e.g. sm_90a for wgmma)."""
    archs = variant_archs(wildcards.variant, CFG["backends"]["cuda"]["archs"])
    return " ".join(f"--arch {arch}" for arch in archs)


def cuda_nvcc_flags(wildcards):
    settings = CFG["backends"]["cuda"]
    return shlex.quote(shlex.join(settings["nvcc_flags"] + settings["variants"][wildcards.variant]))


def cutlass_sources(wildcards):
    """The harness, cuda/cutlass/conv2d_fprop.cu and the project headers they include (not CUTLASS's: its
    version is a parameter of the build)."""
    return [str(p.relative_to(workflow.basedir)) for p in cutlass_build_sources()]


def cutlass_spec(wildcards):
    """The variant's config entry (arch, tile, warps, stages) as JSON: a parameter, so editing it rebuilds."""
    return json.dumps(CFG["backends"]["cutlass"]["variants"][wildcards.variant], sort_keys=True)


def cutlass_nvcc_flags(wildcards):
    return shlex.join(CFG["backends"]["cutlass"]["nvcc_flags"])


def module_path(wildcards):
    """The compile rule's .vmfb (its output pattern, filled in)."""
    return rules.compile_iree.output.vmfb.format(**dict(wildcards.items()))


def artifact_of(wildcards):
    """What a run needs built first: a .vmfb per problem for IREE, one binary per variant for our kernels."""
    backend = get_backend(wildcards.backend)
    if backend.artifact == "vmfb":
        return module_path(wildcards)
    if backend.artifact == "binary":
        build_rule = rules.build_cutlass if wildcards.backend == "cutlass" else rules.build_cuda
        return build_rule.output[0].format(variant=wildcards.variant)
    return []


def dispatch_benchmarks_of(wildcards):
    """Per-dispatch benchmark modules (device time) for the IREE GPU backends that time them, else nothing."""
    if getattr(get_backend(wildcards.backend), "times_dispatches", False):
        return rules.compile_iree_dispatches.output[0].format(**dict(wildcards.items()))
    return []


def backend_options(wildcards):
    backend = get_backend(wildcards.backend)
    options = {}
    if backend.artifact == "vmfb":
        options["driver"] = backend.driver(backend_settings(wildcards))
    if dispatch_benchmarks_of(wildcards):
        options["dispatches"] = dispatch_benchmarks_of(wildcards)
    return " ".join(f"--option {shlex.quote(f'{k}={v}')}" for k, v in options.items())


def tolerance_key_of(wildcards):
    return get_backend(wildcards.backend).tolerance_key(get_dtype(wildcards.dtype), wildcards.variant)


def tolerance_of(wildcards):
    return CFG["tolerances"][tolerance_key_of(wildcards)]


def point_config_hash(wildcards):
    return config_hash(
        point_config(
            CFG, backend=wildcards.backend, variant=wildcards.variant, suite=wildcards.suite,
            layer=wildcards.layer, tolerance_key=tolerance_key_of(wildcards),
        )
    )


def record_inputs(wildcards):
    point = point_of(wildcards)
    run_dir = f"{RESULTS}/runs/{point.run_dir}"
    # an IREE module's .toolchain names the iree-compile that built it (the row's iree_compile)
    built = {"toolchain": module_path(wildcards) + ".toolchain"} if get_backend(point.backend).artifact == "vmfb" else {}
    if AVAILABILITY[point.backend].runs:
        inputs = {"verification": f"{run_dir}/verify.json", "timing": f"{run_dir}/bench.json", **built}
        if get_backend(point.backend).device == "cuda":
            inputs["probe"] = f"{RESULTS}/device/cuda.json"  # the card's measured peaks
        return inputs
    return {"artifact": artifact_of(wildcards), **built}


def record_args(wildcards, input):
    point = point_of(wildcards)
    iree = ""
    if "toolchain" in input.keys():  # an IREE row: the compiler that built its module and the program it compiled
        iree = f" --toolchain {input.toolchain} --program-form {program_form_of(wildcards)}"
    if AVAILABILITY[point.backend].runs:
        probe = f" --device-probe {input.probe}" if "probe" in input.keys() else ""
        return f"--verification {input.verification} --timing {input.timing}{probe}{iree}"
    return f"--skip-reason {shlex.quote(AVAILABILITY[point.backend].reason + ' (compiled OK)')}{iree}"


def point_json(wildcards):
    point = point_of(wildcards)
    fields = {k: getattr(point, k) for k in
              ("op", "suite", "layer", "count", "shape", "batch", "dtype", "layout", "backend", "variant")}
    return shlex.quote(json.dumps(fields))


def variant_flags(wildcards):
    settings = backend_settings(wildcards)
    backend = get_backend(wildcards.backend)
    flags = backend.variant_flags(settings, wildcards.variant)
    if backend.artifact == "vmfb":
        flags = flags + backend.problem_flags(settings, wildcards.variant, _iree_problem(wildcards))
    return shlex.quote(" ".join(flags))


def record_paths():
    """Records the summary reads: every point with a job; after a failed run, only those that exist."""
    paths = [f"{RESULTS}/records/{p.record_path}" for p in POINTS if p not in SKIPPED]
    if config.get("summary_allow_missing"):
        paths = [path for path in paths if Path(path).exists()]
    return paths


def summary_outputs():
    return [f"{RESULTS}/summary.md", f"{RESULTS}/summary.csv", f"{RESULTS}/plots"]


def device_probes():
    """One probe job per GPU kind that rows run on here: where the benchmarks' GPU jobs land."""
    return [f"{RESULTS}/device/cuda.json"] if "cuda" in DEVICES else []
