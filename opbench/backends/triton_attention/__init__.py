"""Backend `triton-attention`: attention's forward pass, softmax(Q·Kᵀ/√D)·V, as a fused FlashAttention-2-style
kernel written in Triton by us (kernel.py): online softmax, K and V streamed a block at a time (no S x S matrix in
memory), causal by stopping at the diagonal and masking the diagonal blocks, partial last query and key blocks
masked; f16 and bf16 with f32 scores, softmax and accumulation; layouts bhsd and bshd through strides; head dims up
to 256 (padded to a power of two, the padding masked). It follows the algorithm of Triton's fused-attention
tutorial (python/tutorials/06-fused-attention.py of the Triton 3.x releases: an unmasked off-diagonal stage and a
masked diagonal stage, the softmax in base 2), rewritten in this project's style with what the tutorial leaves out
(any S, any D up to 256, the bshd layout); it runs with whatever Triton the GPU machine has (written against 3.6),
and every row records that version.

A variant is one tile configuration (block_m, block_n, num_warps, num_stages), declared in config.yaml's
backends.triton-attention.variants and checked by SETTINGS_SCHEMA and check_settings; or an autotune variant,
{autotune: [names of such variants]}, which times each candidate on the point's problem and keeps the fastest
(launch.py; `chosen` names it, `detail.autotune` lists every candidate's time). Every benchmark records the Triton
and PyTorch versions and what the compiled kernel is made of (`detail.kernel`, read by triton_conv/asm.py), and a
summary of it in the timing method.

Why a backend of its own rather than more variants of `triton` (the conv2d kernel, opbench/backends/triton_conv/):
the project keeps one backend per (library x op) where the code differs, and everything here differs: the kernel,
its tile parameters (no block_k, group_m or TMA; a block_n <= block_m rule), the dtypes (no f32-as-TF32), the
layouts and the launch. As a backend of its own its rows' jobs depend on this package's files only (code_files), so
editing the conv2d kernel reruns no attention row and editing this kernel no conv2d row; its settings schema
describes its own keys; and its variants never appear in a conv2d matrix (or conv2d's in an attention one) as SKIP
rows. What both Triton backends do alike with their tile variants is opbench/backends/triton_variants.py; the one
conv2d-backend file shared is the reader of the generated code (triton_conv/asm.py), which is about Triton's output,
not about conv2d.

The modules, one concern each: tiles.py (tile configurations, the program and key-block index math, strides; no GPU
library), kernel.py (the @triton.jit kernel), launch.py (device operands, launches, autotune, timing with
opbench.gpu_timing.time_graph). Only this file is imported where no job runs: PyTorch and Triton are imported when a
job runs. Compile once, run many: Triton's cache is compiled/triton-attention/triton-cache (TRITON_CACHE_DIR). A
job's inputs are this package's files (code_files) and its options hold the variant's configuration(s)
(job_options: a changed tile reruns that variant's rows, and the autotune rows that have it as a candidate).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import yaml

from opbench.backends.base import BenchSettings, Job, Problem, register_backend
from opbench.backends.triton_attention.tiles import (
    DTYPES,
    MAX_ELEMENTS,
    MAX_HEAD_DIM,
    TileConfig,
    check_config,
    largest_tensor,
)
from opbench.backends.triton_variants import TritonTileBackend, settings_schema
from opbench.ops.attention.layouts import INPUT_PERM

NAME = "triton-attention"
OP = "attention"
TABLE_NOTE = (
    "`triton-attention` rows are our fused FlashAttention-2-style forward kernel in Triton (f32 softmax and "
    "accumulation, P rounded to the element type), one tile configuration per variant; `autotune` keeps the fastest "
    "of them per layer (`chosen`)."
)

TILE_SCHEMA: dict[str, Any] = yaml.safe_load("""
type: object
description: One tile configuration (Triton's launch parameters and the kernel's block sizes).
additionalProperties: false
required: [block_m, block_n, num_warps, num_stages]
properties:
  block_m: {description: Queries per program., enum: [16, 32, 64, 128, 256]}
  block_n: {description: "Keys per step of the key loop (at most block_m).", enum: [16, 32, 64, 128]}
  num_warps: {description: Warps per program (4 or more for Hopper's wgmma)., enum: [1, 2, 4, 8, 16]}
  num_stages: {description: Software-pipeline depth Triton is asked for., type: integer, minimum: 1,
               maximum: 8}
""")
SETTINGS_SCHEMA = settings_schema(
    "Our fused attention forward kernel in Triton (opbench/backends/triton_attention/): FlashAttention-2 style, f16 "
    "and bf16 with f32 accumulation, layouts bhsd and bshd. Each variant is one tile configuration, or an autotune "
    "variant that times the named configurations per problem and keeps the fastest.",
    TILE_SCHEMA,
)


def unsupported_reason(problem: Problem) -> str | None:
    """Why the kernel does not implement a point (whatever the configuration), or None."""
    if problem.op != OP:
        return f"runs {OP} only, not {problem.op}"
    if problem.layout not in INPUT_PERM:
        return f"takes layouts {', '.join(INPUT_PERM)}, not {problem.layout}"
    if problem.dtype.name not in DTYPES:
        return f"implements {', '.join(DTYPES)} (f32 softmax and accumulation), not {problem.dtype.name}"
    if problem.shape.d > MAX_HEAD_DIM:
        return f"takes head dims up to {MAX_HEAD_DIM}, not {problem.shape.d}"
    if largest_tensor(problem.shape) > MAX_ELEMENTS:
        return "Q, K, V and O have 2^31 elements or more each (the kernel's offsets are 32-bit)"
    return None


@register_backend
class TritonAttention(TritonTileBackend):
    name = NAME
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA
    table_note = TABLE_NOTE

    def parse_tile(self, entry: dict[str, Any]) -> TileConfig:
        return TileConfig.from_config(entry)

    def tile_problem(self, tile: TileConfig) -> str | None:
        return check_config(tile)

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        return unsupported_reason(problem)

    def run(self, job: Job) -> np.ndarray:
        from opbench.backends.triton_attention import launch

        return launch.run(job)

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        from opbench.backends.triton_attention import launch

        return launch.benchmark(job, settings)


__all__ = ["NAME", "SETTINGS_SCHEMA", "TritonAttention", "unsupported_reason"]
