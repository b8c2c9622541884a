"""scripts/sanitize_variant.py: its reading of compute-sanitizer's output (the sanitizer itself needs a GPU)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sanitize_variant.py"
spec = importlib.util.spec_from_file_location("sanitize_variant", SCRIPT)
assert spec and spec.loader
sanitize_variant = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sanitize_variant)


def test_error_count_reads_the_last_summary() -> None:
    assert sanitize_variant.error_count("========= ERROR SUMMARY: 0 errors\n") == 0
    assert sanitize_variant.error_count("a\n========= ERROR SUMMARY: 1 error\n") == 1
    assert sanitize_variant.error_count("========= ERROR SUMMARY: 0 errors\n========= ERROR SUMMARY: 12 errors") == 12
    assert sanitize_variant.error_count("error: no CUDA device\n") is None


@pytest.mark.parametrize(
    ("returncode", "output", "expected"),
    [(0, "========= ERROR SUMMARY: 0 errors", 0), (1, "========= ERROR SUMMARY: 2 errors", 2),
     (1, "FAIL: harness error\n========= ERROR SUMMARY: 0 errors", None), (127, "compute-sanitizer: not found", None)],
)  # fmt: skip
def test_a_failed_harness_is_not_a_clean_run(
    monkeypatch: pytest.MonkeyPatch, returncode: int, output: str, expected: int | None
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, stdout=output, stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    errors, _ = sanitize_variant.sanitize(Path("bin"), "synccheck", "n1_h30_w30_c3_k64_r7_s7_st2_p3", "f16")
    assert errors == expected
    cmd = calls[0]
    assert cmd[:3] == ["compute-sanitizer", "--tool", "synccheck"]
    assert cmd[cmd.index("--c") + 1] == "3" and cmd[cmd.index("--stride-h") + 1] == "2"


def test_exit_status_is_1_when_any_run_is_not_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    results = iter([(0, ""), (None, "harness failed")])
    monkeypatch.setattr(sanitize_variant, "sanitize", lambda *args: next(results))
    shapes = "n1_h8_w8_c8_k8_r1_s1_st1_p0,n2_h8_w8_c8_k8_r1_s1_st1_p0"
    argv = ["sanitize_variant.py", "--binary", "bin", "--tools", "memcheck", "--dtypes", "f16", "--shapes", shapes]
    monkeypatch.setattr(sys, "argv", argv)
    assert sanitize_variant.main() == 1


def test_random_problem_args_write_the_harness_inputs(tmp_path: Path) -> None:
    from opbench.backends.cuda import random_problem_args
    from opbench.ops import get_op

    shape = get_op("conv2d").shape_from_name("n2_h5_w6_c3_k4_r3_s3_st2_p1")
    args = random_problem_args(shape, tmp_path, seed=3)
    x = np.load(args[args.index("--input") + 1])
    w = np.load(args[args.index("--filter") + 1])
    assert x.shape == (2, 5, 6, 3) and w.shape == (4, 3, 3, 3) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and np.std(x) > 0.5  # random, not zeros
    assert args[args.index("--output") + 1] == str(tmp_path / "y.npy")
    assert args[args.index("--stride-h") + 1] == "2" and args[args.index("--pad-w") + 1] == "1"
