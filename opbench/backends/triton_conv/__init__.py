"""Backend `triton`: conv2d as an implicit GEMM written in Triton (kernel.py), NHWC input / KRSC filter (layout
nhwc_fhwc), f16 and bf16 with f32 accumulation, and f32 computed as TF32 (its rows judged at the `tf32` tolerance).

A variant is one tile configuration (block_m, block_n, block_k, num_warps, num_stages; group_m, tma), declared in
config.yaml's backends.triton.variants and checked by SETTINGS_SCHEMA and check_settings (both Triton backends'
variant handling: opbench/backends/triton_variants.py); or an autotune variant,
{autotune: [names of such variants]}, which times each candidate on the point's problem and keeps the fastest
(launch.py; `chosen` names it, `detail.autotune` lists every candidate's time). The filter operand is read through
a Hopper TMA tensor descriptor where the Triton release and the card offer it (gemm.tma_decision; `detail.tma`
and its reason say whether). Every benchmark records the Triton and PyTorch versions and what the compiled kernel is
made of (asm.py: wgmma, TMA, cp.async, the pipeline's shared-memory buffers) in `detail.kernel`, and a summary of
it in the timing method.

The modules, one concern each: gemm.py (the GEMM view, configs, index math, TMA gate; no GPU library),
kernel.py (the @triton.jit kernel), launch.py (device operands, launches, autotune, timing with
opbench.gpu_timing.time_graph), asm.py (facts read from the generated PTX/TTGIR/SASS). Only this file is imported
where no job runs: PyTorch and Triton are imported when a job runs.

Compile once, run many: Triton's cache is compiled/triton/triton-cache (TRITON_CACHE_DIR). A job's inputs are this
package's files (code_files: editing the kernel reruns the triton rows, and only them) and its options hold the
variant's configuration(s) (job_options: a changed tile reruns that variant's rows, and the autotune rows that have
it as a candidate).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import yaml

from opbench.backends.base import BenchSettings, Job, Problem, register_backend
from opbench.backends.triton_conv.gemm import ITEMSIZE, MAX_ELEMENTS, TileConfig, check_config, largest_tensor
from opbench.backends.triton_variants import TritonTileBackend, settings_schema
from opbench.dtypes import DType

OP = "conv2d"
LAYOUT = "nhwc_fhwc"
TABLE_NOTE = (
    "`triton` rows are our Triton implicit-GEMM kernel (NHWC/KRSC, f32 accumulation, f32 as TF32), one tile "
    "configuration per variant; `autotune` keeps the fastest of them per layer (`chosen`)."
)

TILE_SCHEMA: dict[str, Any] = yaml.safe_load("""
type: object
description: One tile configuration (Triton's launch parameters and the kernel's block sizes).
additionalProperties: false
required: [block_m, block_n, block_k, num_warps, num_stages]
properties:
  block_m: {description: Output pixels (GEMM rows) per program., enum: [16, 32, 64, 128, 256]}
  block_n: {description: Filters (output channels) per program., enum: [16, 32, 64, 128, 256]}
  block_k: {description: Reduction elements per main-loop step., enum: [16, 32, 64, 128]}
  num_warps: {description: Warps per program (4 or more for Hopper's wgmma)., enum: [1, 2, 4, 8, 16]}
  num_stages: {description: Software-pipeline depth Triton is asked for., type: integer, minimum: 1,
               maximum: 8}
  group_m: {description: "Row tiles that share their filter tiles (L2 reuse; default 8).",
            type: integer, minimum: 1, maximum: 64}
  tma: {description: "Load the filter through a TMA tensor descriptor where Triton (>= 3.4) and the card
        (sm_90+) offer it (default true); false: always pointer loads.", type: boolean}
""")
SETTINGS_SCHEMA = settings_schema(
    "Our Triton implicit-GEMM conv2d (opbench/backends/triton_conv/): NHWC input, KRSC filter (layout nhwc_fhwc), f16 "
    "and bf16 with f32 accumulation, f32 as TF32. Each variant is one tile configuration, or an autotune variant that "
    "times the named configurations per problem and keeps the fastest.",
    TILE_SCHEMA,
)


def unsupported_reason(problem: Problem) -> str | None:
    """Why the kernel does not implement a point (whatever the configuration), or None."""
    if problem.op != OP:
        return f"runs {OP} only, not {problem.op}"
    if problem.layout != LAYOUT:
        return f"takes layout {LAYOUT} (NHWC input, KRSC filter) only, not {problem.layout}"
    if problem.dtype.name not in ITEMSIZE:
        return f"implements {', '.join(ITEMSIZE)} (f32 accumulation; f32 as TF32), not {problem.dtype.name}"
    if largest_tensor(problem.shape) > MAX_ELEMENTS:
        return "an operand has 2^31 elements or more (the kernel's offsets are 32-bit)"
    return None


@register_backend
class Triton(TritonTileBackend):
    name = "triton"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA
    table_note = TABLE_NOTE

    def parse_tile(self, entry: dict[str, Any]) -> TileConfig:
        return TileConfig.from_config(entry)

    def tile_problem(self, tile: TileConfig) -> str | None:
        return check_config(tile)

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        return unsupported_reason(problem)

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        """f32 rows are computed as TF32 (tl.dot's input_precision "tf32"): judged as tf32."""
        return "tf32" if dtype.name == "f32" else dtype.tolerance_key

    def run(self, job: Job) -> np.ndarray:
        from opbench.backends.triton_conv import launch

        return launch.run(job)

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        from opbench.backends.triton_conv import launch

        return launch.benchmark(job, settings)


__all__ = ["SETTINGS_SCHEMA", "Triton", "unsupported_reason"]
