"""The GPU side of the triton-attention backend (imported when a job runs): Q, K, V on the device in the layout's
order, one launch of the kernel with a tile configuration, the autotune variant's search, and run()/benchmark().

Timing is opbench.gpu_timing.time_graph's, as for every PyTorch-side backend: CUDA events around a CUDA-graph replay
of many launches rotating through copies of Q, K, V and O larger than L2; the timed outputs must equal a fresh launch
on each buffer set. The autotune variant times each candidate configuration the same way (with AUTOTUNE_SETTINGS,
shorter) and keeps the fastest; its choice is stored under compiled/triton-attention/autotune/ (keyed by the shape,
dtype, layout, candidates, card, Triton and PyTorch versions and kernel source), so the run job (verified) and the
benchmark job (timed) use the same configuration whichever runs first.

Triton's compile cache is compiled/triton-attention/triton-cache (TRITON_CACHE_DIR, set before the first compile):
a kernel compiled for one job is loaded, not compiled again, by the next job with the same source, constants and
tile. What the compiled kernel is made of (wgmma, cp.async, pipeline buffers, registers, spills) is read by the
conv2d backend's reader, opbench/backends/triton_conv/asm.py (the one file of that backend this one uses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opbench.backends.base import BenchSettings, Job
from opbench.backends.triton_attention import tiles
from opbench.backends.triton_conv.asm import kernel_facts, summary
from opbench.backends.triton_variants import autotune_key, fastest, out_of_resources, parse_options, stored_search
from opbench.gpu_timing import buffer_copies, time_graph, to_host, torch_dtype, verified_timing

BACKEND = "triton-attention"
CACHE_DIR = f"compiled/{BACKEND}/triton-cache"  # Triton's compile cache (compiled/<backend>/..., as opbench.paths)
AUTOTUNE_DIR = f"compiled/{BACKEND}/autotune"  # the autotune variant's choices
KERNEL_SOURCE = Path(__file__).with_name("kernel.py")
# The autotune search's timing per candidate: short, the same in the run and the benchmark job.
AUTOTUNE_SETTINGS = BenchSettings(warmup_ms=10, repetitions=5, min_sample_ms=2, flush_l2=True)
NOUN = "attention calls"


def set_cache_dir() -> Path:
    """Point Triton's compile cache at compiled/triton-attention/triton-cache (under the job's working directory,
    the workflow's root) before anything compiles; every job sets it (a GPU worker also serves other backends)."""
    path = Path(CACHE_DIR).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TRITON_CACHE_DIR"] = str(path)
    return path


@dataclass
class Attention:
    """One job's attention on the device: Q, K, V (rotating copies, each stored in the layout's order) and the
    kernel's launches."""

    job: Job
    torch: Any
    triton: Any
    sets: list[tuple[Any, Any, Any]] = field(default_factory=list)  # (q, k, v) per buffer set
    capability: tuple[int, int] = (0, 0)

    @classmethod
    def setup(cls, job: Job) -> Attention:
        set_cache_dir()
        import torch
        import triton

        dtype = torch_dtype(torch, job.dtype.name)
        q, k, v = (
            torch.from_numpy(np.ascontiguousarray(job.inputs[name])).to(device="cuda", dtype=dtype)
            for name in ("q", "k", "v")
        )
        return cls(
            job=job, torch=torch, triton=triton, sets=[(q, k, v)],
            capability=tuple(torch.cuda.get_device_capability()),
        )  # fmt: skip

    def rotate(self, copies: int) -> None:
        """Buffer sets 1 .. copies-1: clones of set 0 (contiguous, the layout's order)."""
        first = self.sets[0]
        self.sets = [first] + [tuple(t.clone() for t in first) for _ in range(copies - 1)]  # type: ignore[misc]

    def launcher(self, name: str, config: tiles.TileConfig) -> Launcher:
        from opbench.backends.triton_attention.kernel import attention_fwd

        return Launcher(self, name, config, attention_fwd)


class Launcher:
    """Launches of one configuration: `launch(i)` computes attention on buffer set i into a new output tensor (the
    layout's order) and returns it (what time_graph keeps per set); `compiled` is the first launch's
    CompiledKernel."""

    def __init__(self, attn: Attention, name: str, config: tiles.TileConfig, kernel: Any) -> None:
        job = attn.job
        shape = job.shape
        self.attn, self.name, self.config, self.kernel = attn, name, config, kernel
        self.num_m = tiles.query_blocks(shape.s, config.block_m)
        self.grid = (tiles.program_count(shape, config.block_m),)
        self.strides = tiles.layout_strides(job.layout, shape)
        self.block_d = tiles.padded_head_dim(shape.d)
        self.qk_scale = tiles.softmax_scale_log2(shape.d)
        self.out_shape = tuple(attn.sets[0][0].shape)  # O is stored like Q
        self.compiled: Any = None

    def launch(self, i: int) -> Any:
        shape, config = self.attn.job.shape, self.config
        q, k, v = self.attn.sets[i]
        o = self.attn.torch.empty(self.out_shape, dtype=q.dtype, device=q.device)
        compiled = self.kernel[self.grid](
            q, k, v, o, shape.h, shape.s, shape.d, *self.strides, self.qk_scale, self.num_m,
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_D=self.block_d, CAUSAL=shape.causal,
            EVEN_D=self.block_d == shape.d, num_warps=config.num_warps, num_stages=config.num_stages,
        )  # fmt: skip
        if self.compiled is None:
            self.compiled = compiled
        return o

    def checked_launch(self) -> Any:
        """The first launch (it compiles): a configuration Triton cannot fit on the card is an error naming it."""
        try:
            return self.launch(0)
        except Exception as error:
            if not out_of_resources(error):
                raise
            shape = self.attn.job.shape
            raise RuntimeError(
                f"{BACKEND} variant {self.name} (block {self.config.block_m}x{self.config.block_n}, "
                f"{self.config.num_stages} stages) does not fit this card at head dim {shape.d} "
                f"(padded to {self.block_d}): {str(error).strip()[:300]}"
            ) from error

    def describe(self) -> dict[str, Any]:
        return {
            "config": self.config.to_config(), "grid": list(self.grid), "query_blocks": self.num_m,
            "block_d": self.block_d, "strides": list(self.strides),
        }  # fmt: skip


