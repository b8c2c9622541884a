"""separable_conv2d (opbench/ops/separable_conv2d/): shapes and ids, FLOP and byte counts, the float64 reference
against a direct loop (stride 2, 5x5, dilation 2, odd sizes, channel counts that are not multiples of 8, K above and
below C) in both layouts and a block of images at a time, the element-wise verdict's term for the depthwise
intermediate rounded to the element type (a float32 emulation that rounds it PASSes, planted errors FAIL), and IREE
llvm-cpu's output of the generated MLIR against the reference in both layouts and every dtype."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opbench import jobs
from opbench.config import load
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.ops.separable_conv2d import reference as separable_reference
from opbench.ops.separable_conv2d.layouts import DW_FILTER_PERM, INPUT_PERM
from opbench.ops.separable_conv2d.shape import SeparableShape
from opbench.shapes import ShapeError, inverse
from opbench.verify import INPUT_FACTOR, UNIT_ROUNDOFF, ErrorModel, judge

REPO = Path(__file__).resolve().parents[1]
OP = get_op("separable_conv2d")
SHAPES = {
    "s1_p1": "n2_h9_w7_c5_k6_r3_s3_st1_p1",
    "s2_odd": "n1_h13_w11_c13_k8_r3_s3_st2_p1",
    "k5_s2": "n2_h15_w15_c24_k40_r5_s5_st2_p2",
    "dil2": "n1_h12_w10_c7_k3_r3_s3_st1_p2_d2",
    "asym": "n1_h10_w9_c3_k5_r3_s1_st2x1_p1x0",
}
# Two of MobileNetV2's layers at batch 1 (config/separable.yaml): the widest spatially and the longest reduction.
LAYERS = {"sep01": "n1_h112_w112_c32_k16_r3_s3_st1_p1", "sep12": "n1_h7_w7_c960_k320_r3_s3_st1_p1"}
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}


def canonical(inputs: dict[str, np.ndarray], layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x[N,C,H,W], dw[C,R,S], pw[K,C] of a layout's inputs."""
    return (
        inputs["input"].transpose(inverse(INPUT_PERM[layout])),
        inputs["dw_filter"].transpose(inverse(DW_FILTER_PERM[layout])),
        inputs["pw_filter"],
    )


def direct_loop(x: np.ndarray, dw: np.ndarray, pw: np.ndarray, shape: SeparableShape) -> np.ndarray:
    """y[n,k,p,q] = sum_c pw[k,c] * sum_(r,s) x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw] * dw[c,r,s], taps outside
    the input counting zero: one index at a time, nothing shared with the op's code."""
    (ph, pw_), (sh, sw), (dh, dw_) = shape.pad, shape.stride, shape.dilation
    d = np.zeros(shape.intermediate_shape_ncpq())
    for n, c, p, q in np.ndindex(*d.shape):
        for r, s in np.ndindex(shape.r, shape.s):
            row, col = p * sh + r * dh - ph, q * sw + s * dw_ - pw_
            if 0 <= row < shape.h and 0 <= col < shape.w:
                d[n, c, p, q] += float(x[n, c, row, col]) * float(dw[c, r, s])
    y = np.zeros(shape.output_shape_nkpq())
    for n, k, p, q in np.ndindex(*y.shape):
        y[n, k, p, q] = sum(float(pw[k, c]) * d[n, c, p, q] for c in range(shape.c))
    return y


def emulated(inputs: dict[str, np.ndarray], shape: SeparableShape, dtype: str, layout: str) -> np.ndarray:
    """What a correct implementation writes, as the baselines compute it: the depthwise stage in float32, its result
    rounded to the element type, the pointwise stage in float32 (BLAS), the output rounded to the element type."""
    element = get_dtype(dtype).numpy
    x, dw, pw = (a.astype(np.float32) for a in canonical(inputs, layout))
    d = np.zeros(shape.intermediate_shape_ncpq(), dtype=np.float32)
    for r, s, window in shape.tap_windows(x):
        d += window * dw[None, :, r, s, None, None]
    d = d.astype(element).astype(np.float32)
    y = np.einsum("ncpq,kc->nkpq", d, pw).astype(element).astype(np.float32)
    return np.ascontiguousarray(y.transpose(INPUT_PERM[layout]))


