"""conv2d's float64 reference, in the canonical NCHW / KCRS order."""

from __future__ import annotations

import numpy as np

from opbench.ops.conv2d.shape import Conv2dShape


def conv2d_nchw_reference(x: np.ndarray, w: np.ndarray, shape: Conv2dShape) -> np.ndarray:
    """float64 conv2d of canonical x[N,C,H,W] and w[K,C,R,S] into y[N,K,P,Q].

    One strided window per filter tap, contracted over C by BLAS: O(R*S) passes, exact in float64.
    """
    w = np.asarray(w, dtype=np.float64)
    y = np.zeros(shape.output_shape_nkpq(), dtype=np.float64)
    for r, s, window in shape.tap_windows(np.asarray(x, dtype=np.float64)):
        y += np.einsum("nchw,kc->nkhw", window, w[:, :, r, s], optimize=True)
    return y
