"""depthwise_conv2d (opbench/ops/depthwise_conv2d/): shapes and ids, the float64 reference against conv2d's with a
diagonal filter, and IREE llvm-cpu's output of the generated MLIR against the reference, in both layouts and every
dtype, stride 2, 5x5, dilation, odd sizes and channel counts that are not multiples of 8."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.ops.conv2d.shape import Conv2dShape
from opbench.ops.depthwise_conv2d.shape import DepthwiseShape
from opbench.shapes import ShapeError
from opbench.verify import ErrorModel, judge

OP = get_op("depthwise_conv2d")
SHAPES = {
    "s1_p1": "n2_h9_w7_c5_r3_s3_st1_p1",
    "s2_odd": "n1_h13_w11_c13_r3_s3_st2_p1",
    "k5_s2": "n2_h15_w15_c24_r5_s5_st2_p2",
    "dil2": "n1_h12_w10_c7_r3_s3_st1_p2_d2",
    "asym": "n1_h10_w9_c3_r3_s1_st2x1_p1x0",
}
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}


@pytest.mark.parametrize("name", sorted(SHAPES.values()))
def test_ids_round_trip_and_counts(name: str) -> None:
    shape = OP.shape_from_name(name)
    assert shape.name == name
    assert shape.flops() == 2 * shape.n * shape.p * shape.q * shape.c * shape.r * shape.s
    input_output = shape.n * shape.c * (shape.h * shape.w + shape.p * shape.q)
    assert shape.min_bytes(2, 2) == 2 * (input_output + shape.c * shape.r * shape.s)


def test_a_layer_that_would_be_empty_or_a_conv2d_id_is_refused() -> None:
    with pytest.raises(ShapeError, match="output would be empty"):
        DepthwiseShape(n=1, h=2, w=2, c=4, r=5, s=5)
    with pytest.raises(ShapeError, match="not a depthwise_conv2d shape id"):
        OP.shape_from_name("n1_h8_w8_c4_k4_r3_s3_st1_p1")


@pytest.mark.parametrize("name", sorted(SHAPES.values()))
def test_reference_is_conv2d_with_a_diagonal_filter(name: str) -> None:
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype("f32"), "nchw_chw", seed=3)
    diagonal = np.zeros((shape.c, shape.c, shape.r, shape.s))
    diagonal[np.arange(shape.c), np.arange(shape.c)] = inputs["filter"]
    conv = Conv2dShape(n=shape.n, h=shape.h, w=shape.w, c=shape.c, k=shape.c, r=shape.r, s=shape.s,
                       stride=shape.stride, pad=shape.pad, dilation=shape.dilation)  # fmt: skip
    expected = get_op("conv2d").reference({"input": inputs["input"], "filter": diagonal}, conv, "nchw_fchw")
    np.testing.assert_allclose(OP.reference(inputs, shape, "nchw_chw"), expected, rtol=1e-12, atol=1e-12)


def test_both_layouts_hold_the_same_values_and_results() -> None:
    shape = OP.shape_from_name(SHAPES["k5_s2"])
    nhwc, nchw = (OP.make_inputs(shape, get_dtype("f32"), layout, seed=9) for layout in ("nhwc_hwc", "nchw_chw"))
    np.testing.assert_array_equal(nhwc["input"].transpose(0, 3, 1, 2), nchw["input"])
    np.testing.assert_array_equal(nhwc["filter"].transpose(2, 0, 1), nchw["filter"])
    np.testing.assert_allclose(
        OP.reference(nhwc, shape, "nhwc_hwc").transpose(0, 3, 1, 2), OP.reference(nchw, shape, "nchw_chw")
    )


@pytest.mark.slow
@pytest.mark.parametrize("dtype", sorted(TOLERANCES))
@pytest.mark.parametrize("layout", ["nhwc_hwc", "nchw_chw"])
@pytest.mark.parametrize("key", sorted(SHAPES))
def test_iree_llvm_cpu_output_verifies(iree_cpu_run: Callable[..., Any], key: str, layout: str, dtype: str) -> None:
    shape, dt = OP.shape_from_name(SHAPES[key]), get_dtype(dtype)
    inputs, output = iree_cpu_run(OP, shape, dt, layout)
    assert output.shape == OP.output_shape(shape, layout)
    reference = OP.reference(inputs, shape, layout)
    scale, terms = OP.product_scale(inputs, shape, layout)
    bound = ErrorModel.of(dt, dt.tolerance_key).bound(reference, scale, terms)  # the element-wise verdict too
    verdict = judge(output, reference, tolerance=TOLERANCES[dtype], bound=bound)
    assert verdict.status == "PASS", verdict.reason