def bound_of(
    inputs: dict[str, np.ndarray], shape: SeparableShape, layout: str, dtype: str, *, intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The reference and the element-wise bound (without the intermediate's term where `intermediate` is False)."""
    reference = OP.reference(inputs, shape, layout)
    scale, terms = OP.product_scale(inputs, shape, layout)
    rounded = OP.rounded_intermediate_scale(inputs, shape, layout) if intermediate else None
    return reference, ErrorModel.of(get_dtype(dtype), dtype).bound(reference, scale, terms, rounded)


# ---------------------------------------------------------------- shapes, counts, the reference


@pytest.mark.parametrize("name", sorted(SHAPES.values()))
def test_ids_round_trip_and_counts(name: str) -> None:
    shape = OP.shape_from_name(name)
    assert shape.name == name
    pixels = shape.n * shape.p * shape.q
    assert shape.flops() == 2 * pixels * shape.c * (shape.r * shape.s + shape.k)
    inputs = shape.n * shape.c * shape.h * shape.w + shape.c * shape.r * shape.s + shape.k * shape.c
    assert shape.min_bytes(2, 4) == 2 * inputs + 4 * pixels * shape.k  # no intermediate
    assert OP.input_shapes(shape, "nchw_chw_kc") == {
        "input": (shape.n, shape.c, shape.h, shape.w), "dw_filter": (shape.c, shape.r, shape.s),
        "pw_filter": (shape.k, shape.c),
    }  # fmt: skip
    assert OP.input_shapes(shape, "nhwc_hwc_kc")["dw_filter"] == (shape.r, shape.s, shape.c)
    assert OP.output_shape(shape, "nhwc_hwc_kc") == (shape.n, shape.p, shape.q, shape.k)
    assert OP.output_shape(shape, "nchw_chw_kc") == (shape.n, shape.k, shape.p, shape.q)


def test_hand_counted_layer() -> None:
    shape = SeparableShape.from_layer({"h": 112, "w": 112, "c": 32, "k": 16, "r": 3, "s": 3, "pad": 1}, 32)
    assert shape.name == "n32_h112_w112_c32_k16_r3_s3_st1_p1"
    assert (shape.p, shape.q) == (112, 112)
    assert shape.flops() == 2 * 32 * 112 * 112 * 32 * 9 + 2 * 32 * 112 * 112 * 32 * 16
    assert shape.min_bytes(2, 2) == 2 * (32 * 32 * 112 * 112 + 32 * 9 + 16 * 32 + 32 * 16 * 112 * 112)
    dilated = SeparableShape.from_layer({"h": 9, "w": 9, "c": 3, "k": 2, "r": 3, "s": 3, "dilation": 2}, 1)
    assert dilated.name == "n1_h9_w9_c3_k2_r3_s3_st1_p0_d2"
    assert OP.shape_from_name(dilated.name) == dilated


def test_a_layer_that_would_be_empty_or_another_ops_id_is_refused() -> None:
    with pytest.raises(ShapeError, match="output would be empty"):
        SeparableShape(n=1, h=2, w=2, c=4, k=4, r=5, s=5)
    with pytest.raises(ShapeError, match="k must be a positive integer"):
        SeparableShape(n=1, h=8, w=8, c=4, k=0, r=3, s=3)
    with pytest.raises(ShapeError, match="not a separable_conv2d shape id"):
        OP.shape_from_name("n1_h8_w8_c4_r3_s3_st1_p1")  # depthwise_conv2d's: no k


@pytest.mark.parametrize("name", sorted(SHAPES.values()))
def test_reference_is_a_direct_loop(name: str) -> None:
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype("f32"), "nchw_chw_kc", seed=3)
    expected = direct_loop(*canonical(inputs, "nchw_chw_kc"), shape)
    np.testing.assert_allclose(OP.reference(inputs, shape, "nchw_chw_kc"), expected, rtol=1e-12, atol=1e-12)


def test_both_layouts_hold_the_same_values_and_results() -> None:
    shape = OP.shape_from_name(SHAPES["k5_s2"])
    nhwc, nchw = (OP.make_inputs(shape, get_dtype("f32"), layout, seed=9) for layout in OP.layouts)
    np.testing.assert_array_equal(nhwc["input"].transpose(0, 3, 1, 2), nchw["input"])
    np.testing.assert_array_equal(nhwc["dw_filter"].transpose(2, 0, 1), nchw["dw_filter"])
    np.testing.assert_array_equal(nhwc["pw_filter"], nchw["pw_filter"])
    for method in (OP.reference, OP.rounded_intermediate_scale, lambda *a: OP.product_scale(*a)[0]):
        np.testing.assert_allclose(
            method(nhwc, shape, "nhwc_hwc_kc").transpose(0, 3, 1, 2), method(nchw, shape, "nchw_chw_kc"), rtol=1e-12
        )


def test_reference_works_a_block_of_images_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = OP.shape_from_name("n3_h9_w7_c5_k6_r3_s3_st1_p1")
    inputs = OP.make_inputs(shape, get_dtype("f32"), "nhwc_hwc_kc", seed=4)
    whole = OP.reference(inputs, shape, "nhwc_hwc_kc"), OP.rounded_intermediate_scale(inputs, shape, "nhwc_hwc_kc")
    monkeypatch.setattr(separable_reference, "BLOCK_BYTES", 1)  # one image per block
    one_by_one = OP.reference(inputs, shape, "nhwc_hwc_kc"), OP.rounded_intermediate_scale(inputs, shape, "nhwc_hwc_kc")
    for blocked, at_once in zip(one_by_one, whole, strict=True):
        np.testing.assert_allclose(blocked, at_once, rtol=1e-12, atol=1e-12)


def test_batch_32_of_the_largest_input_fits_well_under_a_gb() -> None:
    """sep02 at batch 32 (112x112x96 input, 148 MiB of float32): the reference and both scales each allocate less
    than 1 GiB beyond the inputs (a block of images at a time)."""
    shape = OP.shape_from_name("n32_h112_w112_c96_k24_r3_s3_st2_p1")
    inputs = OP.make_inputs(shape, get_dtype("f16"), "nhwc_hwc_kc", seed=1)
    for method in (OP.reference, OP.product_scale, OP.rounded_intermediate_scale):
        tracemalloc.start()
        try:
            method(inputs, shape, "nhwc_hwc_kc")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert 0 < peak < 2**30, (method.__name__, peak)


def test_config_suite_is_mobilenet_v2s_pairs() -> None:
    config = load(REPO / "config" / "separable.yaml")
    layers = config["suites"]["mobilenet_v2_separable"]["layers"]
    assert [OP.shape_from_layer(layer, 1).name for layer in layers] == [
        f"n1_h{h}_w{h}_c{c}_k{k}_r3_s3_st{st}_p1"
        for h, c, k, st in [(112, 32, 16, 1), (112, 96, 24, 2), (56, 144, 24, 1), (56, 144, 32, 2), (28, 192, 32, 1),
                            (28, 192, 64, 2), (14, 384, 64, 1), (14, 384, 96, 1), (14, 576, 96, 1), (14, 576, 160, 2),
                            (7, 960, 160, 1), (7, 960, 320, 1)]
    ]  # fmt: skip
    assert sum(layer["count"] for layer in layers) == 17  # MobileNetV2's inverted-residual blocks
    assert {layer["dilation"] for layer in layers} == {1}  # the schema's default, filled in


# ---------------------------------------------------------------- the verdict and the rounded intermediate


def test_other_ops_have_no_intermediate_and_keep_their_bound() -> None:
    """conv2d's and depthwise's bound is the one before the intermediate term (None adds nothing)."""
    model = ErrorModel.of(get_dtype("bf16"), "bf16")
    rng = np.random.default_rng(0)
    reference, scale = rng.standard_normal(64), np.abs(rng.standard_normal(64))
    before = (model.accumulate_u * 27) * scale + (2.0 * model.output_u) * np.abs(reference)
    np.testing.assert_array_equal(model.bound(reference, scale, 27), before)
    np.testing.assert_array_equal(model.bound(reference, scale, 27, None), before)
    t = np.abs(rng.standard_normal(64))
    np.testing.assert_allclose(model.bound(reference, scale, 27, t), before + INPUT_FACTOR * 2.0**-8 * t, rtol=1e-15)
    tf32 = ErrorModel.of(get_dtype("f32"), "tf32")  # the intermediate read as TF32 too
    extra = tf32.bound(reference, scale, 27, t) - tf32.bound(reference, scale, 27)
    np.testing.assert_allclose(extra, INPUT_FACTOR * (UNIT_ROUNDOFF["f32"] + UNIT_ROUNDOFF["tf32"]) * t, rtol=1e-12)
    for op, name in (("conv2d", "n1_h5_w5_c3_k2_r3_s3_st1_p1"), ("depthwise_conv2d", "n1_h5_w5_c3_r3_s3_st1_p1")):
        other = get_op(op)
        shape = other.shape_from_name(name)
        inputs = other.make_inputs(shape, get_dtype("f32"), other.layouts[0], seed=1)
        assert other.rounded_intermediate_scale(inputs, shape, other.layouts[0]) is None


@pytest.mark.parametrize("name", sorted(SHAPES.values()))
def test_intermediate_scale_is_the_pointwise_stage_of_the_squares(name: str) -> None:
    """sqrt(sum_c (pw[k,c] * d[n,c,p,q])^2), d the depthwise stage (the direct loop with the identity as pointwise
    filter); it is at most sqrt(R*S) times the products' scale (Cauchy-Schwarz over each channel's R*S taps)."""
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype("f32"), "nchw_chw_kc", seed=6)
    x, dw, pw = canonical(inputs, "nchw_chw_kc")
    identity = SeparableShape(**{**shape.__dict__, "k": shape.c})
    d = direct_loop(x, dw, np.eye(shape.c), identity)
    expected = np.sqrt(np.einsum("ncpq,kc->nkpq", d**2, pw.astype(np.float64) ** 2))
    np.testing.assert_allclose(OP.rounded_intermediate_scale(inputs, shape, "nchw_chw_kc"), expected, rtol=1e-12)
    scale, terms = OP.product_scale(inputs, shape, "nchw_chw_kc")
    assert terms == shape.c * shape.r * shape.s
    assert np.all(scale > 0) and np.all(expected <= np.sqrt(shape.r * shape.s) * scale * (1 + 1e-12))


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("layout", ["nhwc_hwc_kc", "nchw_chw_kc"])
@pytest.mark.parametrize("name", sorted(SHAPES.values()) + sorted(LAYERS.values()))
def test_an_implementation_that_rounds_the_intermediate_passes(name: str, layout: str, dtype: str) -> None:
    """The emulation PASSes element-wise on every edge shape and two real layers; for f16 and bf16 it would FAIL
    without the intermediate's term (the products' bound alone does not admit the rounding)."""
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype(dtype), layout, seed=11)
    out = emulated(inputs, shape, dtype, layout)
    reference, bound = bound_of(inputs, shape, layout, dtype)
    verdict = judge(out, reference, TOLERANCES[dtype], bound)
    assert verdict.status == "PASS", verdict.reason
    assert verdict.elem_ratio is not None and 0 < verdict.elem_ratio < 0.6
    if dtype != "f32":
        _, products_only = bound_of(inputs, shape, layout, dtype, intermediate=False)
        assert judge(out, reference, TOLERANCES[dtype], products_only).status == "FAIL"


