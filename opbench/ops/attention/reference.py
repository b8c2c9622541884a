"""attention's float64 reference, in the canonical B,H,S,D order, and the scale of its softmax probabilities P for
the element-wise verdict, from one softmax: one (batch, head) and a block of BLOCK_QUERIES queries at a time: a block's
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


def attention_and_probability_scale_bhsd(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, shape: AttentionShape
) -> tuple[np.ndarray, np.ndarray]:
    """From canonical Q, K, V [B,H,S,D], both float64 [B,H,S,D]: O = softmax(Q·Kᵀ/√D)·V (P exact, not rounded as an
    implementation's is) and its probability scale sqrt(P²·V²), sqrt(sum over keys j of (p_ij · v_jd)²), the scale
    of the products P·V sums and of what rounding P to the element type can do to it (opbench.verify). One softmax
    per block of BLOCK_QUERIES queries of one (batch, head) serves both."""
    out = np.empty(shape.qkv_shape_bhsd(), dtype=np.float64)
    scale = np.empty_like(out)
    for b, h in np.ndindex(shape.b, shape.h):
        keys, values = np.asarray(k[b, h], dtype=np.float64), np.asarray(v[b, h], dtype=np.float64)
        squared_values = np.square(values)
        for start in range(0, shape.s, BLOCK_QUERIES):
            queries = slice(start, start + BLOCK_QUERIES)
            p = probabilities(q[b, h, queries], keys, start, shape.causal)
            out[b, h, queries] = p @ values
            scale[b, h, queries] = np.sqrt(np.square(p, out=p) @ squared_values)
    return out, scale
