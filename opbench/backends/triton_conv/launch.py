"""The GPU side of the triton backend (imported when a job runs): operands on the device, one launch of the kernel
with a tile configuration, the autotune variant's search, and run()/benchmark().

Timing is opbench.gpu_timing.time_graph's, as for every PyTorch-side backend: CUDA events around a CUDA-graph replay
of many launches rotating through input, filter and output copies larger than L2; the timed outputs must equal a
fresh launch on each buffer set. The autotune variant times each candidate configuration the same way (with
AUTOTUNE_SETTINGS, shorter) and keeps the fastest; its choice is stored under compiled/triton/autotune/ (keyed by the
shape, dtype, candidates, card, Triton version and kernel source), so the run job (verified) and the benchmark job
(timed) use the same configuration whichever runs first.

Triton's compile cache is compiled/triton/triton-cache (TRITON_CACHE_DIR, set before the first compile): a kernel
compiled for one job is loaded, not compiled again, by the next job with the same source, constants and tile.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opbench.backends.base import BenchSettings, Job
from opbench.backends.triton_conv import asm, gemm
from opbench.backends.triton_variants import autotune_key, fastest, out_of_resources, parse_options, stored_search
from opbench.gpu_timing import buffer_copies, time_graph, to_host, torch_dtype, verified_timing

CACHE_DIR = "compiled/triton/triton-cache"  # Triton's compile cache (compiled/<backend>/..., as opbench.paths names)
AUTOTUNE_DIR = "compiled/triton/autotune"  # the autotune variant's choices
KERNEL_SOURCE = Path(__file__).with_name("kernel.py")
# The autotune search's timing per candidate: short, the same in the run and the benchmark job.
AUTOTUNE_SETTINGS = BenchSettings(warmup_ms=10, repetitions=5, min_sample_ms=2, flush_l2=True)


def set_cache_dir() -> Path:
    """Point Triton's compile cache at compiled/triton/triton-cache (under the job's working directory, the
    workflow's root) before anything compiles; every job sets it (a GPU worker also serves other backends)."""
    path = Path(CACHE_DIR).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TRITON_CACHE_DIR"] = str(path)
    return path


@dataclass
class Conv:
    """One job's convolution on the device: the operands (rotating copies), the kernel and its launches."""

    job: Job
    torch: Any
    triton: Any
    sets: list[tuple[Any, Any]] = field(default_factory=list)  # (x NHWC, w KRSC) per buffer set
    capability: tuple[int, int] = (0, 0)
    has_descriptors: bool = False

    @classmethod
    def setup(cls, job: Job) -> Conv:
        set_cache_dir()
        import torch
        import triton

        dtype = torch_dtype(torch, job.dtype.name)
        x, w = (
            torch.from_numpy(np.ascontiguousarray(job.inputs[name])).to(device="cuda", dtype=dtype)
            for name in ("input", "filter")
        )
        try:
            from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401

            has_descriptors = True
        except ImportError:
            has_descriptors = False
        return cls(
            job=job, torch=torch, triton=triton, sets=[(x, w)],
            capability=tuple(torch.cuda.get_device_capability()), has_descriptors=has_descriptors,
        )  # fmt: skip

    def rotate(self, copies: int) -> None:
        """Buffer sets 1 .. copies-1: clones of set 0."""
        x, w = self.sets[0]
        self.sets = [(x, w)] + [(x.clone(), w.clone()) for _ in range(copies - 1)]

    def tma(self, config: gemm.TileConfig) -> tuple[bool, str]:
        return gemm.tma_decision(
            config=config, dtype=self.job.dtype.name, shape=self.job.shape, triton_version=self.triton.__version__,
            capability=self.capability, has_descriptors=self.has_descriptors,
        )  # fmt: skip

    def launcher(self, config: gemm.TileConfig) -> Launcher:
        from opbench.backends.triton_conv.kernel import conv2d_nhwc_krsc

        return Launcher(self, config, conv2d_nhwc_krsc, self.tma(config))


class Launcher:
    """Launches of one configuration: `launch(i)` computes the convolution on buffer set i into a new output tensor
    and returns it (what time_graph keeps per set); `compiled` is the CompiledKernel of the first launch."""

    def __init__(self, conv: Conv, config: gemm.TileConfig, kernel: Any, tma: tuple[bool, str]) -> None:
        shape = conv.job.shape
        self.conv, self.config, self.kernel = conv, config, kernel
        self.use_tma, self.tma_reason = tma
        self.walk = gemm.reduction_walk(shape.c, config.block_k)
        m = shape.n * shape.p * shape.q
        self.grid = (math.ceil(m / config.block_m) * math.ceil(shape.k / config.block_n),)
        self.out_shape = (shape.n, shape.p, shape.q, shape.k)
        self.descriptors: dict[int, Any] = {}
        self.compiled: Any = None

    def descriptor(self, i: int) -> Any:
        """Set i's filter as a host-side TMA tensor descriptor over the [K, R*S*C] matrix (None without TMA)."""
        if not self.use_tma:
            return None
        if i not in self.descriptors:
            from triton.tools.tensor_descriptor import TensorDescriptor

            w = self.conv.sets[i][1]
            w2d = w.view(w.shape[0], -1)
            self.descriptors[i] = TensorDescriptor.from_tensor(w2d, [self.config.block_n, self.config.block_k])
        return self.descriptors[i]

    def launch(self, i: int) -> Any:
        shape, config = self.conv.job.shape, self.config
        x, w = self.conv.sets[i]
        y = self.conv.torch.empty(self.out_shape, dtype=x.dtype, device=x.device)
        compiled = self.kernel[self.grid](
            x, w, self.descriptor(i), y,
            shape.n, shape.h, shape.w, shape.c, shape.k, shape.p, shape.q, shape.r, shape.s,
            shape.stride[0], shape.stride[1], shape.pad[0], shape.pad[1], shape.dilation[0], shape.dilation[1],
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, GROUP_M=config.group_m,
            TAP_WALK=self.walk == "tap", USE_TMA=self.use_tma,
            INPUT_PRECISION="tf32" if self.conv.job.dtype.name == "f32" else None,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )  # fmt: skip
        if self.compiled is None:
            self.compiled = compiled
        return y

    def describe(self) -> dict[str, Any]:
        return {
            "config": self.config.to_config(), "reduction_walk": self.walk, "tma": self.use_tma,
            "tma_reason": self.tma_reason, "grid": list(self.grid),
        }  # fmt: skip


