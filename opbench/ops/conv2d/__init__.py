"""conv2d: 2-D cross-correlation with zero padding, in three layouts.

Layouts name the input and filter orders; the output follows the input's:
  nhwc_hwcf  input N,H,W,C  filter R,S,C,K  (linalg.conv_2d_nhwc_hwcf)
  nhwc_fhwc  input N,H,W,C  filter K,R,S,C  (linalg.conv_2d_nhwc_fhwc; cuDNN channels-last; our CUDA kernels)
  nchw_fchw  input N,C,H,W  filter K,C,R,S  (linalg.conv_2d_nchw_fchw; PyTorch's default)
Inputs are generated in the canonical NCHW/KCRS order and permuted, so every layout sees the same values.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from opbench import mlirgen
from opbench.dtypes import DType, round_to
from opbench.mlirgen import ProgramForm
from opbench.ops import Op, register_op
from opbench.shapes import Conv2dShape

# Permutation from canonical (N,C,H,W) / (K,C,R,S) / (N,K,P,Q) to each layout.
_INPUT_PERM = {"nhwc_hwcf": (0, 2, 3, 1), "nhwc_fhwc": (0, 2, 3, 1), "nchw_fchw": (0, 1, 2, 3)}
_FILTER_PERM = {"nhwc_hwcf": (2, 3, 1, 0), "nhwc_fhwc": (0, 2, 3, 1), "nchw_fchw": (0, 1, 2, 3)}


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def conv2d_nchw_reference(x: np.ndarray, w: np.ndarray, shape: Conv2dShape) -> np.ndarray:
    """float64 conv2d of canonical x[N,C,H,W] and w[K,C,R,S] into y[N,K,P,Q].

    One strided window per filter tap, contracted over C by BLAS: O(R*S) passes, exact in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    (ph, pw), (sh, sw), (dh, dw) = shape.pad, shape.stride, shape.dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros(shape.output_shape_nkpq(), dtype=np.float64)
    for r in range(shape.r):
        for s in range(shape.s):
            window = xp[:, :, r * dh : r * dh + sh * (shape.p - 1) + 1 : sh,
                        s * dw : s * dw + sw * (shape.q - 1) + 1 : sw]  # fmt: skip
            y += np.einsum("nchw,kc->nkhw", window, w[:, :, r, s], optimize=True)
    return y


@register_op
class Conv2d(Op):
    name: ClassVar[str] = "conv2d"
    layouts: ClassVar[tuple[str, ...]] = tuple(_INPUT_PERM)
    input_names: ClassVar[tuple[str, ...]] = ("input", "filter")

    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> Conv2dShape:
        return Conv2dShape.from_layer(layer, batch)

    def shape_from_name(self, name: str) -> Conv2dShape:
        return Conv2dShape.from_name(name)

    def input_shapes(self, shape: Conv2dShape, layout: str) -> dict[str, tuple[int, ...]]:
        self.check_layout(layout)
        x, f = shape.input_shape_nchw(), shape.filter_shape_kcrs()
        return {
            "input": tuple(x[i] for i in _INPUT_PERM[layout]),
            "filter": tuple(f[i] for i in _FILTER_PERM[layout]),
        }

    def output_shape(self, shape: Conv2dShape, layout: str) -> tuple[int, ...]:
        self.check_layout(layout)
        y = shape.output_shape_nkpq()
        return tuple(y[i] for i in _INPUT_PERM[layout])

    def make_inputs(self, shape: Conv2dShape, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        self.check_layout(layout)
        rng = np.random.default_rng(seed)
        x = round_to(rng.standard_normal(shape.input_shape_nchw()), dtype.element)
        w = round_to(rng.standard_normal(shape.filter_shape_kcrs()), dtype.element)
        return {
            "input": np.ascontiguousarray(x.transpose(_INPUT_PERM[layout])),
            "filter": np.ascontiguousarray(w.transpose(_FILTER_PERM[layout])),
        }

    def reference(self, inputs: dict[str, np.ndarray], shape: Conv2dShape, layout: str) -> np.ndarray:
        self.check_layout(layout)
        x = inputs["input"].transpose(_inverse(_INPUT_PERM[layout]))
        w = inputs["filter"].transpose(_inverse(_FILTER_PERM[layout]))
        y = conv2d_nchw_reference(x, w, shape)
        return np.ascontiguousarray(y.transpose(_INPUT_PERM[layout]))

    def mlir(self, shape: Conv2dShape, dtype: DType, layout: str, form: ProgramForm | None = None) -> str:
        """The named linalg convolution, or (a form other than `plain`) the generic split/reordered one."""
        self.check_layout(layout)
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
        if form is not None and not form.plain:
            return mlirgen.conv2d_split(**common, form=form)
        return mlirgen.conv2d(**common, spatial_dims=(1, 2) if layout.startswith("nhwc") else (2, 3))
