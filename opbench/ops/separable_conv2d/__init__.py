"""separable_conv2d: a depthwise-separable block as one op: a depthwise convolution (one R x S filter per channel,
channel multiplier 1, zero padding, stride, dilation: depthwise_conv2d's semantics) and then a pointwise 1x1
convolution from C to K channels, no bias, no activation, in two layouts (layouts.py). Its min_bytes leave out the
depthwise intermediate, which a fused kernel keeps on chip.

Implementations round that intermediate to the element type (a two-op baseline stores it; a fused kernel feeds it to
tensor cores in the input type), so the element-wise verdict's bound has a term for it beside the products'
(rounded_intermediate_scale; opbench.verify).

The folder: shape.py (the shape, its id grammar, FLOPs and bytes), layer.schema.yaml (a config layer), layouts.py
(input, filter and output orders), reference.py (float64), mlir.py (the program IREE compiles).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench.dtypes import DType, round_to
from opbench.ops import Op, register_op
from opbench.ops.separable_conv2d.layouts import DW_FILTER_PERM, INPUT_PERM
from opbench.ops.separable_conv2d.mlir import separable_conv2d
from opbench.ops.separable_conv2d.reference import intermediate_scale_nchw, separable_nchw_reference
from opbench.ops.separable_conv2d.shape import SHAPE_PATTERN, SeparableShape
from opbench.shapes import inverse


@register_op
class SeparableConv2d(Op):
    name: ClassVar[str] = "separable_conv2d"
    layouts: ClassVar[tuple[str, ...]] = tuple(INPUT_PERM)
    input_names: ClassVar[tuple[str, ...]] = ("input", "dw_filter", "pw_filter")
    shape_pattern: ClassVar[str] = SHAPE_PATTERN
    stage_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "inputs": ("layouts", "shape"),
        "reference": ("layouts", "reference"),
        "mlir": ("mlir", "layouts", "shape"),
    }

    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> SeparableShape:
        return SeparableShape.from_layer(layer, batch)

    def shape_from_name(self, name: str) -> SeparableShape:
        return SeparableShape.from_name(name)

    def input_shapes(self, shape: SeparableShape, layout: str) -> dict[str, tuple[int, ...]]:
        self.check_layout(layout)
        x, dw = shape.input_shape_nchw(), shape.dw_filter_shape_crs()
        return {
            "input": tuple(x[i] for i in INPUT_PERM[layout]),
            "dw_filter": tuple(dw[i] for i in DW_FILTER_PERM[layout]),
            "pw_filter": shape.pw_filter_shape_kc(),
        }

    def output_shape(self, shape: SeparableShape, layout: str) -> tuple[int, ...]:
        self.check_layout(layout)
        y = shape.output_shape_nkpq()
        return tuple(y[i] for i in INPUT_PERM[layout])

    def make_inputs(self, shape: SeparableShape, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        self.check_layout(layout)
        rng = np.random.default_rng(seed)
        x = round_to(rng.standard_normal(shape.input_shape_nchw()), dtype.element)
        dw = round_to(rng.standard_normal(shape.dw_filter_shape_crs()), dtype.element)
        pw = round_to(rng.standard_normal(shape.pw_filter_shape_kc()), dtype.element)
        return {
            "input": np.ascontiguousarray(x.transpose(INPUT_PERM[layout])),
            "dw_filter": np.ascontiguousarray(dw.transpose(DW_FILTER_PERM[layout])),
            "pw_filter": pw,
        }

    def _canonical(self, inputs: dict[str, np.ndarray], layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x[N,C,H,W], dw[C,R,S] and pw[K,C] from the layout's arrays (views, no copies)."""
        self.check_layout(layout)
        return (
            inputs["input"].transpose(inverse(INPUT_PERM[layout])),
            inputs["dw_filter"].transpose(inverse(DW_FILTER_PERM[layout])),
            inputs["pw_filter"],
        )

    @staticmethod
    def _in_layout(y: np.ndarray, layout: str) -> np.ndarray:
        """A canonical [N,K,P,Q] result in the layout's output order."""
        return np.ascontiguousarray(y.transpose(INPUT_PERM[layout]))

    def reference(self, inputs: dict[str, np.ndarray], shape: SeparableShape, layout: str) -> np.ndarray:
        return self._in_layout(separable_nchw_reference(*self._canonical(inputs, layout), shape), layout)

    def product_scale(
        self, inputs: dict[str, np.ndarray], shape: SeparableShape, layout: str
    ) -> tuple[np.ndarray, int]:
        """sqrt(sum over c, r, s of (x * dw * pw)^2) = s, the composed products (the reference of the squared
        inputs); C*R*S of them per element. With the intermediate's term (8 * u_out * t, t the
        rounded_intermediate_scale), its accumulation term u_acc * C*R*S * s covers the two stages' own sums as
        opbench.verify models sums of random-signed products: the depthwise's u_acc * R*S per intermediate value,
        carried by the pointwise weights (about u_acc * R*S * s), and the pointwise's u_acc * C * t; their total is
        at most u_acc * C*R*S * s + 8 * u_out * t, as t <= sqrt(R*S) * s (Cauchy-Schwarz) and u_out >= u_acc."""
        squared = {name: np.square(inputs[name], dtype=np.float64) for name in self.input_names}
        return np.sqrt(self.reference(squared, shape, layout)), shape.c * shape.r * shape.s

    def rounded_intermediate_scale(
        self, inputs: dict[str, np.ndarray], shape: SeparableShape, layout: str
    ) -> np.ndarray:
        """sqrt(sum over c of (d_c * pw[k, c])^2), d the depthwise intermediate (the C values rounded to the element
        type that reach each output element, and the pointwise weights that carry them into it)."""
        return self._in_layout(intermediate_scale_nchw(*self._canonical(inputs, layout), shape), layout)

    def mlir(self, shape: SeparableShape, dtype: DType, layout: str, form: str = "plain") -> str:
        self.check_layout(layout)
        if form != "plain":
            raise ValueError(f"separable_conv2d has one program form, plain, not {form!r}")
        shapes = self.input_shapes(shape, layout)
        intermediate = shape.intermediate_shape_ncpq()
        return separable_conv2d(
            function=self.name, layout=layout, input_shape=shapes["input"], dw_filter_shape=shapes["dw_filter"],
            pw_filter_shape=shapes["pw_filter"], intermediate_shape=tuple(intermediate[i] for i in INPUT_PERM[layout]),
            output_shape=self.output_shape(shape, layout),
            spatial_dims=(1, 2) if layout.startswith("nhwc") else (2, 3),
            pad=shape.pad, stride=shape.stride, dilation=shape.dilation, element=dtype.element,
            accumulator=dtype.accumulator,
        )  # fmt: skip
