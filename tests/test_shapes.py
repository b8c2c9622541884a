"""Conv2dShape: output size, FLOP and byte counts, the shape id and its inverse, and input validation."""

from __future__ import annotations

import itertools

import pytest

from opbench.ops.conv2d.shape import Conv2dShape
from opbench.shapes import ShapeError


def _positions(size: int, pad: int, filt: int, stride: int, dilation: int) -> int:
    """Brute force: how many window starts (0, stride, 2*stride, ...) keep every filter tap inside the padded input."""
    padded = size + 2 * pad
    count = 0
    start = 0
    while start + dilation * (filt - 1) < padded:
        count += 1
        start += stride
    return count


def _shape(**overrides: object) -> Conv2dShape:
    fields = {"n": 1, "h": 8, "w": 8, "c": 3, "k": 4, "r": 3, "s": 3}
    fields.update(overrides)
    return Conv2dShape(**fields)


# ---------------------------------------------------------------- output size


def test_output_size_matches_brute_force_window_count() -> None:
    checked = 0
    for size, filt, stride, pad, dilation in itertools.product(
        range(1, 13), (1, 2, 3, 5, 7), (1, 2, 3), (0, 1, 2, 3), (1, 2, 3)
    ):
        expected = _positions(size, pad, filt, stride, dilation)
        # Same geometry along H (through r) and W (through s), with the other axis trivially valid.
        along_h = dict(h=size, w=1, r=filt, s=1, stride=(stride, 1), pad=(pad, 0), dilation=(dilation, 1))
        along_w = dict(h=1, w=size, r=1, s=filt, stride=(1, stride), pad=(0, pad), dilation=(1, dilation))
        if expected == 0:
            for kwargs in (along_h, along_w):
                with pytest.raises(ShapeError, match="empty"):
                    _shape(**kwargs)
            continue
        assert _shape(**along_h).p == expected, (size, filt, stride, pad, dilation)
        assert _shape(**along_h).q == 1
        assert _shape(**along_w).q == expected, (size, filt, stride, pad, dilation)
        assert _shape(**along_w).p == 1
        checked += 1
    assert checked > 500  # most of the grid is valid; the sweep really ran


def test_output_size_asymmetric_uses_each_axis_own_parameters() -> None:
    shape = _shape(h=15, w=13, r=7, s=3, stride=(2, 1), pad=(3, 0), dilation=(1, 2))
    assert shape.p == _positions(15, 3, 7, 2, 1) == 8
    assert shape.q == _positions(13, 0, 3, 1, 2) == 9
    assert shape.output_shape_nkpq() == (1, 4, 8, 9)


# ---------------------------------------------------------------- FLOPs, GEMM view, bytes


def test_flops_resnet50_conv1_batch1() -> None:
    conv1 = Conv2dShape(n=1, h=224, w=224, c=3, k=64, r=7, s=7, stride=(2, 2), pad=(3, 3))
    assert (conv1.p, conv1.q) == (112, 112)
    assert conv1.flops() == 236027904  # 2 * 112*112 * 64 * 3 * 7*7
    assert conv1.gemm_mnk == (12544, 64, 147)


def test_flops_resnet50_3x3_batch16() -> None:
    shape = Conv2dShape(n=16, h=56, w=56, c=64, k=64, r=3, s=3, stride=(1, 1), pad=(1, 1))
    assert (shape.p, shape.q) == (56, 56)
    assert shape.flops() == 3699376128  # 2 * 16 * 56*56 * 64 * 64 * 9
    m, n, k = shape.gemm_mnk
    assert 2 * m * n * k == shape.flops()


def test_flops_strided_downsample() -> None:
    # ResNet-50 layer2 downsample 1x1/2: 56x56x256 -> 28x28x512.
    shape = Conv2dShape(n=1, h=56, w=56, c=256, k=512, r=1, s=1, stride=(2, 2))
    assert (shape.p, shape.q) == (28, 28)
    assert shape.flops() == 2 * 28 * 28 * 512 * 256 == 205520896


