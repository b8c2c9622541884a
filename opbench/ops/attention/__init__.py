"""attention: softmax(Q·Kᵀ/√D)·V per (batch, head), queries and keys of the same length S, causal (query i sees
keys 0..i) or not, in two layouts (layouts.py). Inputs q, k, v; the output o, in the same order as they are.

Implementations (FlashAttention, IREE's attention op) compute the scores and the softmax in f32 and round the
probabilities P to the element type before P·V, so the element-wise verdict's bound has a term for P's rounding
(rounded_intermediate_scale; opbench.verify) beside P·V's products.

The folder: shape.py (the shape, its id grammar, FLOPs and bytes), layer.schema.yaml (a config layer), layouts.py
(the order of Q, K, V and O), reference.py (float64, a block of queries at a time), mlir.py (the program IREE
compiles).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench.dtypes import DType, round_to
from opbench.ops import Op, ReferenceParts, register_op
from opbench.ops.attention.layouts import INPUT_PERM
from opbench.ops.attention.mlir import attention
from opbench.ops.attention.reference import attention_and_probability_scale_bhsd
from opbench.ops.attention.shape import SHAPE_PATTERN, AttentionShape
from opbench.shapes import inverse


@register_op
class Attention(Op):
    name: ClassVar[str] = "attention"
    layouts: ClassVar[tuple[str, ...]] = tuple(INPUT_PERM)
    input_names: ClassVar[tuple[str, ...]] = ("q", "k", "v")
    shape_pattern: ClassVar[str] = SHAPE_PATTERN
    stage_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "inputs": ("layouts", "shape"),
        "reference": ("layouts", "reference"),
        "mlir": ("mlir", "layouts", "shape"),
    }

    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> AttentionShape:
        return AttentionShape.from_layer(layer, batch)

    def shape_from_name(self, name: str) -> AttentionShape:
        return AttentionShape.from_name(name)

    def input_shapes(self, shape: AttentionShape, layout: str) -> dict[str, tuple[int, ...]]:
        return dict.fromkeys(self.input_names, self.output_shape(shape, layout))

    def output_shape(self, shape: AttentionShape, layout: str) -> tuple[int, ...]:
        self.check_layout(layout)
        bhsd = shape.qkv_shape_bhsd()
        return tuple(bhsd[i] for i in INPUT_PERM[layout])

    def make_inputs(self, shape: AttentionShape, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        self.check_layout(layout)
        rng = np.random.default_rng(seed)
        return {
            name: np.ascontiguousarray(
                round_to(rng.standard_normal(shape.qkv_shape_bhsd()), dtype.element).transpose(INPUT_PERM[layout])
            )
            for name in self.input_names
        }

    def _canonical(self, inputs: dict[str, np.ndarray], layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Q, K, V [B,H,S,D] from the layout's arrays (views, no copies)."""
        self.check_layout(layout)
        q, k, v = (inputs[name].transpose(inverse(INPUT_PERM[layout])) for name in self.input_names)
        return q, k, v

    @staticmethod
    def _in_layout(o: np.ndarray, layout: str) -> np.ndarray:
        """A canonical [B,H,S,D] result in the layout's order."""
        return np.ascontiguousarray(o.transpose(INPUT_PERM[layout]))

    def reference(self, inputs: dict[str, np.ndarray], shape: AttentionShape, layout: str) -> np.ndarray:
        return self.reference_and_scales(inputs, shape, layout).reference

    def product_scale(
        self, inputs: dict[str, np.ndarray], shape: AttentionShape, layout: str
    ) -> tuple[np.ndarray, int]:
        """sqrt(sum over keys j of (p_ij · v_jd)²) = t, P·V's products (p the float64 softmax), and S of them per
        element (where causal query i sums i + 1 of them, fewer: S bounds them all). The scores' and the softmax's
        f32 rounding moves each p_ij by a few u_f32 of itself, which carried by V is a few u_f32 · t: within the
        accumulation term u_acc · S · t."""
        parts = self.reference_and_scales(inputs, shape, layout)
        return parts.scale, parts.terms

    def rounded_intermediate_scale(
        self, inputs: dict[str, np.ndarray], shape: AttentionShape, layout: str
    ) -> np.ndarray:
        """The same t: P is the intermediate rounded to the element type (each p_ij by up to u_out of itself, carried
        into output element (i, d) by v_jd) before P·V."""
        return self.reference_and_scales(inputs, shape, layout).scale

    def reference_and_scales(self, inputs: dict[str, np.ndarray], shape: AttentionShape, layout: str) -> ReferenceParts:
        """The reference and t (product scale and rounded intermediate's scale at once) from one softmax."""
        o, t = attention_and_probability_scale_bhsd(*self._canonical(inputs, layout), shape)
        scale = self._in_layout(t, layout)
        return ReferenceParts(self._in_layout(o, layout), scale, shape.s, scale)

    def mlir(self, shape: AttentionShape, dtype: DType, layout: str, form: str = "plain") -> str:
        if form != "plain":
            raise ValueError(f"attention has one program form, plain, not {form!r}")
        return attention(
            function=self.name, layout=layout, shape=self.output_shape(shape, layout), s=shape.s, d=shape.d,
            causal=shape.causal, element=dtype.element,
        )  # fmt: skip
