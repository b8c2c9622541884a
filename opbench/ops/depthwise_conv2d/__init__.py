"""depthwise_conv2d: one R x S filter per channel (groups = channels, channel multiplier 1), zero padding, in two
layouts (layouts.py). Bound by memory, not arithmetic (2*R*S FLOPs per output element): its rows' figure of merit is
GB/s against the card's copy bandwidth.

The folder: shape.py (the shape, its id grammar, FLOPs and bytes), layer.schema.yaml (a config layer), layouts.py
(input, filter and output orders), reference.py (float64), mlir.py (the program IREE compiles).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench.dtypes import DType, round_to
from opbench.ops import Op, register_op
from opbench.ops.depthwise_conv2d.layouts import FILTER_PERM, INPUT_PERM
from opbench.ops.depthwise_conv2d.mlir import depthwise_conv2d
from opbench.ops.depthwise_conv2d.reference import depthwise_nchw_reference
from opbench.ops.depthwise_conv2d.shape import SHAPE_PATTERN, DepthwiseShape
from opbench.shapes import inverse


@register_op
class DepthwiseConv2d(Op):
    name: ClassVar[str] = "depthwise_conv2d"
    layouts: ClassVar[tuple[str, ...]] = tuple(INPUT_PERM)
    input_names: ClassVar[tuple[str, ...]] = ("input", "filter")
    shape_pattern: ClassVar[str] = SHAPE_PATTERN
    memory_bound: ClassVar[bool] = True
    stage_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "inputs": ("layouts", "shape"),
        "reference": ("layouts", "reference"),
        "mlir": ("mlir", "layouts", "shape"),
    }

    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> DepthwiseShape:
        return DepthwiseShape.from_layer(layer, batch)

    def shape_from_name(self, name: str) -> DepthwiseShape:
        return DepthwiseShape.from_name(name)

    def input_shapes(self, shape: DepthwiseShape, layout: str) -> dict[str, tuple[int, ...]]:
        self.check_layout(layout)
        x, f = shape.input_shape_nchw(), shape.filter_shape_crs()
        return {
            "input": tuple(x[i] for i in INPUT_PERM[layout]),
            "filter": tuple(f[i] for i in FILTER_PERM[layout]),
        }

    def output_shape(self, shape: DepthwiseShape, layout: str) -> tuple[int, ...]:
        self.check_layout(layout)
        y = shape.output_shape_ncpq()
        return tuple(y[i] for i in INPUT_PERM[layout])

    def make_inputs(self, shape: DepthwiseShape, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        self.check_layout(layout)
        rng = np.random.default_rng(seed)
        x = round_to(rng.standard_normal(shape.input_shape_nchw()), dtype.element)
        w = round_to(rng.standard_normal(shape.filter_shape_crs()), dtype.element)
        return {
            "input": np.ascontiguousarray(x.transpose(INPUT_PERM[layout])),
            "filter": np.ascontiguousarray(w.transpose(FILTER_PERM[layout])),
        }

    def reference(self, inputs: dict[str, np.ndarray], shape: DepthwiseShape, layout: str) -> np.ndarray:
        self.check_layout(layout)
        x = inputs["input"].transpose(inverse(INPUT_PERM[layout]))
        w = inputs["filter"].transpose(inverse(FILTER_PERM[layout]))
        y = depthwise_nchw_reference(x, w, shape)
        return np.ascontiguousarray(y.transpose(INPUT_PERM[layout]))

    def product_scale(
        self, inputs: dict[str, np.ndarray], shape: DepthwiseShape, layout: str
    ) -> tuple[np.ndarray, int]:
        """sqrt(sum over r, s of (x * w)^2): the reference of the squared inputs; R*S products per element."""
        squared = {name: np.square(inputs[name], dtype=np.float64) for name in self.input_names}
        return np.sqrt(self.reference(squared, shape, layout)), shape.r * shape.s

    def mlir(self, shape: DepthwiseShape, dtype: DType, layout: str, form: str = "plain") -> str:
        self.check_layout(layout)
        if form != "plain":
            raise ValueError(f"depthwise_conv2d has one program form, plain, not {form!r}")
        shapes = self.input_shapes(shape, layout)
        return depthwise_conv2d(
            function=self.name, layout=layout, input_shape=shapes["input"], filter_shape=shapes["filter"],
            output_shape=self.output_shape(shape, layout),
            spatial_dims=(1, 2) if layout.startswith("nhwc") else (2, 3),
            pad=shape.pad, stride=shape.stride, dilation=shape.dilation, element=dtype.element,
            accumulator=dtype.accumulator,
        )  # fmt: skip
