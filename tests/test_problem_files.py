"""A problem's files on disk (opbench.jobs.make_inputs, compute_reference): inputs in the dtype's own width and the
product scales in float32, read back as the values the jobs used before (float32 inputs, a float64 bound), so that a
large op's many files fit a GPU node's disk without changing a verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opbench import jobs
from opbench.dtypes import get_dtype
from opbench.ops import get_op

CONV = {"op": "conv2d", "shape": "n2_h9_w7_c5_k6_r3_s3_st1_p1", "layout": "nhwc_hwcf"}
ATTENTION = {"op": "attention", "shape": "b2_h2_s33_d16_causal", "layout": "bhsd"}


@pytest.mark.parametrize("problem", [CONV, ATTENTION], ids=["conv2d", "attention"])
@pytest.mark.parametrize(("dtype", "stored"), [("f32", np.float32), ("f16", np.float16), ("bf16", np.uint16)])
def test_inputs_are_stored_in_the_dtypes_width_and_read_back_as_generated(
    tmp_path: Path, problem: dict, dtype: str, stored: type
) -> None:
    op = get_op(problem["op"])
    path = tmp_path / "inputs.npz"
    jobs.make_inputs(**problem, dtype=dtype, seed=5, out=path)
    generated = op.make_inputs(op.shape_from_name(problem["shape"]), get_dtype(dtype), problem["layout"], 5)
    with np.load(path) as files:
        assert {name: files[name].dtype for name in files.files} == {name: np.dtype(stored) for name in generated}
    loaded = jobs.load_inputs(path, problem["op"])
    assert list(loaded) == list(op.input_names)
    for name, values in generated.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], values)
        assert np.abs(values).max() > 0  # random values, not zeros


def test_a_value_the_16_bit_type_cannot_hold_keeps_the_array_in_float32() -> None:
    values = np.array([1.0, 0.5, 1.0 + 2.0**-20], dtype=np.float32)
    for element in ("f16", "bf16"):
        kept = jobs.stored_array(values, get_dtype(element).numpy)
        assert kept.dtype == np.float32
        np.testing.assert_array_equal(kept, values)
    exact = np.array([1.0, -0.5, 3.0], dtype=np.float32)
    assert jobs.stored_array(exact, get_dtype("bf16").numpy).dtype == np.uint16


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_the_verify_job_on_float32_scales_gives_the_in_process_float64_verdict(tmp_path: Path, dtype: str) -> None:
    """The stored scales are float32; the verify job's verdict (a correct output and one with one element zeroed)
    is the one judge_job reaches from the float64 scales in one process, to the scale's float32 rounding."""
    op = get_op(CONV["op"])
    files = {name: tmp_path / name for name in ("inputs.npz", "reference.npy", "scale.npz", "output.npy", "v.json")}
    jobs.make_inputs(**CONV, dtype=dtype, seed=3, out=files["inputs.npz"])
    jobs.compute_reference(**CONV, inputs=files["inputs.npz"], out=files["reference.npy"], scale_out=files["scale.npz"])
    with np.load(files["scale.npz"]) as products:
        assert products["scale"].dtype == np.float32
    job = jobs.Job(
        op=CONV["op"], shape=op.shape_from_name(CONV["shape"]), dtype=get_dtype(dtype), layout=CONV["layout"],
        variant="v", inputs=jobs.load_inputs(files["inputs.npz"], CONV["op"]), artifact=None, options={},
    )  # fmt: skip
    correct = (
        np.load(files["reference.npy"]).astype(get_dtype(dtype).numpy).astype(np.float32)
    )  # as rounded to the dtype
    zeroed = correct.copy()
    zeroed.flat[7] = 0
    tolerance = {"f32": 1e-5, "f16": 5e-3, "bf16": 3e-2}[dtype]
    for output, status in ((correct, "PASS"), (zeroed, "FAIL")):
        np.save(files["output.npy"], output)
        jobs.verify(output=files["output.npy"], reference=files["reference.npy"], scale=files["scale.npz"],
                    tolerance=tolerance, dtype=dtype, precision=dtype, out=files["v.json"])  # fmt: skip
        on_disk = json.loads(files["v.json"].read_text())
        in_process = jobs.judge_job(job, output, tolerance, dtype).to_dict()
        assert on_disk["status"] == in_process["status"] == status
        assert on_disk["worst_element"] == in_process["worst_element"]
        assert on_disk["elem_ratio"] == pytest.approx(in_process["elem_ratio"], rel=1e-6)
