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
from pathlib import Path
from typing import Any

from opbench import provenance

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


def measure_peaks() -> dict[str, float]:
    """The card's measured ceilings, the denominators of the tables' fraction-of-peak columns.

    Arithmetic: cuBLAS matrix products of 8192^3 on random data, per precision class (f32 with TF32 off is the
    CUDA-core FFMA ceiling; tf32, f16, bf16 the tensor-core ones). Memory: a 2 GiB device-to-device copy,
    counting bytes read plus bytes written. Each is the median of CUDA-graph replays timed by
    opbench.gpu_timing, as the benchmarks are (operands far larger than L2: one buffer copy).
    """
    import torch

    from opbench.backends import BenchSettings
    from opbench.gpu_timing import buffer_copies, time_graph

    settings = BenchSettings(warmup_ms=50, repetitions=7, min_sample_ms=30, flush_l2=True)
    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size

    def median_ms(operands: list[Any], op: Callable[..., Any]) -> float:
        """Median per-launch time of op(*operands), rotating through copies of the operands as L2 asks."""
        copies = buffer_copies(sum(t.nbytes for t in operands), l2_bytes, settings.flush_l2)
        sets = [operands] + [[t.clone() for t in operands] for _ in range(copies - 1)]
        samples = time_graph(lambda i: op(*sets[i]), copies, settings).samples_ms
        return sorted(samples)[len(samples) // 2]

    peaks: dict[str, float] = {}
    size = 8192
    for key, dtype, tf32 in (
        ("f32", torch.float32, False),
        ("tf32", torch.float32, True),
        ("f16", torch.float16, False),
        ("bf16", torch.bfloat16, False),
    ):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(size, size, device="cuda", dtype=dtype)
        b = torch.randn(size, size, device="cuda", dtype=dtype)
        ms = median_ms([a, b], torch.matmul)
        peaks[key] = 2 * size**3 / (ms * 1e-3) / 1e12
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    src = torch.empty(2**29, device="cuda", dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    ms = median_ms([dst, src], torch.Tensor.copy_)
    peaks["copy_gbps"] = 2 * src.numel() * 4 / (ms * 1e-3) / 1e9
    return peaks


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
    result["peaks"] = measure_peaks()
    return result


def write_probe(device: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(probe(device), indent=1) + "\n")
