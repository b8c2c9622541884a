"""attention (opbench/ops/attention/): shapes and ids, FLOP and byte counts (causal half), the float64 reference
against a brute-force loop in both layouts, causal and not, a block of queries at a time and within memory at
S = 16384, the element-wise verdict's term for the probabilities P rounded to the element type (a NumPy emulation of
FlashAttention PASSes, planted errors FAIL), and IREE llvm-cpu's output of the generated MLIR against the
reference."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opbench.config import load
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.ops.attention import reference as attention_reference
from opbench.ops.attention.layouts import INPUT_PERM
from opbench.ops.attention.shape import AttentionShape
from opbench.shapes import ShapeError, inverse
from opbench.verify import ErrorModel, judge

REPO = Path(__file__).resolve().parents[1]
OP = get_op("attention")
# S not a multiple of any tile (37, 130), head dims 16 and 64, causal and not.
SHAPES = ["b1_h2_s37_d16", "b1_h2_s37_d16_causal", "b2_h1_s130_d64", "b2_h1_s130_d64_causal"]
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}


def canonical(inputs: dict[str, np.ndarray], layout: str) -> tuple[np.ndarray, ...]:
    """Q, K, V [B,H,S,D] of a layout's inputs."""
    return tuple(inputs[name].transpose(inverse(INPUT_PERM[layout])) for name in ("q", "k", "v"))


def brute_force(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """o[b,h,i] = sum_j p_ij v_j and its probability scale t[b,h,i] = sqrt(sum_j (p_ij v_j)²), p_ij =
    softmax_j(q_i·k_j/√D) over j <= i where causal, one query at a time in float64, nothing shared with the op's
    code."""
    out, scale = np.zeros(q.shape), np.zeros(q.shape)
    for b, h, i in np.ndindex(*q.shape[:3]):
        keys = i + 1 if causal else q.shape[2]
        scores = [float(np.dot(q[b, h, i].astype(np.float64), k[b, h, j])) / np.sqrt(q.shape[3]) for j in range(keys)]
        weights = np.exp(np.array(scores) - max(scores))
        products = (weights / weights.sum())[:, None] * v[b, h, :keys].astype(np.float64)
        out[b, h, i], scale[b, h, i] = products.sum(axis=0), np.sqrt(np.square(products).sum(axis=0))
    return out, scale


def emulated(
    inputs: dict[str, np.ndarray], shape: AttentionShape, dtype: str, layout: str, *, causal: bool | None = None,
    keys: int | None = None,
) -> np.ndarray:  # fmt: skip
    """What FlashAttention writes: the scores in f32 from the rounded inputs, the softmax in f32, P rounded to the
    element type, P·V accumulated in f32, the output rounded to the element type. Planted errors: `causal` other
    than the shape's (a dropped mask), `keys` fewer than S (the last keys ignored)."""
    element = get_dtype(dtype).numpy
    q, k, v = (a.astype(np.float32) for a in canonical(inputs, layout))
    scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(shape.d))
    seen = np.arange(shape.s)[None, :] < (keys or shape.s)
    if shape.causal if causal is None else causal:
        seen = seen & (np.arange(shape.s)[None, :] <= np.arange(shape.s)[:, None])
    scores = np.where(seen, scores, np.float32(-np.inf))
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = (p / p.sum(axis=-1, keepdims=True)).astype(element).astype(np.float32)
    o = (p @ v).astype(element).astype(np.float32)
    return np.ascontiguousarray(o.transpose(INPUT_PERM[layout]))


