"""Our hand-written CUDA kernels: one executable per variant (cuda/variants/<variant>.cu + the harness), each for one
op: conv2d (NHWC input, KRSC filter = layout nhwc_fhwc), depthwise_conv2d (NHWC input, RSC filter = nhwc_hwc),
separable_conv2d (NHWC input, RSC depthwise and KC pointwise filters = nhwc_hwc_kc) or attention (Q, K, V and O
[B,H,S,D] = bhsd; bshd points are SKIP).

The harness reads the input and filter .npy files, poisons the output, runs or times with CUDA events around
CUDA-graph replays of many launches rotating through buffer copies larger than L2, and prints one JSON object.
Each variant file declares what it implements in one comment line, e.g.
`// opbench: dtypes=f16,bf16,f32 f32_math=tf32 archs=sm_90a` or `// opbench: op=depthwise_conv2d` (see VariantInfo).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from opbench import phases
from opbench.backends.base import Backend, BenchSettings, Job, Problem, SettingsError, register_backend
from opbench.backends.harness_process import call_harness
from opbench.dtypes import DType
from opbench.ops.attention.shape import AttentionShape
from opbench.ops.conv2d.shape import Conv2dShape
from opbench.ops.depthwise_conv2d.shape import DepthwiseShape
from opbench.ops.separable_conv2d.shape import SeparableShape
from opbench.provenance import nvcc_version

REPO = Path(__file__).resolve().parents[2]
CUDA_DIR = REPO / "cuda"


def variant_source(variant: str) -> Path:
    return CUDA_DIR / "variants" / f"{variant}.cu"


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class VariantInfo:
    """What a variant file declares on its `// opbench:` line (every key optional)."""

    op: str = "conv2d"  # the op it computes (the harness's --op): a key of HARNESS_LAYOUTS
    dtypes: tuple[str, ...] = ("f32",)  # the harness --dtype values it implements
    f32_math: str = "fp32"  # how it computes f32 inputs: "fp32" or "tf32" (then judged by the tf32 tolerance)
    archs: tuple[str, ...] | None = None  # nvcc targets (e.g. sm_90a); None: the config's cuda.archs


_METADATA = re.compile(r"^//\s*opbench:(.*)$", re.MULTILINE)
_HARNESS_DTYPES = ("f32", "f16", "bf16")
# The ops the harness runs, with the one layout each takes (its input and filter orders).
HARNESS_LAYOUTS = {
    "conv2d": "nhwc_fhwc", "depthwise_conv2d": "nhwc_hwc", "separable_conv2d": "nhwc_hwc_kc", "attention": "bhsd",
}  # fmt: skip
# The harness flag that names each op input's .npy file (the op's input_names; attention's --k is the key file, its
# --s the sequence length: the harness reads both by --op).
HARNESS_INPUT_FLAGS = {
    "input": "--input", "filter": "--filter", "dw_filter": "--filter", "pw_filter": "--pw-filter",
    "q": "--q", "k": "--k", "v": "--v",
}  # fmt: skip


@cache
def variant_info(variant: str) -> VariantInfo:
    """What cuda/variants/<variant>.cu declares."""
    path = variant_source(variant)
    return parse_variant_info(path.read_text(), path)


def parse_variant_info(text: str, path: Path) -> VariantInfo:
    """Parse a variant file's `// opbench: key=value ...` line; a bad key or value names the file."""
    lines = _METADATA.findall(text)
    if len(lines) > 1:
        raise ValueError(f"{path}: more than one '// opbench:' line")
    fields: dict[str, object] = {}
    for item in lines[0].split() if lines else []:
        key, sep, value = item.partition("=")
        values = tuple(v for v in value.split(",") if v)
        if not sep or not values:
            raise ValueError(f"{path}: '// opbench:' item {item!r} is not key=value[,value...]")
        if key == "op":
            if value not in HARNESS_LAYOUTS:
                raise ValueError(f"{path}: op {value!r} unknown (the harness runs {', '.join(HARNESS_LAYOUTS)})")
            fields[key] = value
        elif key == "dtypes":
            bad = [v for v in values if v not in _HARNESS_DTYPES]
            if bad:
                raise ValueError(f"{path}: dtypes {bad} unknown (the harness implements {', '.join(_HARNESS_DTYPES)})")
            fields[key] = values
        elif key == "f32_math":
            if value not in ("fp32", "tf32"):
                raise ValueError(f"{path}: f32_math must be fp32 or tf32, got {value!r}")
            fields[key] = value
        elif key == "archs":
            bad = [v for v in values if not re.fullmatch(r"sm_\d+a?", v)]
            if bad:
                raise ValueError(f"{path}: archs {bad} are not nvcc targets like sm_90 or sm_90a")
            fields[key] = values
        else:
            raise ValueError(f"{path}: unknown '// opbench:' key {key!r} (known: op, dtypes, f32_math, archs)")
    return VariantInfo(**fields)  # type: ignore[arg-type]


