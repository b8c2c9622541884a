"""CUTLASS conv2d forward: one executable per config variant, built from cuda/cutlass/conv2d_fprop.cu + the harness.

The kernels come from the CUTLASS C++ headers of the `nvidia-cutlass` wheel (`cutlass_library.source_path`) or of
the CUTLASS checkout that `CUTLASS_DIR` names. A variant is a kernel family and its tiling, from the config:

    backends.cutlass.variants.sm80_128x128x32_s4: {arch: sm80, tile: [128, 128, 32], warps: [64, 64, 32], stages: 4}
    backends.cutlass.variants.sm90_tma_128x128x64: {arch: sm90, tile: [128, 128, 64], stages: 0}

`sm80`: CUTLASS 2.x ImplicitGemmConvolution (mma.sync, cp.async), built for sm_90 and sm_80 SASS; `sm90`: the
CUTLASS 3.x TMA warp-specialized implicit GEMM (wgmma), built for sm_90a. The binaries speak the harness's
protocol (cuda/README.md), so running and timing are the `cuda` backend's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import yaml

from opbench.backends.base import BenchSettings, Job, Problem, SettingsError, register_backend
from opbench.backends.cuda import CUDA_DIR, REPO, CudaKernels, VariantInfo, parse_variant_info, run_nvcc
from opbench.provenance import nvcc_version

SOURCE = CUDA_DIR / "cutlass" / "conv2d_fprop.cu"
HARNESS = CUDA_DIR / "common" / "harness.cu"
# nvcc targets per kernel family: the sm80 kernels run on Hopper too; wgmma and TMA need sm_90a.
TARGETS: dict[str, tuple[str, ...]] = {"sm80": ("sm_90", "sm_80"), "sm90": ("sm_90a",)}
# CUTLASS's headers need constexpr host functions in device code (cute) and the reverse.
CUTLASS_NVCC_FLAGS = ("--expt-relaxed-constexpr",)
INSTALL_HINT = "pip install 'nvidia-cutlass>=4.2,<4.3', or set CUTLASS_DIR to a CUTLASS checkout (with include/)"


@cache
def source_info() -> VariantInfo:
    """What conv2d_fprop.cu declares on its `// opbench:` line (dtypes, f32 math)."""
    return parse_variant_info(SOURCE.read_text(), SOURCE)


class SpecError(ValueError):
    """A variant entry the kernels cannot take: `key` is its path below backends.cutlass.variants."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key, self.why = key, why


