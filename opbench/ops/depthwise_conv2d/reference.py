"""depthwise_conv2d's float64 reference, in the canonical NCHW / CRS order."""

from __future__ import annotations

import numpy as np

from opbench.ops.depthwise_conv2d.shape import DepthwiseShape


def depthwise_nchw_reference(x: np.ndarray, w: np.ndarray, shape: DepthwiseShape) -> np.ndarray:
    """float64 depthwise convolution of canonical x[N,C,H,W] and w[C,R,S] into y[N,C,P,Q]: one strided window per
    filter tap, scaled per channel (R*S passes, exact in float64)."""
    w = np.asarray(w, dtype=np.float64)
    y = np.zeros(shape.output_shape_ncpq(), dtype=np.float64)
    for r, s, window in shape.tap_windows(np.asarray(x, dtype=np.float64)):
        y += window * w[None, :, r, s, None, None]
    return y