def variant_archs(variant: str, default: list[str]) -> list[str]:
    """The nvcc targets of a variant: its own `archs=` if it declares them, else the config's."""
    declared = variant_info(variant).archs
    return list(declared) if declared else list(default)


def build_sources(variant: str) -> list[Path]:
    """The files a variant's binary is built from: the harness, the variant file and every project header they
    include (transitively). The build rule's inputs: editing one variant rebuilds only that variant."""
    todo = [CUDA_DIR / "common" / "harness.cu", variant_source(variant)]
    seen: list[Path] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for name in _INCLUDE.findall(path.read_text()):
            header = CUDA_DIR / "common" / name
            if header.exists():
                todo.append(header)
    return sorted(seen)


def known_variants() -> list[str]:
    """The variants are the files: one table, the filesystem."""
    return sorted(p.stem for p in (CUDA_DIR / "variants").glob("*.cu"))


def nvcc_command(*, variant: str, archs: list[str], flags: list[str], out: Path) -> list[str]:
    """The build line: the shared harness plus one variant file, every arch, resource report on."""
    gencode = [f"-gencode=arch=compute_{arch.removeprefix('sm_')},code={arch}" for arch in archs]
    return [
        "nvcc", "-std=c++17", *flags, "-Xptxas", "-v", *gencode, f"-I{CUDA_DIR / 'common'}",
        str(CUDA_DIR / "common" / "harness.cu"), str(variant_source(variant)), "-o", str(out),
    ]  # fmt: skip


def build(*, variant: str, archs: list[str], flags: list[str], out: Path) -> None:
    """Build one variant; print nvcc's resource report and the SASS instruction summary (the rule's log)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_nvcc(nvcc_command(variant=variant, archs=archs, flags=flags, out=out), out)


def run_nvcc(cmd: list[str], out: Path) -> None:
    """Print and run an nvcc command line (its -Xptxas -v resource report goes to the log), then print the SASS
    instruction summary of the binary it wrote."""
    from opbench.sass import sass_summary

    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    try:
        print("SASS instruction counts per arch and kernel:\n" + json.dumps(sass_summary(out), indent=1))
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        print(f"no SASS summary: cuobjdump/nvdisasm unavailable ({error})")


def problem_flags(
    shape: Conv2dShape | DepthwiseShape | SeparableShape | AttentionShape, op: str = "conv2d"
) -> list[str]:
    """The harness's problem flags: --op and the sizes (a depthwise problem has K = C, which the harness implies;
    attention: B, heads, S, D and causal 0|1)."""
    values: dict[str, object]
    if op == "attention":
        assert isinstance(shape, AttentionShape), shape
        values = {"op": op, "b": shape.b, "heads": shape.h, "s": shape.s, "d": shape.d, "causal": int(shape.causal)}
    else:
        assert not isinstance(shape, AttentionShape), shape
        values = {
            "op": op, "n": shape.n, "h": shape.h, "w": shape.w, "c": shape.c,
            **({} if op == "depthwise_conv2d" else {"k": shape.k}), "r": shape.r, "s": shape.s,
            "stride-h": shape.stride[0], "stride-w": shape.stride[1], "pad-h": shape.pad[0], "pad-w": shape.pad[1],
            "dil-h": shape.dilation[0], "dil-w": shape.dilation[1],
        }  # fmt: skip
    return [arg for key, value in values.items() for arg in (f"--{key}", str(value))]


def random_problem_args(shape: Conv2dShape, folder: Path, seed: int = 1) -> list[str]:
    """For tools that run the harness by hand (ncu, compute-sanitizer): random NHWC X and KRSC Wt written to `folder`,
    and the harness arguments naming them, the output file and the problem."""
    rng = np.random.default_rng(seed)
    x, w, y = folder / "x.npy", folder / "w.npy", folder / "y.npy"
    np.save(x, rng.standard_normal((shape.n, shape.h, shape.w, shape.c), dtype=np.float32))
    np.save(w, rng.standard_normal((shape.k, shape.r, shape.s, shape.c), dtype=np.float32))
    return ["--input", str(x), "--filter", str(w), "--output", str(y), *problem_flags(shape)]


SETTINGS_SCHEMA = yaml.safe_load("""
description: >
  Our hand-written CUDA kernels: conv2d (NHWC input, KRSC filter = layout nhwc_fhwc), depthwise_conv2d
  (NHWC input, RSC filter = nhwc_hwc), separable_conv2d (NHWC input, RSC depthwise and KC pointwise filters =
  nhwc_hwc_kc) and attention (Q, K, V, O [B,H,S,D] = bhsd), each variant for one op and the dtypes its file
  declares. A variant's name is a file cuda/variants/<name>.cu; its list holds extra nvcc flags (e.g. -D tile
  sizes).