@dataclass(frozen=True, kw_only=True)
class KernelSpec:
    """One config variant: the kernel family and its tiling (the -D macros of its build)."""

    arch: str  # "sm80" or "sm90"
    tile: tuple[int, int, int]  # CTA tile M (output pixels) x N (output channels) x K (reduction)
    warps: tuple[int, int, int] | None  # warp tile (sm80 only)
    stages: int  # shared-memory pipeline depth; sm90: 0 = as many as fit

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> KernelSpec:
        """Check one variant's entry beyond what the schema can; a SpecError names the offending key."""
        arch, tile, warps, stages = entry["arch"], tuple(entry["tile"]), entry.get("warps"), entry["stages"]
        if arch == "sm80":
            if warps is None:
                raise SpecError("warps", "required for arch sm80 (the warp tile, e.g. [64, 64, 32])")
            warps = tuple(warps)
            for axis, (t, w) in enumerate(zip(tile, warps, strict=True)):
                if t % w:
                    raise SpecError(f"tile[{axis}]", f"{t} is not a multiple of warps[{axis}] = {w}")
            if warps[0] % 16 or warps[1] % 8 or warps[2] % 16:
                raise SpecError("warps", f"{list(warps)} must be multiples of [16, 8, 16] (the mma.sync shapes)")
            count = (tile[0] // warps[0]) * (tile[1] // warps[1]) * (tile[2] // warps[2])
            if count > 16:
                raise SpecError("warps", f"tile / warps = {count} warps per CTA; at most 16")
            if tile[2] > 64:
                raise SpecError(
                    "tile[2]",
                    f"{tile[2]}; at most 64 (CUTLASS's sm80 shared-memory rows hold 128 bytes: 64 16-bit elements; "
                    "the TF32 kernel uses min(K, 32))",
                )
            if stages < 2:
                raise SpecError("stages", f"{stages}; the sm80 kernels need at least 2")
        else:
            if warps is not None:
                raise SpecError("warps", "arch sm90 takes no warp tile (one consumer warpgroup per CTA tile)")
            if tile[0] not in (64, 128):
                raise SpecError("tile[0]", f"{tile[0]}; the sm90 kernel (one consumer warpgroup) takes 64 or 128")
            if tile[1] % 16 or tile[1] > 256:
                raise SpecError("tile[1]", f"{tile[1]}; the sm90 kernel takes a multiple of 16 up to 256")
            if stages == 1:
                raise SpecError("stages", "1; use 0 (as many as fit in shared memory) or at least 2")
        return cls(arch=arch, tile=tile, warps=warps, stages=stages)  # type: ignore[arg-type]

    def defines(self, variant: str) -> list[str]:
        macros = {"OPBENCH_CUTLASS_SM": self.arch.removeprefix("sm"), "OPBENCH_VARIANT": f'"{variant}"'}
        macros |= {f"OPBENCH_TILE_{axis}": str(v) for axis, v in zip("MNK", self.tile, strict=True)}
        if self.warps:
            macros |= {f"OPBENCH_WARP_{axis}": str(v) for axis, v in zip("MNK", self.warps, strict=True)}
        macros["OPBENCH_STAGES"] = str(self.stages)
        return [f"-D{name}={value}" for name, value in macros.items()]

    def describe(self) -> list[str]:
        """The variant as the records' `flags` column shows it."""
        words = [f"arch={self.arch}", "tile=" + "x".join(map(str, self.tile))]
        if self.warps:
            words.append("warps=" + "x".join(map(str, self.warps)))
        return [*words, f"stages={self.stages if self.stages else 'auto'}"]


def check_variants(settings: dict[str, Any]) -> None:
    """Raise SpecError('<variant>.<key>', why) for the first variant entry the kernels cannot take."""
    for name, entry in settings["variants"].items():
        try:
            KernelSpec.from_config(entry)
        except SpecError as error:
            raise SpecError(f"{name}.{error.key}", error.why) from None


def cutlass_root() -> Path:
    """The CUTLASS tree whose include/ the builds use: $CUTLASS_DIR, else the nvidia-cutlass wheel's copy."""
    if os.environ.get("CUTLASS_DIR"):
        root = Path(os.environ["CUTLASS_DIR"])
        where = f"CUTLASS_DIR={root}"
    else:
        try:
            import cutlass_library
        except ImportError:
            raise FileNotFoundError(f"CUTLASS headers not found: {INSTALL_HINT}") from None
        root = Path(cutlass_library.source_path)
        where = f"cutlass_library.source_path ({root})"
    if not (root / "include" / "cutlass" / "version.h").is_file():
        raise FileNotFoundError(f"{where} has no include/cutlass/version.h: {INSTALL_HINT}")
    return root


def include_dirs(root: Path) -> list[Path]:
    """include/ (cutlass/, cute/) and tools/util/include/ (the sm90 conv collective includes
    cutlass/util/packed_stride.hpp from there)."""
    return [root / "include", root / "tools" / "util" / "include"]


@cache
def cutlass_version() -> str:
    """e.g. '4.2.0' (from include/cutlass/version.h), or why there is none: a parameter of the build rule."""
    try:
        text = (cutlass_root() / "include" / "cutlass" / "version.h").read_text()
    except FileNotFoundError as error:
        return f"no CUTLASS: {error}"
    parts = [re.search(rf"#define CUTLASS_{part} (\d+)", text) for part in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) if m else "?" for m in parts)


def build_sources() -> list[Path]:
    """The build rule's inputs: the harness, the variant source and the project headers they include."""
    headers = {
        CUDA_DIR / "common" / name
        for path in (HARNESS, SOURCE)
        for name in re.findall(r'^\s*#\s*include\s+"([^"/]+)"', path.read_text(), re.MULTILINE)
        if (CUDA_DIR / "common" / name).is_file()
    }
    return sorted({HARNESS, SOURCE, *headers})


def nvcc_command(*, variant: str, spec: KernelSpec, flags: list[str], root: Path, out: Path) -> list[str]:
    """The build line: harness + conv2d_fprop.cu, the variant's macros, its family's targets, resource report on."""
    gencode = [f"-gencode=arch=compute_{t.removeprefix('sm_')},code={t}" for t in TARGETS[spec.arch]]
    includes = [f"-I{CUDA_DIR / 'common'}", *(f"-I{d}" for d in include_dirs(root))]
    return [
        "nvcc", "-std=c++17", *flags, *CUTLASS_NVCC_FLAGS, "-Xptxas", "-v", *gencode, *includes,
        *spec.defines(variant), str(HARNESS), str(SOURCE), "-o", str(out),
    ]  # fmt: skip