# ---------------------------------------------------------------- the autotune variant


def time_config(conv: Conv, launcher: Launcher, settings: BenchSettings) -> tuple[Any, float]:
    """time_graph over the launcher's launches: (GraphTiming, median ms)."""
    timing = time_graph(launcher.launch, len(conv.sets), settings, noun="convolutions", poison_outputs=True)
    return timing, float(np.median(timing.samples_ms))


def search(conv: Conv, configs: dict[str, gemm.TileConfig]) -> dict[str, Any]:
    """Time every candidate that fits the dtype (AUTOTUNE_SETTINGS); the fastest is `chosen`. A candidate Triton
    cannot compile for the card (OutOfResources) is kept with its reason, not timed."""
    candidates: list[dict[str, Any]] = []
    for name, config in configs.items():
        entry: dict[str, Any] = {"name": name}
        why = gemm.fits(config, conv.job.dtype.name)
        if why:
            candidates.append(entry | {"ms": None, "reason": why})
            continue
        launcher = conv.launcher(config)
        try:
            _, ms = time_config(conv, launcher, AUTOTUNE_SETTINGS)
        except Exception as error:
            if not out_of_resources(error):
                raise
            candidates.append(entry | {"ms": None, "reason": f"OutOfResources: {str(error).strip()[:200]}"})
            continue
        candidates.append(entry | {"ms": ms, "tma": launcher.use_tma, "reduction_walk": launcher.walk})
    return fastest(candidates)


def autotuned(conv: Conv, configs: dict[str, gemm.TileConfig]) -> dict[str, Any]:
    """The autotune choice for this job: the stored one (compiled/triton/autotune/) where the same search was done
    before (by the point's run or benchmark job), else a new search, stored."""
    key = autotune_key(conv, configs, kernel=KERNEL_SOURCE, timing=AUTOTUNE_SETTINGS)
    path = Path(AUTOTUNE_DIR) / conv.job.dtype.name / f"{conv.job.shape.name}-{key}.json"
    return stored_search(path, lambda: search(conv, configs))


# ---------------------------------------------------------------- run and benchmark


def prepare(job: Job, flush_l2: bool) -> tuple[Conv, Launcher, dict[str, Any]]:
    """The job's device operands (rotating copies larger than L2 where `flush_l2`), its configuration's launcher and
    the autotune detail (empty for a one-configuration variant). An autotune search rotates through copies larger
    than L2 whatever the job (AUTOTUNE_SETTINGS), so the run and the benchmark job search alike."""
    conv = Conv.setup(job)
    l2 = conv.torch.cuda.get_device_properties(0).L2_cache_size
    configs, autotune = parse_options(job.options, gemm.TileConfig.from_config)
    detail: dict[str, Any] = {}
    if autotune:
        conv.rotate(buffer_copies(footprint_bytes(job), l2, AUTOTUNE_SETTINGS.flush_l2))
        detail["autotune"] = autotuned(conv, configs)
        name = detail["autotune"]["chosen"]
    else:
        (name,) = configs
        why = gemm.fits(configs[name], job.dtype.name)
        if why:
            raise RuntimeError(f"triton variant {job.variant}: {why}")
    conv.rotate(buffer_copies(footprint_bytes(job), l2, flush_l2))
    launcher = conv.launcher(configs[name])
    detail["config_name"] = name
    return conv, launcher, detail


def run(job: Job) -> np.ndarray:
    conv, launcher, _ = prepare(job, flush_l2=False)
    y = launcher.launch(0)
    conv.torch.cuda.synchronize()
    return np.ascontiguousarray(to_host(y))  # NPQK: the nhwc_fhwc layout's output order


def footprint_bytes(job: Job) -> int:
    """One buffer set's bytes: X, W and Y, each once (the shape's minimum traffic)."""
    return job.shape.min_bytes(job.dtype.itemsize, job.dtype.output_itemsize)


def benchmark(job: Job, settings: BenchSettings) -> dict[str, Any]:
    conv, launcher, detail = prepare(job, settings.flush_l2)
    torch = conv.torch
    timing = time_graph(launcher.launch, len(conv.sets), settings, noun="convolutions", poison_outputs=True)
    timed = verified_timing(timing, launcher.launch, job.dtype.name)
    facts = asm.kernel_facts(launcher.compiled)
    name = detail["config_name"]
    filter_path = "TMA filter" if launcher.use_tma else "filter by pointer loads"
    props = torch.cuda.get_device_properties(0)
    return {
        **timed,
        "method": (
            f"{timing.method}; Triton {conv.triton.__version__} kernel {name} ({launcher.walk} walk, {filter_path}; "
            f"{asm.summary(facts)})"
        ),
        "device": props.name,
        "torch": torch.__version__,
        "triton": conv.triton.__version__,
        "chosen": name,
        "detail": detail | launcher.describe() | {
            "kernel": facts, "capability": list(conv.capability), "triton": conv.triton.__version__,
            "torch": torch.__version__, "cache_dir": os.environ.get("TRITON_CACHE_DIR"),
        },
    }  # fmt: skip
