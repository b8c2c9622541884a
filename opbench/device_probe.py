"""Describe the device a class of GPU jobs runs on: what the scheduler gave the job and what the card is.

The probe is itself a GPU job (it asks for one GPU like the benchmarks do), so on a cluster it reports the node
and the CUDA_VISIBLE_DEVICES that such jobs get.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opbench import provenance
from opbench.timing import gbps

_QUERY = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,pci.bus_id"


def nvidia_smi_devices() -> list[dict[str, str]]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={_QUERY}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return []
    keys = _QUERY.split(",")
    return [dict(zip(keys, (v.strip() for v in line.split(",")), strict=True)) for line in out.splitlines() if line]


# The matrix products (M, N, K) the arithmetic peaks are the best of: from 4096^3, where a 132-SM card's tiles do
# not fill every wave, to 16384^3, long enough to reach the sustained clock. A single size under-reads: 8192^3
# alone gave the H200 654 TFLOP/s in f16, below what cuDNN reached on one ResNet-50 layer.
PEAK_GEMMS: tuple[tuple[int, int, int], ...] = (
    (4096, 4096, 4096),
    (8192, 8192, 8192),
    (16384, 16384, 4096),
    (8192, 8192, 16384),
    (16384, 16384, 16384),
)
# Each product is timed as the benchmarks are (samples of at least 30 ms: the clock a sustained load gets) and in
# short bursts (2 ms samples: the boost clock a short layer may still run at); the peak is the best of all.
PEAK_SAMPLE_MS = (30.0, 2.0)
PRECISIONS = ("f32", "tf32", "f16", "bf16")  # f32 with TF32 off: the CUDA-core FFMA ceiling


@dataclass(frozen=True, kw_only=True)
class PeakTrial:
    precision: str
    mnk: tuple[int, int, int]
    min_sample_ms: float
    tflops: float


@dataclass(frozen=True, kw_only=True)
class CopyTrial:
    method: str  # "memcpy" (copy_, a memcpy node in the graph) or "kernel" (an element-wise SM kernel)
    gbps: float  # bytes read plus bytes written per second, in GB/s


def best_peaks(trials: list[PeakTrial]) -> dict[str, float]:
    """Per precision, the highest rate any trial measured."""
    peaks: dict[str, float] = {}
    for trial in trials:
        peaks[trial.precision] = max(peaks.get(trial.precision, 0.0), trial.tflops)
    return peaks


def measure_peaks() -> tuple[dict[str, float], list[PeakTrial | CopyTrial]]:
    """The card's measured ceilings, the denominators of the tables' fraction-of-peak columns, and every trial.

    Arithmetic: cuBLAS matrix products on random data (PEAK_GEMMS, PEAK_SAMPLE_MS), per precision class (f32 with
    TF32 off; tf32, f16, bf16 on tensor cores), the best per precision. Memory: a 2 GiB device-to-device copy by
    cudaMemcpy and by an element-wise kernel, the faster of the two, counting bytes read plus bytes written. Each
    trial is the median of CUDA-graph replays timed by opbench.gpu_timing, as the benchmarks are (operands far larger
    than L2: one buffer copy).
    """
    import torch

    from opbench.backends import BenchSettings
    from opbench.gpu_timing import buffer_copies, time_graph

    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size

    def median_ms(operands: list[Any], op: Callable[..., Any], min_sample_ms: float) -> float:
        """Median per-launch time of op(*operands), rotating through copies of the operands as L2 asks."""
        settings = BenchSettings(warmup_ms=50, repetitions=7, min_sample_ms=min_sample_ms, flush_l2=True)
        copies = buffer_copies(sum(t.nbytes for t in operands), l2_bytes, settings.flush_l2)
        sets = [operands] + [[t.clone() for t in operands] for _ in range(copies - 1)]
        samples = time_graph(lambda i: op(*sets[i]), copies, settings).samples_ms
        return sorted(samples)[len(samples) // 2]

    # The copies first, on a card the products have not yet heated. Timed in a CUDA graph, `copy_` (a memcpy node,
    # which the copy engines may serve) read 2.7 TB/s on an H200 and 2.4 on an H100, where the same copy timed eagerly
    # had read 4.2 and 3.0 (the probes of 2026-11-28 under results/published/), and cuDNN's depthwise kernels went
    # past 1.0 of it: a kernel's ceiling is what an SM kernel moves. So an element-wise kernel (reads and writes each
    # element once) is timed too, both are kept, and the faster is copy_gbps.
    src = torch.empty(2**29, device="cuda", dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    copy_bytes = 2 * src.nbytes
    copies = {
        "memcpy": median_ms([dst, src], torch.Tensor.copy_, PEAK_SAMPLE_MS[0]),
        "kernel": median_ms([dst, src], lambda d, s: torch.mul(s, 1.0, out=d), PEAK_SAMPLE_MS[0]),
    }
    copy_trials = [CopyTrial(method=method, gbps=gbps(copy_bytes, ms)) for method, ms in copies.items()]
    del src, dst
    dtypes = {"f32": torch.float32, "tf32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    trials = []
    for precision in PRECISIONS:
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        for m, n, k in PEAK_GEMMS:
            a = torch.randn(m, k, device="cuda", dtype=dtypes[precision])
            b = torch.randn(k, n, device="cuda", dtype=dtypes[precision])
            for min_sample_ms in PEAK_SAMPLE_MS:
                ms = median_ms([a, b], torch.matmul, min_sample_ms)
                trials.append(PeakTrial(precision=precision, mnk=(m, n, k), min_sample_ms=min_sample_ms,
                                        tflops=2 * m * n * k / (ms * 1e-3) / 1e12))  # fmt: skip
            del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    return {**best_peaks(trials), "copy_gbps": max(t.gbps for t in copy_trials)}, [*copy_trials, *trials]


def probe(device: str) -> dict[str, Any]:
    """Environment and card; the measured peaks where a GPU is visible and PyTorch is installed."""
    result: dict[str, Any] = {
        "device": device,
        "host": provenance.host(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "gpus": nvidia_smi_devices(),
        "timestamp": provenance.timestamp(),
        "peaks": {},
    }
    try:
        import torch
    except ImportError:
        result["peaks_missing"] = "PyTorch is not installed"
        return result
    if not torch.cuda.is_available():
        result["peaks_missing"] = "no CUDA device visible to PyTorch"
        return result
    result["gpu_name"] = torch.cuda.get_device_name(0)
    result["sm_count"] = torch.cuda.get_device_properties(0).multi_processor_count
    result["l2_bytes"] = torch.cuda.get_device_properties(0).L2_cache_size
    result["peaks"], trials = measure_peaks()
    result["peak_trials"] = [asdict(trial) for trial in trials]
    return result


def write_probe(device: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(probe(device), indent=1) + "\n")
