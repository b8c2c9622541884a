"""Where a result came from: toolchain versions, the commit, the host. Read once per process."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The environment variable that carries a run's id to its jobs (set by `opbench bench`, or by the workflow when
# Snakemake is called directly; Snakemake's `envvars` passes it to cluster jobs).
RUN_ID_ENV = "OPBENCH_RUN_ID"


def new_run_id() -> str:
    """A fresh run id: the UTC start time and six random hex digits, e.g. `20261206T074512Z-3fa91c`."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


def run_id() -> str | None:
    """The id of the run this process belongs to (None outside a run: a job started by hand)."""
    return os.environ.get(RUN_ID_ENV) or None


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def _cached_version_output(path: str) -> str | None:
    """`path --version`, remembered per (path, size, mtime) in the user's cache: iree-compile takes ~0.4 s to
    answer, and every workflow start and record job asks. An upgraded binary has another size or mtime."""
    stat = os.stat(path)
    key = f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "opbench" / "tool-versions.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**known, key: out}))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home only costs the next caller the subprocess
    return out


@functools.cache
def iree_compile_version() -> str | None:
    """e.g. '3.13.0rc20261016 @ 89ece87b...'; None where iree-compile is not installed (a run-only GPU node)."""
    from opbench.iree_tools import tool

    try:
        path = tool("iree-compile")
    except (FileNotFoundError, ImportError):
        return None
    match = re.search(r"IREE compiler version (\S+ @ \S+)", _cached_version_output(path) or "")
    return match.group(1) if match else None


@functools.cache
def iree_runtime_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("iree-base-runtime")
    except Exception:
        return None


@functools.cache
def nvcc_version() -> str | None:
    """e.g. 'release 13.0, V13.0.88'; None where nvcc is not on PATH."""
    if not shutil.which("nvcc"):
        return None
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(release [\d.]+, V[\d.]+)", out)
    return match.group(1) if match else None


@functools.cache
def cuda_driver_version() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    return _first_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])


@functools.cache
def git_commit() -> str:
    """HEAD's hash, '+dirty' when tracked files differ; OPBENCH_COMMIT where the tree is no git checkout."""
    if os.environ.get("OPBENCH_COMMIT"):
        return os.environ["OPBENCH_COMMIT"]
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    if head is None:
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--"], capture_output=True, check=False
    ).returncode
    return head[:12] + ("+dirty" if dirty else "")


def host() -> str:
    return platform.node()


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
