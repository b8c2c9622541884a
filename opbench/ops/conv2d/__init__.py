"""conv2d: 2-D cross-correlation with zero padding, in three layouts (layouts.py).

The folder: shape.py (the shape, its id grammar, FLOPs and bytes), layer.schema.yaml (a config layer),
layouts.py (input, filter and output orders), reference.py (float64), mlir.py (the programs IREE compiles).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench.dtypes import DType, round_to
from opbench.ops import Op, register_op
from opbench.ops.conv2d.layouts import FILTER_PERM, INPUT_PERM
from opbench.ops.conv2d.mlir import ProgramForm, conv2d, conv2d_split
from opbench.ops.conv2d.reference import conv2d_nchw_reference
from opbench.ops.conv2d.shape import SHAPE_PATTERN, Conv2dShape
from opbench.shapes import inverse


@register_op
class Conv2d(Op):
    name: ClassVar[str] = "conv2d"
    layouts: ClassVar[tuple[str, ...]] = tuple(INPUT_PERM)
    input_names: ClassVar[tuple[str, ...]] = ("input", "filter")
    shape_pattern: ClassVar[str] = SHAPE_PATTERN
    form_pattern: ClassVar[str] = ProgramForm.NAMES
    stage_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "inputs": ("layouts", "shape"),
        "reference": ("layouts", "reference"),
        "mlir": ("mlir", "shape"),
    }

    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> Conv2dShape:
        return Conv2dShape.from_layer(layer, batch)

    def shape_from_name(self, name: str) -> Conv2dShape:
        return Conv2dShape.from_name(name)

    def input_shapes(self, shape: Conv2dShape, layout: str) -> dict[str, tuple[int, ...]]:
        self.check_layout(layout)
        x, f = shape.input_shape_nchw(), shape.filter_shape_kcrs()
        return {
            "input": tuple(x[i] for i in INPUT_PERM[layout]),
            "filter": tuple(f[i] for i in FILTER_PERM[layout]),
        }

    def output_shape(self, shape: Conv2dShape, layout: str) -> tuple[int, ...]:
        self.check_layout(layout)
        y = shape.output_shape_nkpq()
        return tuple(y[i] for i in INPUT_PERM[layout])

    def make_inputs(self, shape: Conv2dShape, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        self.check_layout(layout)
        rng = np.random.default_rng(seed)
        x = round_to(rng.standard_normal(shape.input_shape_nchw()), dtype.element)
        w = round_to(rng.standard_normal(shape.filter_shape_kcrs()), dtype.element)
        return {
            "input": np.ascontiguousarray(x.transpose(INPUT_PERM[layout])),
            "filter": np.ascontiguousarray(w.transpose(FILTER_PERM[layout])),
        }

    def reference(self, inputs: dict[str, np.ndarray], shape: Conv2dShape, layout: str) -> np.ndarray:
        self.check_layout(layout)
        x = inputs["input"].transpose(inverse(INPUT_PERM[layout]))
        w = inputs["filter"].transpose(inverse(FILTER_PERM[layout]))
        y = conv2d_nchw_reference(x, w, shape)
        return np.ascontiguousarray(y.transpose(INPUT_PERM[layout]))

    def product_scale(self, inputs: dict[str, np.ndarray], shape: Conv2dShape, layout: str) -> tuple[np.ndarray, int]:
        """sqrt(sum over c, r, s of (x * w)^2): the reference of the squared inputs; C*R*S products per element."""
        squared = {name: np.square(inputs[name], dtype=np.float64) for name in self.input_names}
        return np.sqrt(self.reference(squared, shape, layout)), shape.c * shape.r * shape.s

    def mlir(self, shape: Conv2dShape, dtype: DType, layout: str, form: str = "plain") -> str:
        """The named linalg convolution, or (a form other than `plain`) the generic split/reordered one."""
        self.check_layout(layout)
        program = ProgramForm.parse(form)
        shapes = self.input_shapes(shape, layout)
        common = dict(
            function=self.name,
            layout=layout,
            input_shape=shapes["input"],
            filter_shape=shapes["filter"],
            output_shape=self.output_shape(shape, layout),
            pad=shape.pad,
            stride=shape.stride,
            dilation=shape.dilation,
            element=dtype.element,
            accumulator=dtype.accumulator,
        )
        if not program.plain:
            return conv2d_split(**common, form=program)
        return conv2d(**common, spatial_dims=(1, 2) if layout.startswith("nhwc") else (2, 3))
