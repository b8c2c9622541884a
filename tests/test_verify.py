"""verify.judge and relative_error: right answers pass, wrong ones fail at the configured tolerances."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from opbench.config import load
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.ops.conv2d.shape import Conv2dShape
from opbench.verify import ErrorModel, judge, relative_error

REPO = Path(__file__).resolve().parents[1]
TOLERANCES = load()["tolerances"]
OP = get_op("conv2d")
SHAPE = Conv2dShape(n=2, h=9, w=7, c=3, k=4, r=3, s=3, stride=(2, 2), pad=(1, 1))
LAYOUT = "nhwc_hwcf"  # output N,P,Q,K
Problem = tuple[dict[str, np.ndarray], np.ndarray]  # inputs, float64 reference


def tolerance(dtype: str) -> float:
    return float(TOLERANCES[get_dtype(dtype).tolerance_key])


@pytest.fixture
def problem() -> Problem:
    seed = int(np.random.default_rng().integers(2**32))
    inputs = OP.make_inputs(SHAPE, get_dtype("f32"), LAYOUT, seed)
    return inputs, OP.reference(inputs, SHAPE, LAYOUT)


def test_tolerances_come_from_config_per_dtype() -> None:
    assert {name: get_dtype(name).tolerance_key for name in ("f32", "f16", "bf16", "f16_acc_f16")} == {
        "f32": "f32",
        "f16": "f16",
        "bf16": "bf16",
        "f16_acc_f16": "f16",
    }
    assert tolerance("f32") < tolerance("f16") < tolerance("bf16") < 0.1


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_reference_itself_passes(problem: Problem, dtype: str) -> None:
    _, ref = problem
    verdict = judge(ref.astype(np.float32), ref, tolerance(dtype))
    assert verdict.status == "PASS"
    assert verdict.reason == ""
    assert verdict.nonfinite == 0
    assert verdict.tolerance == tolerance(dtype)
    assert verdict.relerr < 1e-7  # only the float32 rounding of the output
    exact = judge(ref.copy(), ref, tolerance(dtype))
    assert exact.relerr == 0.0 and exact.max_abs_err == 0.0 and exact.status == "PASS"


def test_tiny_noise_passes_and_is_measured(problem: Problem) -> None:
    _, ref = problem
    noise = np.random.default_rng().standard_normal(ref.shape)
    noise *= 1e-6 * np.linalg.norm(ref) / np.linalg.norm(noise)  # exactly 1e-6 relative
    verdict = judge(ref + noise, ref, tolerance("f32"))
    assert verdict.status == "PASS"
    assert verdict.relerr == pytest.approx(1e-6, rel=1e-6)
    assert verdict.max_abs_err == pytest.approx(float(np.max(np.abs(noise))), rel=1e-9)


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_zeroed_output_channel_fails(problem: Problem, dtype: str) -> None:
    _, ref = problem
    wrong = ref.astype(np.float32)
    wrong[..., 1] = 0.0  # one of K=4 output channels lost
    verdict = judge(wrong, ref, tolerance(dtype))
    assert verdict.status == "FAIL"
    assert verdict.relerr > tolerance(dtype)
    assert verdict.nonfinite == 0
    assert verdict.max_abs_err == pytest.approx(float(np.max(np.abs(ref[..., 1]))))
    assert "exceeds tolerance" in verdict.reason


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_transposed_filter_fails(problem: Problem, dtype: str) -> None:
    inputs, ref = problem
    swapped = {**inputs, "filter": np.ascontiguousarray(inputs["filter"].transpose(1, 0, 2, 3))}  # R <-> S
    wrong = OP.reference(swapped, SHAPE, LAYOUT).astype(np.float32)
    verdict = judge(wrong, ref, tolerance(dtype))
    assert verdict.status == "FAIL"
    assert verdict.relerr > 0.1


def test_off_by_one_window_fails(problem: Problem) -> None:
    _, ref = problem
    wrong = np.roll(ref, 1, axis=2).astype(np.float32)  # every output column shifted by one
    assert judge(wrong, ref, tolerance("bf16")).status == "FAIL"


def test_single_nan_fails(problem: Problem) -> None:
    _, ref = problem
    out = ref.astype(np.float32)
    out[1, 2, 3, 0] = np.nan
    verdict = judge(out, ref, tolerance("bf16"))
    assert verdict.status == "FAIL"
    assert verdict.nonfinite == 1
    assert math.isinf(verdict.relerr)
    assert f"1 of {out.size}" in verdict.reason


def test_inf_fails(problem: Problem) -> None:
    _, ref = problem
    out = ref.astype(np.float32)
    out[0, 0, 0, 0] = np.inf
    out[1, 0, 0, 3] = -np.inf
    verdict = judge(out, ref, 1.0e6)  # no tolerance forgives Inf
    assert verdict.status == "FAIL"
    assert verdict.nonfinite == 2
    assert "NaN or Inf" in verdict.reason


def test_wrong_shape_fails(problem: Problem) -> None:
    _, ref = problem
    nchw = np.ascontiguousarray(ref.transpose(0, 3, 1, 2))  # right values, wrong layout
    verdict = judge(nchw, ref, 1.0e6)
    assert verdict.status == "FAIL"
    assert "shape" in verdict.reason
    assert str(list(nchw.shape)) in verdict.reason and str(list(ref.shape)) in verdict.reason
    assert judge(ref[:1], ref, 1.0e6).status == "FAIL"


def test_relative_error_hand_computed() -> None:
    ref = np.array([3.0, 4.0])  # norm 5
    out = np.array([3.3, 3.6])  # diff (0.3, -0.4), norm 0.5
    assert relative_error(out, ref) == pytest.approx(0.1, rel=1e-12)
    verdict = judge(out, ref, 0.2)
    assert verdict.status == "PASS"
    assert verdict.max_abs_err == pytest.approx(0.4, rel=1e-12)
    assert judge(out, ref, 0.05).status == "FAIL"
    # 2-D: ref all ones (norm 2), one element off by 1 -> 1/2
    ref2 = np.ones((2, 2))
    out2 = ref2.copy()
    out2[1, 0] = 2.0
    assert relative_error(out2, ref2) == pytest.approx(0.5, rel=1e-12)


def test_relative_error_zero_reference_is_absolute() -> None:
    zero = np.zeros(4)
    assert relative_error(zero, zero) == 0.0
    assert relative_error(np.array([0.0, 3.0, 4.0, 0.0]), zero) == pytest.approx(5.0)
    assert judge(zero.astype(np.float32), zero, 1e-4).status == "PASS"


def test_verdict_to_dict() -> None:
    d = judge(np.array([1.0]), np.array([1.0]), 1e-4).to_dict()
    assert set(d) == {"status", "relerr", "max_abs_err", "tolerance", "nonfinite", "reason", "elem_ratio",
                      "worst_element"}  # fmt: skip
    assert d["status"] == "PASS"


# ---------------------------------------------------------------- the element-wise verdict, on realistic outputs

RESNET = {layer["name"]: layer for layer in load()["suites"]["resnet50"]["layers"]}
REAL_LAYOUT = "nhwc_fhwc"


def tf32(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to TF32 (10 mantissa bits, to nearest even), as tensor cores read them."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))) & np.uint32(0xFFFFE000)
    return rounded.view(np.float32)


def tf32_truncated(values: np.ndarray) -> np.ndarray:
    """float32 values cut to TF32 (the top 19 bits), as wgmma reads raw f32 data."""
    return (values.astype(np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def computed(inputs: dict[str, np.ndarray], shape: Conv2dShape, dtype: str, precision: str) -> np.ndarray:
    """The output a correct kernel writes: float32 products and sums (BLAS), of TF32 inputs for tf32 (rounded, or
    truncated for `tf32_truncated`), stored in the element type."""
    if precision in ("tf32", "tf32_truncated"):
        to_tf32 = tf32 if precision == "tf32" else tf32_truncated
        inputs = {name: to_tf32(array) for name, array in inputs.items()}
        precision = "tf32"
    x = inputs["input"].transpose(0, 3, 1, 2).astype(np.float32)  # NHWC -> NCHW
    w = inputs["filter"].transpose(0, 3, 1, 2).astype(np.float32)  # KRSC -> KCRS
    (ph, pw), (sh, sw) = shape.pad, shape.stride
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros(shape.output_shape_nkpq(), dtype=np.float32)
    for r in range(shape.r):
        for s in range(shape.s):
            window = xp[:, :, r : r + sh * (shape.p - 1) + 1 : sh, s : s + sw * (shape.q - 1) + 1 : sw]
            y += np.einsum("nchw,kc->nkhw", window, w[:, :, r, s])
    element = get_dtype(dtype).numpy
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)).astype(element).astype(np.float32)


def real_problem(layer: str, batch: int, dtype: str) -> tuple[Conv2dShape, dict[str, np.ndarray], np.ndarray]:
    shape = OP.shape_from_layer(RESNET[layer], batch)
    inputs = OP.make_inputs(shape, get_dtype(dtype), REAL_LAYOUT, seed=20261206)
    return shape, inputs, OP.reference(inputs, shape, REAL_LAYOUT)


def bound_of(inputs: dict, shape: Conv2dShape, ref: np.ndarray, dtype: str, precision: str) -> np.ndarray:
    scale, terms = OP.product_scale(inputs, shape, REAL_LAYOUT)
    return ErrorModel.of(get_dtype(dtype), precision).bound(ref, scale, terms)


@pytest.mark.parametrize(
    ("layer", "batch", "dtype", "precision"),
    [("l3_3x3_256", 1, "f32", "f32"), ("l3_3x3_256", 1, "f32", "tf32"), ("conv1", 1, "f32", "tf32_truncated"),
     ("l3_3x3_256", 1, "f32", "tf32_truncated"), ("conv1", 1, "f16", "f16"),
     ("conv1", 1, "bf16", "bf16"), ("l4_ds_1024_2048", 2, "bf16", "bf16"), ("l4_ds_1024_2048", 2, "f16", "f16")],
)  # fmt: skip
def test_correct_outputs_pass_element_wise(layer: str, batch: int, dtype: str, precision: str) -> None:
    shape, inputs, ref = real_problem(layer, batch, dtype)
    out = computed(inputs, shape, dtype, precision)
    judged_as = "tf32" if precision == "tf32_truncated" else precision
    verdict = judge(out, ref, float(TOLERANCES[judged_as]), bound_of(inputs, shape, ref, dtype, judged_as))
    assert verdict.status == "PASS", verdict.reason
    assert verdict.elem_ratio is not None and 0 < verdict.elem_ratio < 0.6  # the output rounding alone is 0.5


def _one_element_off(out: np.ndarray) -> np.ndarray:
    wrong = out.copy()
    wrong[0, 3, 5, 17] *= 1.01
    return wrong


def _one_element_zeroed(out: np.ndarray) -> np.ndarray:
    wrong = out.copy()
    wrong[0, 50, 60, 7] = 0.0
    return wrong


def _one_channel_zeroed(out: np.ndarray) -> np.ndarray:
    wrong = out.copy()
    wrong[..., 1234] = 0.0  # one of 2048 output channels
    return wrong


def _transposed(out: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3))  # P <-> Q (a square output keeps its shape)


def _shifted(out: np.ndarray) -> np.ndarray:
    return np.roll(out, 1, axis=2)  # every output column one to the right


@pytest.mark.parametrize(
    ("planted", "layer", "batch", "dtype", "norm_passes"),
    [(_one_element_off, "l3_3x3_256", 1, "f32", True), (_one_element_zeroed, "conv1", 1, "f16", True),
     (_one_element_zeroed, "conv1", 1, "bf16", True), (_one_channel_zeroed, "l4_ds_1024_2048", 2, "bf16", True),
     (_transposed, "l3_3x3_256", 1, "f16", False), (_shifted, "l3_3x3_256", 1, "bf16", False)],
    ids=["one-off-1pct-f32", "one-zeroed-f16", "one-zeroed-bf16", "channel-zeroed-bf16", "transposed", "shifted"],
)  # fmt: skip
def test_planted_errors_fail(planted, layer: str, batch: int, dtype: str, norm_passes: bool) -> None:
    """Each error of the issue's list FAILs; the first four pass the norm-wise test alone (the hole this closes)."""
    shape, inputs, ref = real_problem(layer, batch, dtype)
    wrong = planted(computed(inputs, shape, dtype, dtype))
    tolerance = float(TOLERANCES[dtype])
    assert (judge(wrong, ref, tolerance).status == "PASS") == norm_passes
    verdict = judge(wrong, ref, tolerance, bound_of(inputs, shape, ref, dtype, dtype))
    assert verdict.status == "FAIL"
    assert verdict.elem_ratio is not None and verdict.elem_ratio > 1
    if norm_passes:
        assert "what rounding explains" in verdict.reason and "exceeds tolerance" not in verdict.reason
        assert wrong[tuple(verdict.worst_element)] != ref[tuple(verdict.worst_element)]