def _planted(problem: tuple[np.ndarray, np.ndarray, np.ndarray], how: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """The emulated output with one error planted, and where (an element of the wrong channel for `channel`)."""
    out, reference, bound = problem
    wrong = out.copy()
    rms = float(np.sqrt(np.mean(reference**2)))
    if how == "one_percent_of_rms":  # at the element whose bound is the median one: a typical element
        at = np.unravel_index(np.argsort(bound, axis=None)[bound.size // 2], bound.shape)
        wrong[at] += 0.01 * rms
    elif how == "zeroed":  # the largest element
        at = np.unravel_index(np.argmax(np.abs(reference)), reference.shape)
        wrong[at] = 0.0
    else:  # one output channel zeroed (K is the last dim in NHWK)
        channel = reference.shape[-1] // 2
        wrong[..., channel] = 0.0
        at = (*np.unravel_index(np.argmax(np.abs(reference[..., channel])), reference.shape[:-1]), channel)
    return wrong, tuple(int(i) for i in at)


@pytest.mark.parametrize(
    ("how", "dtype"),
    [("one_percent_of_rms", "f32"), ("one_percent_of_rms", "f16"), ("zeroed", "bf16"), ("zeroed", "f16"),
     ("channel", "f32"), ("channel", "f16"), ("channel", "bf16")],
)  # fmt: skip
@pytest.mark.parametrize("name", [SHAPES["k5_s2"], LAYERS["sep01"], LAYERS["sep12"]])
def test_planted_errors_fail(name: str, how: str, dtype: str) -> None:
    """One element off by 1% of the reference's RMS (f32, f16), one element zeroed, one output channel zeroed: each
    FAILs element-wise, the worst element being a planted one. In bf16 a 1% of RMS error is within what a correct
    bf16 intermediate can do (its rounding, 2^-8 of each of the C values, has a standard deviation near 0.25% of the
    RMS per element, so a bound that never fails a correct output of millions of elements is above 1%)."""
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype(dtype), "nhwc_hwc_kc", seed=12)
    out = emulated(inputs, shape, dtype, "nhwc_hwc_kc")
    reference, bound = bound_of(inputs, shape, "nhwc_hwc_kc", dtype)
    assert judge(out, reference, TOLERANCES[dtype], bound).status == "PASS"
    wrong, at = _planted((out, reference, bound), how)
    verdict = judge(wrong, reference, TOLERANCES[dtype], bound)
    assert verdict.status == "FAIL"
    assert verdict.elem_ratio is not None and verdict.elem_ratio > 1
    assert "what rounding explains" in verdict.reason
    worst = tuple(verdict.worst_element or ())
    assert worst == at if how != "channel" else worst[-1] == at[-1]


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_one_element_off_by_one_percent_passes_the_norm_wise_test_alone(dtype: str) -> None:
    """The hole the element-wise bound closes, on MobileNetV2's first layer (200704 output elements)."""
    shape = OP.shape_from_name(LAYERS["sep01"])
    inputs = OP.make_inputs(shape, get_dtype(dtype), "nchw_chw_kc", seed=13)
    out = emulated(inputs, shape, dtype, "nchw_chw_kc")
    reference, bound = bound_of(inputs, shape, "nchw_chw_kc", dtype)
    wrong, _ = _planted((out, reference, bound), "one_percent_of_rms")
    assert judge(wrong, reference, TOLERANCES[dtype]).status == "PASS"
    assert judge(wrong, reference, TOLERANCES[dtype], bound).status == "FAIL"


def test_the_jobs_store_and_use_the_intermediate_scale(tmp_path: Path) -> None:
    """The reference job saves the scale of the intermediate beside the products' (not for other ops), and the
    verify job adds its term: an emulated f16 output PASSes, with one element off by 1% of the RMS it FAILs."""
    name, layout, dtype = SHAPES["k5_s2"], "nhwc_hwc_kc", "f16"
    files = ("inputs.npz", "reference.npy", "scale.npz", "output.npy", "verdict.json")
    paths = {file.split(".")[0]: tmp_path / file for file in files}
    jobs.make_inputs(op=OP.name, shape=name, dtype=dtype, layout=layout, seed=7, out=paths["inputs"])
    jobs.compute_reference(op=OP.name, shape=name, layout=layout, inputs=paths["inputs"], out=paths["reference"],
                           scale_out=paths["scale"])  # fmt: skip
    inputs = jobs.load_inputs(paths["inputs"], OP.name)
    shape = OP.shape_from_name(name)
    with np.load(paths["scale"]) as products:
        assert sorted(products.files) == ["intermediate", "scale", "terms"]
        np.testing.assert_array_equal(
            products["intermediate"], OP.rounded_intermediate_scale(inputs, shape, layout).astype(np.float32)
        )
    out = emulated(inputs, shape, dtype, layout)
    reference, bound = bound_of(inputs, shape, layout, dtype)
    wrong, _ = _planted((out, reference, bound), "one_percent_of_rms")
    for output, status in ((out, "PASS"), (wrong, "FAIL")):
        np.save(paths["output"], output)
        jobs.verify(output=paths["output"], reference=paths["reference"], scale=paths["scale"],
                    tolerance=TOLERANCES[dtype], dtype=dtype, precision=dtype, out=paths["verdict"])  # fmt: skip
        assert json.loads(paths["verdict"].read_text())["status"] == status

    depthwise = get_op("depthwise_conv2d")
    jobs.make_inputs(op=depthwise.name, shape="n1_h5_w5_c3_r3_s3_st1_p1", dtype=dtype, layout="nhwc_hwc", seed=7,
                     out=paths["inputs"])  # fmt: skip
    jobs.compute_reference(op=depthwise.name, shape="n1_h5_w5_c3_r3_s3_st1_p1", layout="nhwc_hwc",
                           inputs=paths["inputs"], out=paths["reference"], scale_out=paths["scale"])  # fmt: skip
    with np.load(paths["scale"]) as products:
        assert sorted(products.files) == ["scale", "terms"]


# ---------------------------------------------------------------- the program, through IREE on the CPU


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_program_truncates_the_intermediate_where_the_accumulator_is_wider(dtype: str) -> None:
    shape = OP.shape_from_name(SHAPES["s1_p1"])
    for layout in OP.layouts:
        text = OP.mlir(shape, get_dtype(dtype), layout)
        assert text.count("arith.truncf") == (0 if dtype == "f32" else 2)
        intermediate_t = "tensor<2x9x7x5x" if layout == "nhwc_hwc_kc" else "tensor<2x5x9x7x"
        assert f"ins(%intermediate, %pw_1x1 : {intermediate_t}{dtype}>" in text


@pytest.mark.slow
@pytest.mark.parametrize("dtype", sorted(TOLERANCES))
@pytest.mark.parametrize("layout", ["nhwc_hwc_kc", "nchw_chw_kc"])
@pytest.mark.parametrize("key", sorted(SHAPES))
def test_iree_llvm_cpu_output_verifies(iree_cpu_run: Callable[..., Any], key: str, layout: str, dtype: str) -> None:
    """IREE's output PASSes (norm-wise and element-wise) and, in f16 and bf16, is the emulation's (the intermediate
    rounded to the element type) rather than the exact intermediate's."""
    shape, dt = OP.shape_from_name(SHAPES[key]), get_dtype(dtype)
    inputs, output = iree_cpu_run(OP, shape, dt, layout)
    assert output.shape == OP.output_shape(shape, layout)
    reference, bound = bound_of(inputs, shape, layout, dtype)
    verdict = judge(output, reference, tolerance=TOLERANCES[dtype], bound=bound)
    assert verdict.status == "PASS", verdict.reason
    if dtype != "f32":
        element = dt.numpy
        exact_intermediate = reference.astype(element).astype(np.float32)
        rounded_intermediate = emulated(inputs, shape, dtype, layout)
        differs = np.count_nonzero(output.astype(np.float32) != exact_intermediate)
        assert np.count_nonzero(output.astype(np.float32) != rounded_intermediate) < differs / 4
