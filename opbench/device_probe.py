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


def probe(device: str) -> dict[str, Any]:
    return {
        "device": device,
        "host": provenance.host(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "gpus": nvidia_smi_devices(),
        "timestamp": provenance.timestamp(),
    }


def write_probe(device: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(probe(device), indent=1) + "\n")
