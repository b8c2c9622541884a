"""scripts/run_example.sh on the hand-written programs in mlir-examples/: compile, run on llvm-cpu, check the results.

The IREE tools are taken from PATH as it is; where iree-compile is not there, from the bin/ of the Python running
the tests (a venv's pytest) and then from the repository's .venv/bin (what `make bench` sets up). Without them the
tests are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "run_example.sh"
EXAMPLES = REPO / "mlir-examples"


def _tool_env() -> dict[str, str] | None:
    """The environment to run the script in, with iree-compile and iree-run-module on PATH; None if not found."""
    path = os.environ.get("PATH", "")
    candidates = [path, os.pathsep.join([str(Path(sys.executable).parent), path]),
                  os.pathsep.join([str(REPO / ".venv" / "bin"), path])]  # fmt: skip
    for candidate in candidates:
        if shutil.which("iree-compile", path=candidate) and shutil.which("iree-run-module", path=candidate):
            env = {k: v for k, v in os.environ.items() if k not in ("IREE_COMPILE", "IREE_RUN_MODULE")}
            env["PATH"] = candidate
            return env
    return None


ENV = _tool_env()
pytestmark = pytest.mark.skipif(
    ENV is None,
    reason="iree-compile / iree-run-module not found on PATH, next to the test's Python or in .venv/bin "
    "(run `make bench` or install iree-base-compiler and iree-base-runtime)",
)


def run_example(file: Path, *backend: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(file), *backend],
        env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def result_line(proc: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"expected one line starting with {prefix!r} in:\n{proc.stdout}"
    return lines[0]


def test_elementwise_llvm_cpu():
    proc = run_example(EXAMPLES / "elementwise.mlir", "llvm-cpu")
    assert result_line(proc, "10xf32=") == "10xf32=90 81 72 63 54 45 36 27 18 9"


def test_matmul_dynamic_llvm_cpu():
    # [[1 2 3][4 5 6]] x [[7 8][9 10][11 12]] = [[58 64][139 154]], the inputs in the file's RUN-INPUT lines.
    proc = run_example(EXAMPLES / "matmul_dynamic.mlir")  # llvm-cpu is the default
    assert "EXEC @foo" in proc.stdout
    assert result_line(proc, "2x2xf32=") == "2x2xf32=[58 64][139 154]"


def test_conv2d_nhwc_llvm_cpu():
    proc = run_example(EXAMPLES / "conv2d_nhwc.mlir", "llvm-cpu")
    line = result_line(proc, "1x8x8x8xf32=")
    values = np.array([float(v) for v in re.findall(r"[-+0-9.eE]+", line.split("=", 1)[1])])
    assert values.size == 8 * 8 * 8, line
    out = values.reshape(1, 8, 8, 8)
    # All-ones 1x8x8x4 input and 3x3x4x8 filter, pad 1: 4 channels x the 3x3 taps that land inside the image.
    assert np.all(out[0, [0, 0, 7, 7], [0, 7, 0, 7], :] == 16)  # corners: 2x2 taps
    edge = np.zeros((8, 8), dtype=bool)
    edge[[0, 7], 1:7] = edge[1:7, [0, 7]] = True
    assert np.all(out[0][edge] == 24)  # edges: 2x3 taps
    assert np.all(out[0, 1:7, 1:7, :] == 36)  # interior: 3x3 taps
    taps = np.array([2, 3, 3, 3, 3, 3, 3, 2])
    np.testing.assert_array_equal(out[0], np.broadcast_to((4 * np.outer(taps, taps))[:, :, None], (8, 8, 8)))


def _has_device(backend: str) -> bool:
    if backend == "cuda":
        return shutil.which("nvidia-smi") is not None and subprocess.run(
            ["nvidia-smi"], capture_output=True, check=False).returncode == 0  # fmt: skip
    if backend == "rocm":
        return Path("/dev/kfd").exists()
    return shutil.which("vulkaninfo") is not None and subprocess.run(
        ["vulkaninfo", "--summary"], capture_output=True, check=False).returncode == 0  # fmt: skip


@pytest.mark.parametrize("backend", ["rocm", "vulkan-spirv", "cuda"])
def test_compile_only_without_device(backend):
    if _has_device(backend):
        pytest.skip(f"this machine has a {backend} device: the script runs the module instead of compiling only")
    proc = run_example(EXAMPLES / "elementwise.mlir", backend)
    assert proc.returncode == 0, proc.stderr
    assert f"compile-only: no {backend} device on this machine" in proc.stdout.splitlines()
    assert (REPO / "compiled" / "examples" / backend / "elementwise.vmfb").is_file()


def test_unknown_backend_is_a_usage_error():
    proc = run_example(EXAMPLES / "elementwise.mlir", "metal")
    assert proc.returncode == 2
    assert "unknown backend 'metal'" in proc.stderr
    assert "usage:" in proc.stderr


def test_missing_file_is_a_usage_error(tmp_path):
    proc = run_example(tmp_path / "absent.mlir")
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "absent.mlir" in proc.stderr


def test_syntax_error_shows_iree_compile_diagnostic(tmp_path):
    bad = tmp_path / "syntax_error.mlir"
    bad.write_text("// RUN-FUNCTION: f\n// RUN-INPUT: 1xf32=1\nfunc.func @f(%x: tensor<1xf32> -> tensor<1xf32> {\n")
    proc = run_example(bad, "llvm-cpu")
    assert proc.returncode != 0
    # iree-compile's own diagnostic, FILE:LINE:COL: error: ..., pointing at the broken line 3.
    assert re.search(r"syntax_error\.mlir:3:\d+: error: ", proc.stderr), proc.stderr
    assert "EXEC" not in proc.stdout