def build(*, variant: str, spec: KernelSpec, flags: list[str], out: Path) -> None:
    """Build one variant; print the command, nvcc's resource report and the SASS summary (the rule's log)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    root = cutlass_root()
    print(f"CUTLASS {cutlass_version()} from {root}", flush=True)
    run_nvcc(nvcc_command(variant=variant, spec=spec, flags=flags, root=root, out=out), out)


SETTINGS_SCHEMA = yaml.safe_load("""
description: >
  CUTLASS's implicit-GEMM conv2d forward (f16, bf16, and f32 computed as TF32; NHWC input, KRSC filter =
  layout nhwc_fhwc), built from cuda/cutlass/conv2d_fprop.cu with the headers of the nvidia-cutlass wheel
  or of $CUTLASS_DIR. Each variant is one kernel configuration, so tiles and stages sweep like shapes.
type: object
additionalProperties: false
required: [variants]
properties:
  nvcc_flags:
    $ref: "#/$defs/flags"
    description: Flags for every variant's nvcc call.
    default: [-O3, -lineinfo]
  variants:
    description: Named kernel configurations; each becomes the `variant` of its rows.
    type: object
    minProperties: 1
    propertyNames: {$ref: "#/$defs/name"}
    additionalProperties:
      type: object
      additionalProperties: false
      required: [arch, tile, stages]
      properties:
        arch:
          description: >
            sm80: CUTLASS 2.x ImplicitGemmConvolution (mma.sync, cp.async, optimized iterators), built for
            sm_90 and sm_80; sm90: the CUTLASS 3.x TMA warp-specialized implicit GEMM (wgmma), built for
            sm_90a. Problems the kernel cannot run (C or K not a multiple of its 16-byte accesses) run an
            analytic-iterator fallback kernel, named in the row's timing method.
          enum: [sm80, sm90]
        tile:
          description: >
            CTA tile [M, N, K]: output pixels x output channels x reduction elements per main-loop step.
            sm90: M is 64 or 128, N a multiple of 16 up to 256.
          type: array
          items: {type: integer, minimum: 16, maximum: 512, multipleOf: 16}
          minItems: 3
          maxItems: 3
        warps:
          description: >
            sm80 only (required there): the warp tile [M, N, K]; the CTA tile must be a whole number of
            them, at most 16 warps.
          type: array
          items: {type: integer, minimum: 8, maximum: 256, multipleOf: 8}
          minItems: 3
          maxItems: 3
        stages:
          description: >
            Shared-memory pipeline depth. sm80: at least 2; sm90: 0 = as many as fit beside the epilogue.
          type: integer
          minimum: 0
          maximum: 10
""")


@register_backend
class CutlassConv(CudaKernels):
    """Runs and times like `cuda` (same harness protocol); builds, supports and names variants its own way."""

    name = "cutlass"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA

    def info(self, variant: str) -> VariantInfo:
        return source_info()  # one source serves every CUTLASS variant

    def source_name(self, variant: str) -> str:
        return "cuda/cutlass/conv2d_fprop.cu"

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Every variant entry is one the kernels can take (KernelSpec.from_config)."""
        try:
            check_variants(settings)
        except SpecError as error:
            raise SettingsError(f"variants.{error.key}", error.why) from None

    def variant_flags(self, settings: dict[str, Any], variant: str, problem: Problem) -> list[str]:
        return KernelSpec.from_config(settings["variants"][variant]).describe()

    def build_inputs(self, settings: dict[str, Any], variant: str, op: str, problem: Problem | None) -> list[str]:
        """The harness, conv2d_fprop.cu and the project headers they include (not CUTLASS's: its version is a
        parameter)."""
        return [str(path.relative_to(REPO)) for path in build_sources()]

    def build_params(
        self, settings: dict[str, Any], variant: str, op: str, problem: Problem | None, artifact: Path
    ) -> dict[str, Any]:
        """The variant's config entry (arch, tile, warps, stages), the flags, and the nvcc and CUTLASS versions."""
        return {
            "variant": variant,
            "spec": settings["variants"][variant],
            "flags": settings["nvcc_flags"],
            "nvcc": nvcc_version(),
            "cutlass": cutlass_version(),
        }

    def build(self, params: dict[str, Any], inputs: list[Path], out: Path) -> None:
        build(variant=params["variant"], spec=KernelSpec.from_config(params["spec"]), flags=params["flags"], out=out)

    def requirement_missing(self) -> str | None:
        try:
            cutlass_root()
        except FileNotFoundError as error:
            return str(error)
        return None

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        """The harness's timing, with the kernel that ran in the method (a problem the variant's main kernel
        cannot run, e.g. C = 3, runs the fallback kernel: the record says so)."""
        result = super().benchmark(job, settings)
        detail = result.get("detail", {})
        result["method"] += f"; kernel {detail.get('kernel', '?')}"
        if detail.get("fallback"):
            result["method"] += f" (fallback: {detail.get('main_kernel_passed_over', '?')})"
        return result
