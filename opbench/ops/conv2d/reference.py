"""conv2d's float64 reference, in the canonical NCHW / KCRS order."""

from __future__ import annotations

import numpy as np

from opbench.ops.conv2d.shape import Conv2dShape


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