def bound_of(
    inputs: dict[str, np.ndarray], shape: AttentionShape, layout: str, dtype: str, *, intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The reference and the workflow's element-wise bound (without P's term where `intermediate` is False)."""
    reference = OP.reference(inputs, shape, layout)
    scale, terms = OP.product_scale(inputs, shape, layout)
    rounded = OP.rounded_intermediate_scale(inputs, shape, layout) if intermediate else None
    return reference, ErrorModel.of(get_dtype(dtype), dtype).bound(reference, scale, terms, rounded)


# ---------------------------------------------------------------- shapes, counts, the reference


@pytest.mark.parametrize("name", [*SHAPES, "b4_h16_s4096_d128", "b1_h32_s16384_d64_causal"])
def test_ids_round_trip_and_counts(name: str) -> None:
    shape = OP.shape_from_name(name)
    assert shape.name == name
    assert shape.causal == name.endswith("_causal")
    full = 4 * shape.b * shape.h * shape.s * shape.s * shape.d
    assert shape.flops() == (full // 2 if shape.causal else full)
    elements = shape.b * shape.h * shape.s * shape.d
    assert shape.min_bytes(2, 4) == 3 * 2 * elements + 4 * elements
    bhsd, bshd = (shape.b, shape.h, shape.s, shape.d), (shape.b, shape.s, shape.h, shape.d)
    assert OP.input_shapes(shape, "bhsd") == {"q": bhsd, "k": bhsd, "v": bhsd}
    assert OP.input_shapes(shape, "bshd") == {"q": bshd, "k": bshd, "v": bshd}
    assert (OP.output_shape(shape, "bhsd"), OP.output_shape(shape, "bshd")) == (bhsd, bshd)


def test_hand_counted_layer_and_refusals() -> None:
    shape = AttentionShape.from_layer({"b": 4, "h": 16, "s": 4096, "d": 128, "causal": True}, 1)
    assert shape.name == "b4_h16_s4096_d128_causal"
    assert shape.flops() == 2 * 4 * 16 * 4096 * 4096 * 128
    assert shape.min_bytes(2, 2) == 4 * 2 * 4 * 16 * 4096 * 128
    assert AttentionShape.from_layer({"b": 4, "h": 16, "s": 4096, "d": 128}, 2).name == "b8_h16_s4096_d128"
    with pytest.raises(ShapeError, match="s must be a positive integer"):
        AttentionShape(b=1, h=1, s=0, d=8)
    with pytest.raises(ShapeError, match="not an attention shape id"):
        OP.shape_from_name("b1_h2_s37_d16_masked")
    with pytest.raises(ShapeError, match="not an attention shape id"):
        OP.shape_from_name("n1_h8_w8_c4_r3_s3_st1_p1")  # depthwise_conv2d's


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("name", SHAPES)
def test_reference_is_a_brute_force_loop(name: str, layout: str) -> None:
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype("f32"), layout, seed=3)
    expected, expected_scale = (
        a.transpose(INPUT_PERM[layout]) for a in brute_force(*canonical(inputs, layout), shape.causal)
    )
    np.testing.assert_allclose(OP.reference(inputs, shape, layout), expected, rtol=1e-12, atol=1e-12)
    parts = OP.reference_and_scales(inputs, shape, layout)
    np.testing.assert_allclose(parts.reference, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(parts.scale, expected_scale, rtol=1e-12, atol=1e-12)
    assert parts.intermediate is parts.scale and parts.terms == shape.s


def test_both_layouts_hold_the_same_values_and_results() -> None:
    shape = OP.shape_from_name("b2_h3_s19_d8_causal")
    bhsd, bshd = (OP.make_inputs(shape, get_dtype("bf16"), layout, seed=9) for layout in ("bhsd", "bshd"))
    for name in OP.input_names:
        np.testing.assert_array_equal(bshd[name].transpose(0, 2, 1, 3), bhsd[name])
        assert np.array_equal(bhsd[name], bhsd[name].astype(get_dtype("bf16").numpy).astype(np.float32))
    assert not np.array_equal(bhsd["q"], bhsd["k"])
    for method in (OP.reference, OP.rounded_intermediate_scale, lambda *a: OP.product_scale(*a)[0]):
        np.testing.assert_allclose(method(bshd, shape, "bshd").transpose(0, 2, 1, 3), method(bhsd, shape, "bhsd"))


def test_reference_works_a_block_of_queries_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = OP.shape_from_name("b2_h2_s45_d8_causal")
    inputs = OP.make_inputs(shape, get_dtype("f32"), "bshd", seed=4)
    whole = OP.reference(inputs, shape, "bshd"), OP.rounded_intermediate_scale(inputs, shape, "bshd")
    monkeypatch.setattr(attention_reference, "BLOCK_QUERIES", 7)  # 7 blocks, the last one of 3 queries
    blocked = OP.reference(inputs, shape, "bshd"), OP.rounded_intermediate_scale(inputs, shape, "bshd")
    for by_blocks, at_once in zip(blocked, whole, strict=True):
        np.testing.assert_allclose(by_blocks, at_once, rtol=1e-12, atol=1e-12)


def test_sequence_16384_fits_well_under_a_gb() -> None:
    """At S = 16384 one head's S x S float64 scores would be 2 GiB; the reference holds a block of queries' (64 MiB)
    at a time: it allocates under 512 MiB. A proxy of one head of dim 16 (attention_fa2's d128_s16384 is 16 heads of
    dim 128, the same block per head; its float64 output, 256 MiB, is the rest)."""
    shape = OP.shape_from_name("b1_h1_s16384_d16_causal")
    inputs = OP.make_inputs(shape, get_dtype("f16"), "bhsd", seed=1)
    tracemalloc.start()
    try:
        OP.reference(inputs, shape, "bhsd")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 8 * attention_reference.BLOCK_QUERIES * shape.s < peak < 2**29


def test_config_suites() -> None:
    config = load(REPO / "config" / "attention.yaml")
    fa2 = [OP.shape_from_layer(layer, 1) for layer in config["suites"]["attention_fa2"]["layers"]]
    assert len(fa2) == len({shape.name for shape in fa2}) == 24
    assert {(shape.d, shape.s, shape.causal) for shape in fa2} == {
        (d, s, causal) for d in (64, 128) for s in (512, 1024, 2048, 4096, 8192, 16384) for causal in (False, True)
    }
    assert all(shape.b * shape.s == 16384 and shape.h * shape.d == 2048 for shape in fa2)
    small = load(REPO / "config" / "attention-extra.yaml")["suites"]["attention_small"]["layers"]
    assert {layer["causal"] for layer in small} == {False, True}  # the schema's default filled in (a suite it runs)


# ---------------------------------------------------------------- the verdict and P rounded to the element type


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("name", SHAPES)
def test_flash_attention_emulation_passes(name: str, dtype: str) -> None:
    """The emulation PASSes element-wise; in f16 and bf16 it would FAIL without P's term (the products' bound alone
    does not admit P's rounding)."""
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype(dtype), "bhsd", seed=11)
    out = emulated(inputs, shape, dtype, "bhsd")
    reference, bound = bound_of(inputs, shape, "bhsd", dtype)
    verdict = judge(out, reference, TOLERANCES[dtype], bound)
    assert verdict.status == "PASS", verdict.reason
    assert verdict.elem_ratio is not None and 0 < verdict.elem_ratio < 0.6
    scale, terms = OP.product_scale(inputs, shape, "bhsd")
    assert terms == shape.s
    np.testing.assert_array_equal(scale, OP.rounded_intermediate_scale(inputs, shape, "bhsd"))
    if dtype != "f32":
        _, products_only = bound_of(inputs, shape, "bhsd", dtype, intermediate=False)
        assert judge(out, reference, TOLERANCES[dtype], products_only).status == "FAIL"


