"""Describe the device a class of GPU jobs runs on: what the scheduler gave the job and what the card is.

The probe is itself a GPU job (it asks for one GPU like the benchmarks do), so on a cluster it reports the node
and the CUDA_VISIBLE_DEVICES that such jobs get.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


def _median_ms(torch: Any, fn: Any, inner: int, reps: int = 7) -> float:
    """Median over reps of the mean time of `inner` back-to-back calls, from CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return sorted(times)[len(times) // 2]


def measure_peaks() -> dict[str, float]:
    """The card's measured ceilings, the denominators of the tables' fraction-of-peak columns.

    Arithmetic: cuBLAS matrix products of 8192^3 on random data, per precision class (f32 with TF32 off is the
    CUDA-core FFMA ceiling; tf32, f16, bf16 the tensor-core ones). Memory: a 2 GiB device-to-device copy,
    counting bytes read plus bytes written.
    """
    import torch

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
        ms = _median_ms(torch, lambda a=a, b=b: torch.matmul(a, b), inner=5 if key == "f32" else 20)
        peaks[key] = 2 * size**3 / (ms * 1e-3) / 1e12
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    src = torch.empty(2**29, device="cuda", dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    ms = _median_ms(torch, lambda: dst.copy_(src), inner=10)
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


def read_peaks(probe: Path) -> dict[str, float]:
    """The measured peaks of a probe's JSON (empty where none were measured): the one reader of that file."""
    return json.loads(probe.read_text()).get("peaks", {})


def write_probe(device: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(probe(device), indent=1) + "\n")
