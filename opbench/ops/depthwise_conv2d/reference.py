"""depthwise_conv2d's float64 reference, in the canonical NCHW / CRS order."""

from __future__ import annotations

import numpy as np

from opbench.ops.depthwise_conv2d.shape import DepthwiseShape


def depthwise_nchw_reference(x: np.ndarray, w: np.ndarray, shape: DepthwiseShape) -> np.ndarray:
    """float64 depthwise convolution of canonical x[N,C,H,W] and w[C,R,S] into y[N,C,P,Q]: one strided window per
    filter tap, scaled per channel (R*S passes, exact in float64)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    (ph, pw), (sh, sw), (dh, dw) = shape.pad, shape.stride, shape.dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros(shape.output_shape_ncpq(), dtype=np.float64)
    for r in range(shape.r):
        for s in range(shape.s):
            window = xp[:, :, r * dh : r * dh + sh * (shape.p - 1) + 1 : sh,
                        s * dw : s * dw + sw * (shape.q - 1) + 1 : sw]  # fmt: skip
            y += window * w[None, :, r, s, None, None]
    return y
