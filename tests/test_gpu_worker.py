"""The GPU worker on the GPU: points served by one long-lived worker verify like points run in their own process,
the worker keeps its CUDA context and harness processes between them, and a point after the first costs a fraction
of a second. Marked `gpu`; skipped cleanly without an NVIDIA GPU."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from opbench import hardware, jobs, worker_client
from opbench.backends.cudnn import torch_missing
from opbench.verify import judge

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
    pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing())),
]
SHAPES = ["n2_h14_w14_c64_k64_r3_s3_st1_p1", "n3_h13_w11_c37_k70_r3_s3_st1_p1", "n1_h9_w9_c130_k66_r1_s1_st1_p0"]
SETTINGS = {"warmup_ms": 5, "repetitions": 5, "min_sample_ms": 2, "flush_l2": True}


@pytest.fixture(scope="module")
def runtime() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="obg", dir="/tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(folder))
        yield folder
        worker_client.shutdown()


def _point(tmp_path: Path, shape: str) -> dict:
    problem = dict(op="conv2d", shape=shape, dtype="f16", layout="nhwc_fhwc")
    jobs.make_inputs(**problem, seed=11, out=tmp_path / f"{shape}.npz")
    jobs.compute_reference(
        op="conv2d", shape=shape, layout="nhwc_fhwc", inputs=tmp_path / f"{shape}.npz",
        out=tmp_path / f"{shape}.ref.npy", scale_out=tmp_path / f"{shape}.scale.npz",
    )  # fmt: skip
    return {**problem, "backend": "cudnn", "variant": "fp16", "inputs": str(tmp_path / f"{shape}.npz"),
            "artifact": None, "options": {}}  # fmt: skip


def test_served_points_verify_and_cost_a_fraction_of_a_second(runtime: Path, tmp_path: Path) -> None:
    served: list[float] = []
    pids = set()
    for shape in SHAPES:
        job = _point(tmp_path, shape)
        for command, extra in (("run", {}), ("benchmark", {"settings": SETTINGS})):
            started = time.monotonic()
            answer = worker_client.request(
                command, {**job, **extra, "out": str(tmp_path / f"{shape}.{command}")}, log_dir=tmp_path,
                timeout_s=300,
            )  # fmt: skip
            served.append(time.monotonic() - started)
            pids.add(answer["pid"])
        output = np.load(tmp_path / f"{shape}.run.npy")
        reference = np.load(tmp_path / f"{shape}.ref.npy")
        assert judge(output, reference, tolerance=5e-3).status == "PASS", shape
        timing = json.loads((tmp_path / f"{shape}.benchmark").read_text())
        assert len(timing["samples_ms"]) == SETTINGS["repetitions"] and timing["bench_output_consistent"] is not False
        # its phases (opbench.phases): the worker's and time_graph's, reached through the worker's recording
        inside = ("first_launch", "warmup", "capture", "first_replay", "samples", "check_outputs")
        steps = {"to_worker", "worker_setup", "load_inputs", "backend", *(f"backend/{step}" for step in inside)}
        assert steps <= set(timing["phases_s"]), timing["phases_s"]
    assert len(pids) == 1  # one worker served every point
    # The first request paid the worker's start (imports, CUDA context); the runs after it pay a round trip and
    # their work. A benchmark's own time is its warm-up and samples (~0.1 s at these settings).
    runs_after_first = served[2::2]
    assert max(runs_after_first) < 0.5, served
