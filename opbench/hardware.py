"""What this machine has: devices the backends need, and the machine's name for results/<machine>/."""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess


@functools.cache
def nvidia_gpus() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs that nvidia-smi lists (honouring CUDA_VISIBLE_DEVICES is left to CUDA)."""
    if not shutil.which("nvidia-smi"):
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def devices(gpu_setting: bool | str) -> set[str]:
    """The device kinds present: always "cpu"; "cuda" when a GPU is detected (gpu: auto) or forced (gpu: true)."""
    found = {"cpu"}
    if gpu_setting is True or (gpu_setting == "auto" and nvidia_gpus()):
        found.add("cuda")
    if os.path.exists("/dev/kfd"):
        found.add("rocm")
    return found


def device_name(device: str) -> str:
    """What a row ran on, for the `device` column: the CPU's model, the GPU's name, else the device kind."""
    if device == "cpu":
        return cpu_model()
    if device == "cuda" and nvidia_gpus():
        return nvidia_gpus()[0]
    return device


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def machine_name(setting: str, gpu_setting: bool | str) -> str:
    """results/<machine>/: the config's name, else the GPU's model where GPU rows run, else the CPU's."""
    if setting != "auto":
        return setting
    gpus = nvidia_gpus() if "cuda" in devices(gpu_setting) else ()
    return slug(gpus[0]) if gpus else "cpu-" + slug(cpu_model())