def test_layout_neutral_array_shapes() -> None:
    shape = _shape(n=2, h=9, w=7, c=3, k=5, r=3, s=2, stride=(2, 1), pad=(1, 0))
    assert shape.input_shape_nchw() == (2, 3, 9, 7)
    assert shape.filter_shape_kcrs() == (5, 3, 3, 2)
    assert shape.output_shape_nkpq() == (2, 5, 5, 6)


def test_min_bytes_conv1() -> None:
    conv1 = Conv2dShape(n=1, h=224, w=224, c=3, k=64, r=7, s=7, stride=(2, 2), pad=(3, 3))
    n_in, n_filter, n_out = 150528, 9408, 802816  # 3*224*224, 64*3*7*7, 64*112*112
    assert conv1.min_bytes(4, 4) == (n_in + n_filter + n_out) * 4 == 3851008
    assert conv1.min_bytes(2, 4) == (n_in + n_filter) * 2 + n_out * 4 == 3531136
    assert conv1.min_bytes(2, 2) == (n_in + n_filter + n_out) * 2


def test_min_bytes_counts_batch_for_activations_only() -> None:
    one = _shape(n=1, h=10, w=10, c=4, k=6, r=3, s=3, pad=(1, 1))
    four = _shape(n=4, h=10, w=10, c=4, k=6, r=3, s=3, pad=(1, 1))
    filter_bytes = 6 * 4 * 3 * 3 * 4
    assert four.min_bytes(4, 4) - filter_bytes == 4 * (one.min_bytes(4, 4) - filter_bytes)


# ---------------------------------------------------------------- shape id


def test_name_exact_text() -> None:
    shape = Conv2dShape(n=16, h=56, w=56, c=64, k=64, r=3, s=3, stride=(1, 1), pad=(1, 1))
    assert shape.name == "n16_h56_w56_c64_k64_r3_s3_st1_p1"


def test_name_defaults_stride1_pad0_no_dilation_suffix() -> None:
    assert _shape().name == "n1_h8_w8_c3_k4_r3_s3_st1_p0"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"stride": (2, 1), "pad": (1, 0)}, "n1_h8_w8_c3_k4_r3_s3_st2x1_p1x0"),
        ({"stride": (2, 2), "pad": (3, 3)}, "n1_h8_w8_c3_k4_r3_s3_st2_p3"),
        ({"dilation": (2, 2), "pad": (2, 2)}, "n1_h8_w8_c3_k4_r3_s3_st1_p2_d2"),
        ({"dilation": (1, 2)}, "n1_h8_w8_c3_k4_r3_s3_st1_p0_d1x2"),
        ({"n": 2, "h": 15, "w": 13, "r": 7, "s": 1, "stride": (1, 2), "pad": (0, 3), "dilation": (2, 1)},
         "n2_h15_w13_c3_k4_r7_s1_st1x2_p0x3_d2x1"),
    ],
)  # fmt: skip
def test_name_round_trip(kwargs: dict, text: str) -> None:
    shape = _shape(**kwargs)
    assert shape.name == text
    back = Conv2dShape.from_name(text)
    assert back == shape
    assert back.stride == shape.stride and back.pad == shape.pad and back.dilation == shape.dilation
    assert back.name == text


def test_from_name_parses_asymmetric_fields_in_height_width_order() -> None:
    shape = Conv2dShape.from_name("n3_h20_w11_c5_k7_r3_s1_st2x1_p1x0_d1x2")
    assert (shape.n, shape.h, shape.w, shape.c, shape.k, shape.r, shape.s) == (3, 20, 11, 5, 7, 3, 1)
    assert shape.stride == (2, 1)
    assert shape.pad == (1, 0)
    assert shape.dilation == (1, 2)


