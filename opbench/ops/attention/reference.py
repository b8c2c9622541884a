"""attention's float64 reference, in the canonical B,H,S,D order, and the scale of its softmax probabilities P for
the element-wise verdict. Both work one (batch, head) and a block of BLOCK_QUERIES queries at a time: a block's
float64 scores are BLOCK_QUERIES x S (64 MiB at S = 16384), never a head's S x S, let alone every head's."""

from __future__ import annotations

import numpy as np

from opbench.ops.attention.shape import AttentionShape

# Queries per block (its scores, probabilities and their squares are BLOCK_QUERIES x S float64 each).
BLOCK_QUERIES = 512


def probabilities(q: np.ndarray, k: np.ndarray, start: int, causal: bool) -> np.ndarray:
    """softmax(q·kᵀ/√D) of queries start.. start+len(q) of one head against all its keys, float64, each row's max
    subtracted before exp (numerically stable); where causal, query i's keys after i weigh 0."""
    scores = (np.asarray(q, dtype=np.float64) @ np.asarray(k, dtype=np.float64).T) / np.sqrt(q.shape[-1])
    if causal:
        rows = np.arange(start, start + q.shape[0])[:, None]
        scores[np.arange(k.shape[0])[None, :] > rows] = -np.inf
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores, out=scores)
    p /= p.sum(axis=1, keepdims=True)
    return p


def _by_query_blocks(q: np.ndarray, k: np.ndarray, v: np.ndarray, shape: AttentionShape, squared: bool) -> np.ndarray:
    """out[B,H,S,D]: P·V (or, `squared`, sqrt(P²·V²)) one (batch, head) and BLOCK_QUERIES queries at a time."""
    out = np.empty(shape.qkv_shape_bhsd(), dtype=np.float64)
    for b, h in np.ndindex(shape.b, shape.h):
        keys, values = np.asarray(k[b, h], dtype=np.float64), np.asarray(v[b, h], dtype=np.float64)
        if squared:
            values = np.square(values)
        for start in range(0, shape.s, BLOCK_QUERIES):
            p = probabilities(q[b, h, start : start + BLOCK_QUERIES], keys, start, shape.causal)
            out[b, h, start : start + BLOCK_QUERIES] = np.sqrt(np.square(p, out=p) @ values) if squared else p @ values
    return out


def attention_bhsd_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, shape: AttentionShape) -> np.ndarray:
    """float64 softmax(Q·Kᵀ/√D)·V of canonical Q, K, V [B,H,S,D] into O [B,H,S,D] (P exact, not rounded as an
    implementation's is)."""
    return _by_query_blocks(q, k, v, shape, squared=False)


def probability_scale_bhsd(q: np.ndarray, k: np.ndarray, v: np.ndarray, shape: AttentionShape) -> np.ndarray:
    """sqrt(sum over keys j of (p_ij · v_jd)²) per output element [B,H,S,D]: the scale of the products P·V sums and
    of what rounding P to the element type can do to it (opbench.verify)."""
    return _by_query_blocks(q, k, v, shape, squared=True)