type: object
additionalProperties: false
required: [variants]
properties:
  archs:
    description: GPU architectures the binaries are built for (one -gencode each).
    type: array
    minItems: 1
    items: {type: string, pattern: "^sm_[0-9]+a?$"}
    default: [sm_90, sm_80]
  nvcc_flags:
    $ref: "#/$defs/flags"
    description: Flags for every variant's nvcc call.
    default: [-O3, -lineinfo]
  variants:
    type: object
    minProperties: 1
    propertyNames: {$ref: "#/$defs/name"}
    additionalProperties: {$ref: "#/$defs/flags"}
""")


@register_backend
class CudaKernels(Backend):
    name = "cuda"
    device = "cuda"
    build_scope: ClassVar[str] = "variant"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA

    def info(self, variant: str) -> VariantInfo:
        """What the variant's source declares (its `// opbench:` line)."""
        return variant_info(variant)

    def source_name(self, variant: str) -> str:
        return f"cuda/variants/{variant}.cu"

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        info = self.info(variant)
        if problem.op != info.op:
            return f"{self.source_name(variant)} computes {info.op}, not {problem.op}"
        layout = HARNESS_LAYOUTS[info.op]
        if problem.layout != layout:
            return f"the harness takes {info.op} in layout {layout}, not {problem.layout}"
        dtypes = info.dtypes
        if problem.dtype.name not in dtypes:
            return f"{self.source_name(variant)} implements {', '.join(dtypes)}, not {problem.dtype.name}"
        return None

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Every variant is a file of cuda/variants/ whose `// opbench:` line parses."""
        for variant in settings["variants"]:
            if variant not in known_variants():
                raise SettingsError("variants", f"unknown value {variant!r} (known: {', '.join(known_variants())})")
            try:
                variant_info(variant)
            except ValueError as error:
                raise SettingsError(f"variants.{variant}", str(error)) from None

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        if dtype.name == "f32" and self.info(variant).f32_math == "tf32":
            return "tf32"
        return dtype.tolerance_key

    def build_inputs(self, settings: dict[str, Any], variant: str, op: str, problem: Problem | None) -> list[str]:
        """The harness, the variant's file and the headers they include: editing one variant rebuilds only it."""
        return [str(path.relative_to(REPO)) for path in build_sources(variant)]

    def build_params(
        self, settings: dict[str, Any], variant: str, op: str, problem: Problem | None, artifact: Path
    ) -> dict[str, Any]:
        """The variant, its nvcc targets (its own `archs=` or the config's), the flags and nvcc's version."""
        return {
            "variant": variant,
            "archs": variant_archs(variant, settings["archs"]),
            "flags": [*settings["nvcc_flags"], *settings["variants"][variant]],
            "nvcc": nvcc_version(),
        }

    def build(self, params: dict[str, Any], inputs: list[Path], out: Path) -> None:
        build(variant=params["variant"], archs=params["archs"], flags=params["flags"], out=out)

    def _call(self, job: Job, mode: str, extra: list[str]) -> tuple[dict[str, Any], np.ndarray | None]:
        """Run the binary once; return its JSON record and, in run mode, its output. Phases (opbench.phases):
        `harness_inputs` (the inputs written for it), harness_process's, `harness_output` (its output read)."""
        if job.artifact is None:
            raise ValueError("the cuda backend runs a built binary: no artifact given")
        with tempfile.TemporaryDirectory(prefix="opbench-cuda-") as tmp:
            paths = {name: Path(tmp) / f"{name}.npy" for name in (*job.inputs, "output")}
            with phases.span("harness_inputs"):
                for name, array in job.inputs.items():
                    np.save(paths[name], np.ascontiguousarray(array, dtype=np.float32))
            files = [arg for name in job.inputs for arg in (HARNESS_INPUT_FLAGS[name], str(paths[name]))]
            args = [
                "--mode", mode, "--dtype", job.dtype.name, *files, *problem_flags(job.shape, job.op),
                *extra,
                *(["--output", str(paths["output"])] if mode == "run" else []),
            ]  # fmt: skip
            stdout, stderr = call_harness(job.artifact, args)
            print(stderr, end="", file=sys.stderr)  # the harness's warnings, into the job's log
            output = None
            if mode == "run":
                with phases.span("harness_output"):
                    output = np.load(paths["output"])
        return json.loads(stdout), output

    def run(self, job: Job) -> np.ndarray:
        _, output = self._call(job, "run", [])
        assert output is not None
        return output

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        result, _ = self._call(
            job, "bench",
            ["--warmup-ms", str(settings.warmup_ms), "--reps", str(settings.repetitions),
             "--min-sample-ms", str(settings.min_sample_ms), "--flush-l2", str(int(settings.flush_l2))],
        )  # fmt: skip
        if not result.get("bench_output_consistent", True):
            raise RuntimeError("the timed launches produced a different output than the verified run")
        result["method"] = (
            f"CUDA events around a CUDA-graph replay of {result['inner']} launches per sample, "
            f"{result['buffer_copies']} rotating buffer copies (flush_l2={result['flush_l2']})"
        )
        return result