def test_names_are_unique_over_a_grid() -> None:
    shapes = [
        _shape(stride=st, pad=p, dilation=d)
        for st, p, d in itertools.product(((1, 1), (2, 2), (2, 1), (1, 2)), ((0, 0), (1, 1), (1, 0)), ((1, 1), (2, 2)))
    ]
    assert len({s.name for s in shapes}) == len(shapes)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "n1_h8_w8_c3_k4_r3_s3",  # no stride/pad
        "n1_h8_w8_c3_k4_r3_s3_st1_p0_extra",
        "x_n1_h8_w8_c3_k4_r3_s3_st1_p0",
        "n1_h8_w8_c3_k4_r3_s3_st-1_p0",
        "n1_h8_w8_c3_k4_r3_s3_st1_p0_d",
    ],
)
def test_from_name_rejects_malformed(text: str) -> None:
    with pytest.raises(ShapeError):
        Conv2dShape.from_name(text)


def test_from_name_validates_the_parsed_shape() -> None:
    with pytest.raises(ShapeError, match=r"\bc\b"):
        Conv2dShape.from_name("n1_h8_w8_c0_k4_r3_s3_st1_p0")
    with pytest.raises(ShapeError, match="stride"):
        Conv2dShape.from_name("n1_h8_w8_c3_k4_r3_s3_st0_p0")
    with pytest.raises(ShapeError, match="empty"):
        Conv2dShape.from_name("n1_h2_w8_c3_k4_r5_s3_st1_p0")


def test_from_layer_defaults_and_pairs() -> None:
    layer = {"name": "x", "h": 12, "w": 10, "c": 8, "k": 12, "r": 3, "s": 3}
    shape = Conv2dShape.from_layer(layer, 2)
    assert shape.n == 2
    assert (shape.stride, shape.pad, shape.dilation) == ((1, 1), (0, 0), (1, 1))
    shape = Conv2dShape.from_layer({**layer, "stride": [2, 1], "pad": 1, "dilation": [1, 2]}, 1)
    assert (shape.stride, shape.pad, shape.dilation) == ((2, 1), (1, 1), (1, 2))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("field", ["n", "h", "w", "c", "k", "r", "s"])
@pytest.mark.parametrize("value", [0, -1])
def test_nonpositive_size_is_rejected_naming_field(field: str, value: int) -> None:
    with pytest.raises(ShapeError, match=rf"^{field} .*{value}"):
        _shape(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stride", (0, 0)),
        ("stride", (1, 0)),
        ("pad", (-1, 0)),
        ("pad", (0, -2)),
        ("dilation", (0, 0)),
        ("dilation", (2, 0)),
    ],
)
def test_bad_stride_pad_dilation_is_rejected_naming_field(field: str, value: tuple[int, int]) -> None:
    with pytest.raises(ShapeError, match=rf"^{field} .*{min(value)}"):
        _shape(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("stride", (1,)), ("pad", (1, 2, 3)), ("dilation", (2,))],
)
def test_pair_of_wrong_length_is_rejected_naming_field(field: str, value: tuple[int, ...]) -> None:
    """A stride/pad/dilation must be an (height, width) pair; anything else is a ShapeError naming the field.

    (A 1-tuple used to escape validation and fail later with IndexError; a 3-tuple was silently truncated.)
    """
    with pytest.raises(ShapeError, match=rf"^{field}\b"):
        _shape(**{field: value})


def test_non_integer_size_is_rejected() -> None:
    with pytest.raises(ShapeError, match=r"^h "):
        _shape(h=8.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"h": 2, "r": 5},  # filter taller than the input, no padding
        {"w": 2, "s": 5},
        {"h": 4, "r": 3, "dilation": (2, 1)},  # dilated extent 5 > 4
        {"h": 2, "r": 5, "pad": (1, 1)},  # 4 padded rows < 5
    ],
)
def test_empty_output_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ShapeError, match="output would be empty"):
        _shape(**kwargs)


def test_smallest_nonempty_output_is_accepted() -> None:
    assert _shape(h=2, r=5, pad=(2, 2)).p == 2
    assert _shape(h=5, r=3, dilation=(2, 1)).p == 1
    assert _shape(h=1, w=1, r=1, s=1, stride=(3, 3)).p == 1
