"""The float64 conv2d reference and the random inputs, against a direct loop implementation written here."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.ops.conv2d.reference import conv2d_nchw_reference
from opbench.ops.conv2d.shape import Conv2dShape

OP = get_op("conv2d")
LAYOUTS = ("nhwc_hwcf", "nhwc_fhwc", "nchw_fchw")

# Each layout's orders, spelled out independently of opbench.ops.conv2d: canonical -> layout.
TO_LAYOUT = {
    "nhwc_hwcf": {"input": (0, 2, 3, 1), "filter": (2, 3, 1, 0), "output": (0, 2, 3, 1)},  # NHWC, RSCK, NPQK
    "nhwc_fhwc": {"input": (0, 2, 3, 1), "filter": (0, 2, 3, 1), "output": (0, 2, 3, 1)},  # NHWC, KRSC, NPQK
    "nchw_fchw": {"input": (0, 1, 2, 3), "filter": (0, 1, 2, 3), "output": (0, 1, 2, 3)},  # NCHW, KCRS, NKPQ
}


def loop_conv2d(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pad: tuple[int, int], dilation: tuple[int, int]
) -> np.ndarray:
    """Direct definition: y[n,k,p,q] = sum_{c,r,s} x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw] * w[k,c,r,s]."""
    n_, c_, h_, w_ = x.shape
    k_, c2, r_, s_ = w.shape
    assert c2 == c_
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    p_ = 0
    while p_ * sh + dh * (r_ - 1) < h_ + 2 * ph:
        p_ += 1
    q_ = 0
    while q_ * sw + dw * (s_ - 1) < w_ + 2 * pw:
        q_ += 1
    xl = x.astype(np.float64).tolist()
    wl = w.astype(np.float64).tolist()
    y = np.zeros((n_, k_, p_, q_), dtype=np.float64)
    for n in range(n_):
        for k in range(k_):
            for p in range(p_):
                for q in range(q_):
                    acc = 0.0
                    for c in range(c_):
                        for r in range(r_):
                            ih = p * sh - ph + r * dh
                            if not 0 <= ih < h_:
                                continue
                            for s in range(s_):
                                iw = q * sw - pw + s * dw
                                if 0 <= iw < w_:
                                    acc += xl[n][c][ih][iw] * wl[k][c][r][s]
                    y[n, k, p, q] = acc
    return y


CASES = {
    "s2_p1_3x3_c3_odd": dict(n=1, h=9, w=7, c=3, k=4, r=3, s=3, stride=(2, 2), pad=(1, 1)),
    "stem_7x7_s2_p3_b2": dict(n=2, h=15, w=13, c=3, k=4, r=7, s=7, stride=(2, 2), pad=(3, 3)),
    "pw_1x1_b2": dict(n=2, h=5, w=6, c=8, k=5, r=1, s=1),
    "pw_1x1_s2_odd": dict(n=1, h=7, w=9, c=4, k=3, r=1, s=1, stride=(2, 2)),
    "dil2_p2": dict(n=1, h=11, w=11, c=4, k=3, r=3, s=3, pad=(2, 2), dilation=(2, 2)),
    "dil2_p0_b2": dict(n=2, h=9, w=8, c=2, k=3, r=3, s=3, dilation=(2, 2)),
    "asym_all": dict(n=2, h=9, w=8, c=3, k=2, r=3, s=2, stride=(2, 1), pad=(1, 0), dilation=(1, 2)),
    "pad3_exceeds_filter": dict(n=1, h=4, w=5, c=2, k=3, r=3, s=3, pad=(3, 3)),
    "stride3_1x3": dict(n=1, h=10, w=11, c=3, k=2, r=1, s=3, stride=(3, 3), pad=(0, 1)),
}


def _random(shape: Conv2dShape, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal(shape.input_shape_nchw())
    w = rng.standard_normal(shape.filter_shape_kcrs())
    return x, w


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected)))
    assert scale > 0
    assert float(np.max(np.abs(actual - expected))) <= 1e-12 * scale


@pytest.mark.parametrize("case", CASES)
def test_nchw_reference_matches_loops(case: str) -> None:
    shape = Conv2dShape(**CASES[case])
    x, w = _random(shape, np.random.default_rng())
    expected = loop_conv2d(x, w, shape.stride, shape.pad, shape.dilation)
    assert expected.shape == shape.output_shape_nkpq()
    y = conv2d_nchw_reference(x, w, shape)
    assert y.dtype == np.float64
    _assert_close(y, expected)


@pytest.mark.parametrize("case", ["s2_p1_3x3_c3_odd", "stem_7x7_s2_p3_b2", "dil2_p2", "asym_all", "stride3_1x3"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_op_reference_matches_loops_in_every_layout(case: str, layout: str) -> None:
    shape = Conv2dShape(**CASES[case])
    x, w = _random(shape, np.random.default_rng())
    perm = TO_LAYOUT[layout]
    inputs = {
        "input": np.ascontiguousarray(x.transpose(perm["input"])),
        "filter": np.ascontiguousarray(w.transpose(perm["filter"])),
    }
    assert {k: v.shape for k, v in inputs.items()} == OP.input_shapes(shape, layout)
    expected = loop_conv2d(x, w, shape.stride, shape.pad, shape.dilation).transpose(perm["output"])
    y = OP.reference(inputs, shape, layout)
    assert y.shape == OP.output_shape(shape, layout)
    assert y.dtype == np.float64
    _assert_close(y, expected)


def test_reference_of_float32_inputs_is_computed_in_float64() -> None:
    # Values whose float32 products and sums lose bits: the reference must not round them to float32.
    shape = Conv2dShape(n=1, h=1, w=1, c=2, k=1, r=1, s=1)
    x = np.array([1.0 + 2.0**-20, 1.0 - 2.0**-20], dtype=np.float32).reshape(1, 2, 1, 1)
    w = np.array([1.0 + 2.0**-20, -(1.0 - 2.0**-20)], dtype=np.float32).reshape(1, 2, 1, 1)
    y = conv2d_nchw_reference(x, w, shape)
    exact = (1.0 + 2.0**-20) ** 2 - (1.0 - 2.0**-20) ** 2  # 2**-18
    assert y[0, 0, 0, 0] == exact


# ---------------------------------------------------------------- shapes per layout


def test_layout_array_shapes() -> None:
    shape = Conv2dShape(n=2, h=9, w=7, c=3, k=5, r=3, s=1, stride=(2, 1), pad=(1, 0))  # P=5, Q=7
    assert OP.input_shapes(shape, "nhwc_hwcf") == {"input": (2, 9, 7, 3), "filter": (3, 1, 3, 5)}
    assert OP.input_shapes(shape, "nhwc_fhwc") == {"input": (2, 9, 7, 3), "filter": (5, 3, 1, 3)}
    assert OP.input_shapes(shape, "nchw_fchw") == {"input": (2, 3, 9, 7), "filter": (5, 3, 3, 1)}
    assert OP.output_shape(shape, "nhwc_hwcf") == (2, 5, 7, 5)
    assert OP.output_shape(shape, "nhwc_fhwc") == (2, 5, 7, 5)
    assert OP.output_shape(shape, "nchw_fchw") == (2, 5, 5, 7)


def test_unknown_layout_is_rejected() -> None:
    shape = Conv2dShape(**CASES["pw_1x1_b2"])
    for call in (
        lambda: OP.input_shapes(shape, "nchw_hwcf"),
        lambda: OP.make_inputs(shape, get_dtype("f32"), "nchw_hwcf", 1),
        lambda: OP.reference({}, shape, "nchw_hwcf"),
    ):
        with pytest.raises(ValueError, match="nchw_hwcf"):
            call()


# ---------------------------------------------------------------- make_inputs

SHAPE = Conv2dShape(n=2, h=7, w=5, c=3, k=4, r=3, s=2, stride=(2, 1), pad=(1, 1))


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_make_inputs_same_values_in_every_layout(dtype: str) -> None:
    seed = int(np.random.default_rng().integers(2**32))
    canonical = {}
    for layout in LAYOUTS:
        inputs = OP.make_inputs(SHAPE, get_dtype(dtype), layout, seed)
        assert set(inputs) == set(OP.input_names)
        assert {k: v.shape for k, v in inputs.items()} == OP.input_shapes(SHAPE, layout)
        back = {name: inputs[name].transpose(np.argsort(TO_LAYOUT[layout][name])) for name in ("input", "filter")}
        assert back["input"].shape == SHAPE.input_shape_nchw()
        assert back["filter"].shape == SHAPE.filter_shape_kcrs()
        canonical[layout] = back
    for layout in LAYOUTS[1:]:
        for name in ("input", "filter"):
            np.testing.assert_array_equal(canonical[layout][name], canonical[LAYOUTS[0]][name])


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_make_inputs_rounded_to_dtype_and_random(dtype: str, layout: str) -> None:
    storage = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}[dtype]
    seed = int(np.random.default_rng().integers(2**32))
    inputs = OP.make_inputs(SHAPE, get_dtype(dtype), layout, seed)
    for name, array in inputs.items():
        assert array.dtype == np.float32, name
        assert np.all(np.isfinite(array))
        np.testing.assert_array_equal(array.astype(storage).astype(np.float32), array)
        assert np.count_nonzero(array) > 0.9 * array.size, name
        assert len(np.unique(array)) > 0.5 * array.size, name
        assert 0.3 < float(np.std(array)) < 3.0, name  # standard-normal-ish, not e.g. all ones


def test_make_inputs_narrow_dtypes_really_are_rounded() -> None:
    seed = int(np.random.default_rng().integers(2**32))
    f32 = OP.make_inputs(SHAPE, get_dtype("f32"), "nchw_fchw", seed)["input"]
    bf16 = OP.make_inputs(SHAPE, get_dtype("bf16"), "nchw_fchw", seed)["input"]
    # The f32 values are not bf16 values; rounded ones are, and stay within bf16's half-ulp (2**-8 relative).
    assert not np.array_equal(f32.astype(ml_dtypes.bfloat16).astype(np.float32), f32)
    assert np.all(np.abs(bf16 - f32) <= 1.001 * 2.0**-8 * np.abs(f32))


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_make_inputs_reproducible_from_seed(dtype: str) -> None:
    fresh = int(np.random.default_rng().integers(2**31))
    seeds = sorted({0, 1, 2, 7, 8, 2**31, 2**31 + 1, 2**32 - 1, fresh, fresh + 1})
    first = {seed: OP.make_inputs(SHAPE, get_dtype(dtype), "nhwc_hwcf", seed) for seed in seeds}
    for seed in (seeds[0], fresh):
        again = OP.make_inputs(SHAPE, get_dtype(dtype), "nhwc_hwcf", seed)
        for name in OP.input_names:
            np.testing.assert_array_equal(again[name], first[seed][name])
    for name in OP.input_names:
        distinct = {first[seed][name].tobytes() for seed in seeds}
        assert len(distinct) == len(seeds), name  # every seed gives other values
    # Input and filter are different draws, not the same stream twice.
    a = first[fresh]
    n = min(a["input"].size, a["filter"].size)
    assert not np.array_equal(a["input"].ravel()[:n], a["filter"].ravel()[:n])


def test_reference_of_make_inputs_agrees_across_layouts() -> None:
    seed = int(np.random.default_rng().integers(2**32))
    outputs = {}
    for layout in LAYOUTS:
        inputs = OP.make_inputs(SHAPE, get_dtype("f16"), layout, seed)
        outputs[layout] = OP.reference(inputs, SHAPE, layout).transpose(np.argsort(TO_LAYOUT[layout]["output"]))
    for layout in LAYOUTS[1:]:
        _assert_close(outputs[layout], outputs[LAYOUTS[0]])