# ---------------------------------------------------------------- the autotune variant


def time_config(attn: Attention, launcher: Launcher, settings: BenchSettings) -> tuple[Any, float]:
    """time_graph over the launcher's launches: (GraphTiming, median ms)."""
    timing = time_graph(launcher.launch, len(attn.sets), settings, noun=NOUN, poison_outputs=True)
    return timing, float(np.median(timing.samples_ms))


def search(attn: Attention, configs: dict[str, tiles.TileConfig]) -> dict[str, Any]:
    """Time every candidate (AUTOTUNE_SETTINGS); the fastest is `chosen`. A candidate Triton cannot compile for the
    card and head dim (OutOfResources) is kept with its reason, not timed."""
    candidates: list[dict[str, Any]] = []
    for name, config in configs.items():
        launcher = attn.launcher(name, config)
        try:
            _, ms = time_config(attn, launcher, AUTOTUNE_SETTINGS)
        except Exception as error:
            if not out_of_resources(error):
                raise
            candidates.append({"name": name, "ms": None, "reason": f"OutOfResources: {str(error).strip()[:200]}"})
            continue
        candidates.append({"name": name, "ms": ms})
    return fastest(candidates)


def autotune_path(job: Job, key: str) -> Path:
    return Path(AUTOTUNE_DIR) / job.dtype.name / job.layout / f"{job.shape.name}-{key}.json"


def autotuned(attn: Attention, configs: dict[str, tiles.TileConfig]) -> dict[str, Any]:
    """The autotune choice for this job: the stored one where the same search was done before (by the point's run
    or benchmark job), else a new search, stored."""
    key = autotune_key(attn, configs, kernel=KERNEL_SOURCE, timing=AUTOTUNE_SETTINGS)
    return stored_search(autotune_path(attn.job, key), lambda: search(attn, configs))


# ---------------------------------------------------------------- run and benchmark


def footprint_bytes(job: Job) -> int:
    """One buffer set's bytes: Q, K, V and O, each once (the shape's minimum traffic)."""
    return job.shape.min_bytes(job.dtype.itemsize, job.dtype.output_itemsize)


def prepare(job: Job, flush_l2: bool) -> tuple[Attention, Launcher, Any, dict[str, Any]]:
    """The job's device operands (rotating copies larger than L2 where `flush_l2`), its configuration's launcher,
    the output of a first launch on set 0 and the autotune detail (empty for a one-configuration variant). An
    autotune search rotates through copies larger than L2 whatever the job (AUTOTUNE_SETTINGS), so the run and the
    benchmark job search alike."""
    attn = Attention.setup(job)
    l2 = attn.torch.cuda.get_device_properties(0).L2_cache_size
    configs, autotune = parse_options(job.options, tiles.TileConfig.from_config)
    detail: dict[str, Any] = {}
    if autotune:
        attn.rotate(buffer_copies(footprint_bytes(job), l2, AUTOTUNE_SETTINGS.flush_l2))
        detail["autotune"] = autotuned(attn, configs)
        name = detail["autotune"]["chosen"]
    else:
        (name,) = configs
    attn.rotate(buffer_copies(footprint_bytes(job), l2, flush_l2))
    launcher = attn.launcher(name, configs[name])
    first = launcher.checked_launch()
    detail["config_name"] = name
    return attn, launcher, first, detail


def run(job: Job) -> np.ndarray:
    attn, _, first, _ = prepare(job, flush_l2=False)
    attn.torch.cuda.synchronize()
    return np.ascontiguousarray(to_host(first))  # the layout's order, as the op's output


def benchmark(job: Job, settings: BenchSettings) -> dict[str, Any]:
    attn, launcher, _, detail = prepare(job, settings.flush_l2)
    torch, triton_version = attn.torch, attn.triton.__version__
    timing = time_graph(launcher.launch, len(attn.sets), settings, noun=NOUN, poison_outputs=True)
    timed = verified_timing(timing, launcher.launch, job.dtype.name)
    facts = kernel_facts(launcher.compiled)
    name = detail["config_name"]
    return {
        **timed,
        "method": f"{timing.method}; Triton {triton_version} fused attention {name} ({summary(facts)})",
        "device": torch.cuda.get_device_properties(0).name,
        "torch": torch.__version__,
        "triton": triton_version,
        "chosen": name,
        "detail": detail | launcher.describe() | {
            "kernel": facts, "capability": list(attn.capability), "triton": triton_version,
            "torch": torch.__version__, "cache_dir": os.environ.get("TRITON_CACHE_DIR"),
        },
    }  # fmt: skip
