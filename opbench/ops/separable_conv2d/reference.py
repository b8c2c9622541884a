"""separable_conv2d's float64 reference, in the canonical NCHW / CRS / KC order, and the scale of its depthwise
intermediate for the element-wise verdict. Both work a block of images at a time (a float64 block of input, padded
input and intermediate within BLOCK_BYTES), so batch 32 of MobileNetV2's largest layers stays well under a GB."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opbench.ops.separable_conv2d.shape import SeparableShape

# float64 bytes of one block's input, padded input and depthwise intermediate together.
BLOCK_BYTES = 256 * 2**20


def depthwise_nchw(x: np.ndarray, dw: np.ndarray, shape: SeparableShape) -> np.ndarray:
    """The depthwise stage of x[n,C,H,W] (any number n of images) and dw[C,R,S] into d[n,C,P,Q], float64: one
    strided window per filter tap, scaled per channel (exact in float64)."""
    d = np.zeros((x.shape[0], shape.c, shape.p, shape.q), dtype=np.float64)
    for r, s, window in shape.tap_windows(x):
        d += window * dw[None, :, r, s, None, None]
    return d


def pointwise_nchw(d: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """The pointwise stage: d[n,C,P,Q] contracted with pw[K,C] over C into y[n,K,P,Q] (BLAS, float64)."""
    return np.einsum("ncpq,kc->nkpq", d, pw, optimize=True)


def _by_image_blocks(x: np.ndarray, shape: SeparableShape, stages: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """y[N,K,P,Q], `stages` applied to the float64 input of a block of images at a time."""
    padded_hw = (shape.h + 2 * shape.pad[0]) * (shape.w + 2 * shape.pad[1])
    image_bytes = 8 * shape.c * (shape.h * shape.w + padded_hw + shape.p * shape.q)
    block = max(1, BLOCK_BYTES // image_bytes)
    y = np.empty(shape.output_shape_nkpq(), dtype=np.float64)
    for start in range(0, shape.n, block):
        y[start : start + block] = stages(np.asarray(x[start : start + block], dtype=np.float64))
    return y


def separable_nchw_reference(x: np.ndarray, dw: np.ndarray, pw: np.ndarray, shape: SeparableShape) -> np.ndarray:
    """float64 separable convolution of canonical x[N,C,H,W], dw[C,R,S] and pw[K,C] into y[N,K,P,Q]; the
    intermediate is exact (float64), not rounded as an implementation's is."""
    dw64, pw64 = np.asarray(dw, dtype=np.float64), np.asarray(pw, dtype=np.float64)
    return _by_image_blocks(x, shape, lambda xb: pointwise_nchw(depthwise_nchw(xb, dw64, shape), pw64))


def intermediate_scale_nchw(x: np.ndarray, dw: np.ndarray, pw: np.ndarray, shape: SeparableShape) -> np.ndarray:
    """sqrt(sum over c of (pw[k,c] * d[n,c,p,q])^2) per output element [N,K,P,Q]: the scale of what rounding the
    depthwise intermediate d to the element type can do to it (opbench.verify)."""
    dw64, pw64 = np.asarray(dw, dtype=np.float64), np.asarray(pw, dtype=np.float64)
    squared_pw = np.square(pw64)
    return np.sqrt(
        _by_image_blocks(x, shape, lambda xb: pointwise_nchw(np.square(depthwise_nchw(xb, dw64, shape)), squared_pw))
    )