PLANTED = [("one_percent_of_rms", "f32"), ("one_percent_of_rms", "f16"), ("last_5_keys", "f32"),
           ("last_5_keys", "f16"), ("last_5_keys", "bf16")]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "how", "dtype"),
    [(name, how, dtype) for name in ("b1_h2_s37_d16_causal", "b2_h1_s130_d64_causal", "b2_h1_s130_d64")
     for how, dtype in PLANTED]
    + [(name, "no_mask", dtype) for name in ("b1_h2_s37_d16_causal", "b2_h1_s130_d64_causal")
       for dtype in ("f32", "f16", "bf16")],
)  # fmt: skip
def test_planted_errors_fail(name: str, how: str, dtype: str) -> None:
    """One element off by 1% of the reference's RMS (f32, f16; at the element whose bound is the median), the causal
    mask dropped (every query attends to every key), the last 5 keys ignored: each FAILs element-wise."""
    shape = OP.shape_from_name(name)
    inputs = OP.make_inputs(shape, get_dtype(dtype), "bshd", seed=12)
    reference, bound = bound_of(inputs, shape, "bshd", dtype)
    assert judge(emulated(inputs, shape, dtype, "bshd"), reference, TOLERANCES[dtype], bound).status == "PASS"
    if how == "one_percent_of_rms":
        wrong = emulated(inputs, shape, dtype, "bshd")
        at = np.unravel_index(np.argsort(bound, axis=None)[bound.size // 2], bound.shape)
        wrong[at] += 0.01 * float(np.sqrt(np.mean(reference**2)))
    elif how == "no_mask":
        wrong = emulated(inputs, shape, dtype, "bshd", causal=False)
    else:
        wrong = emulated(inputs, shape, dtype, "bshd", keys=shape.s - 5)
    verdict = judge(wrong, reference, TOLERANCES[dtype], bound)
    assert verdict.status == "FAIL"
    assert verdict.elem_ratio is not None and verdict.elem_ratio > 1
    assert "what rounding explains" in verdict.reason
    if how == "one_percent_of_rms":
        assert tuple(verdict.worst_element or ()) == tuple(int(i) for i in at)
        if dtype == "f16":  # the norm-wise test alone misses it (in f32 these few hundred elements' does not)
            assert judge(wrong, reference, TOLERANCES[dtype]).status == "PASS"


# ---------------------------------------------------------------- the program, through IREE on the CPU


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_program_is_one_attention_op_masked_where_causal(layout: str) -> None:
    for name in ("b1_h2_s37_d16", "b1_h2_s37_d16_causal"):
        shape = OP.shape_from_name(name)
        text = OP.mlir(shape, get_dtype("bf16"), layout)
        qkv_t = "tensor<1x2x37x16xbf16>" if layout == "bhsd" else "tensor<1x37x2x16xbf16>"
        assert text.startswith(f"func.func @attention(%q: {qkv_t}, %k: {qkv_t}, %v: {qkv_t}) -> {qkv_t}")
        assert text.count("iree_linalg_ext.attention") == 1
        assert ("tensor<37x37xi1>" in text) == shape.causal
        assert "arith.constant 0.25 : f32" in text


@pytest.mark.slow
@pytest.mark.parametrize("dtype", sorted(TOLERANCES))
@pytest.mark.parametrize(
    ("name", "layout"),
    [("b1_h2_s37_d16_causal", "bshd"), ("b2_h1_s130_d64", "bhsd"), ("b1_h2_s130_d64_causal", "bhsd")],
)
def test_iree_llvm_cpu_output_verifies(iree_cpu_run: Callable[..., Any], name: str, layout: str, dtype: str) -> None:
    """IREE's output PASSes (norm-wise and element-wise), and where causal it is not the unmasked attention's."""
    shape, dt = OP.shape_from_name(name), get_dtype(dtype)
    inputs, output = iree_cpu_run(OP, shape, dt, layout)
    assert output.shape == OP.output_shape(shape, layout)
    reference, bound = bound_of(inputs, shape, layout, dtype)
    verdict = judge(output, reference, tolerance=TOLERANCES[dtype], bound=bound)
    assert verdict.status == "PASS", verdict.reason
    if shape.causal:
        unmasked = emulated(inputs, shape, dtype, layout, causal=False)
        assert judge(unmasked, reference, TOLERANCES[dtype], bound).status == "FAIL"
