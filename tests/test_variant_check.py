"""scripts/variant_check.py without a GPU: its choice of suite and baseline per op, the one-op rule, and a row's
verdict and rates through a stand-in backend (the kernels themselves need a GPU)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opbench.backends import BenchSettings, Job
from opbench.dtypes import DType
from opbench.ops import get_op

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "variant_check.py"
spec = importlib.util.spec_from_file_location("variant_check", SCRIPT)
assert spec and spec.loader
variant_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(variant_check)

TOLERANCES = {"f32": 1e-4, "tf32": 2e-3, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
SETTINGS = BenchSettings(warmup_ms=1, repetitions=3, min_sample_ms=1, flush_l2=True)


class StandIn:
    """A backend that returns the float64 reference (or it with one element moved) and a fixed 0.1 ms."""

    def __init__(self, wrong: bool = False) -> None:
        self.wrong = wrong

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        return dtype.tolerance_key

    def run(self, job: Job) -> np.ndarray:
        out = get_op(job.op).reference(job.inputs, job.shape, job.layout).astype(np.float32)
        if self.wrong:
            out.flat[out.size // 2] += 0.05 * float(np.sqrt(np.mean(np.square(out))))
        return out

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        return {"samples_ms": [0.1, 0.1, 0.1]}


def test_each_op_has_a_suite_and_a_baseline() -> None:
    for op in ("conv2d", "depthwise_conv2d", "separable_conv2d", "attention"):
        assert variant_check.suite_layers(op, None), op
    assert variant_check.baseline("attention", "f16", "fp32") == ("sdpa", "flash")
    assert variant_check.baseline("conv2d", "f32", "tf32") == ("cudnn", "tf32")
    assert variant_check.baseline("depthwise_conv2d", "f32", "fp32") == ("cudnn", "fp32")


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "depthwise_smem,naive"], "the variants compute different ops"),
    (["--variants", "depthwise_smem", "--edge"], "--edge is conv2d's"),
    (["--variants", "separable_fused", "--suite", "nope"], "no suite 'nope'"),
])  # fmt: skip
def test_bad_arguments_stop_before_any_build(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("op", ["depthwise_conv2d", "separable_conv2d", "attention"])
def test_a_row_is_judged_like_the_workflow_and_gets_its_rates(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    layer = dict(variant_check.suite_layers(op, None)[-1])
    if op == "attention":
        layer.update(b=1, h=1, s=64)  # small enough for the float64 reference here
    monkeypatch.setattr(variant_check, "get_backend", lambda name: StandIn())
    row = variant_check.check_one("cuda", "x", None, op, layer, 1, "f16", SETTINGS, TOLERANCES, time_it=True)
    shape = get_op(op).shape_from_layer(layer, 1)
    assert row["status"] == "PASS" and row["median_ms"] == pytest.approx(0.1)
    assert row["tflops"] == pytest.approx(shape.flops() / 0.1e-3 / 1e12)
    assert row["gbps"] == pytest.approx(shape.min_bytes(2, 2) / 0.1e-3 / 1e9)
    monkeypatch.setattr(variant_check, "get_backend", lambda name: StandIn(wrong=True))
    row = variant_check.check_one("cuda", "x", None, op, layer, 1, "f16", SETTINGS, TOLERANCES, time_it=True)
    assert row["status"] == "FAIL" and "tflops" not in row  # one moved element fails the element-wise bound
