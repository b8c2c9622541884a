"""The tiling of the fused attention kernel (kernel.py) as plain Python: the tile configurations (a variant), the
program -> (query block, batch, head) map, the key blocks each program walks with and without masks, the layouts'
strides and the softmax's base-2 scale. Imports neither Triton nor PyTorch, so the CPU tests check (and a NumPy
emulation of the kernel runs on) the same functions the kernel's comments cite.

One program owns BLOCK_M queries of one (batch, head) and streams that head's keys and values BLOCK_N at a time
(FlashAttention-2's forward: the S x S scores never leave the chip). With s_ij = q_i·k_j · log2(e)/√D
(`softmax_scale_log2`), a running row maximum m_i, row sum l_i and unnormalised output acc_i:

    m_i' = max(m_i, max_j s_ij)    alpha = 2^(m_i - m_i')    p_ij = 2^(s_ij - m_i')
    l_i' = alpha·l_i + sum_j p_ij    acc_i' = alpha·acc_i + sum_j round(p_ij)·v_j      o_i = acc_i / l_i  (at the end)

with m_i = -inf, l_i = 0, acc_i = 0 before the first block (alpha = 0 then) and round(p) the element type (f16 or
bf16) before the P·V product, f32 everywhere else.

The key blocks of a program whose first query is m0 (`key_ranges`), in two loops of BLOCK_N-wide steps:
- unmasked: [0, m0) where causal (every key below the block's first query is seen by all its queries; m0 is a
  multiple of BLOCK_N because BLOCK_N divides BLOCK_M: `check_config`), else [0, S - S % BLOCK_N) (whole blocks);
- masked: [m0, min(m0 + BLOCK_M, S)) where causal (the diagonal: key j seen by query i where j <= i, and j < S),
  else [S - S % BLOCK_N, S) (the partial last key block, j < S); masked scores are -inf, so p_ij = 0.
Keys past min(m0 + BLOCK_M, S) are never loaded where causal (stopping at the diagonal). Every query row sees key 0
in its first non-empty block, so m_i' is finite from the first block on and 2^(-inf - m_i') = 0 never meets
-inf - (-inf). Query rows >= S (a partial last query block) read zeros and are not stored.

Layouts via strides (`layout_strides`): Q, K, V and O are stored in the layout's order (bhsd or bshd), contiguous,
D innermost; element (b, h, s, d) is at b·stride_b + h·stride_h + s·stride_s + d. The head dim is padded to a power
of two >= 16 (`padded_head_dim`: tl.arange and tl.dot need it), the padding masked on loads and on the store.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from opbench.ops.attention.layouts import INPUT_PERM

DTYPES = ("f16", "bf16")  # the element types the kernel takes (f32 accumulation and softmax)
MAX_HEAD_DIM = 256  # padded head dims up to this keep a [BLOCK_M, D] accumulator in registers
MIN_BLOCK = 16  # tl.dot's smallest M, N and K
# Tensors of 2**31 elements and more need 64-bit offsets; the kernel computes 32-bit ones.
MAX_ELEMENTS = 2**31 - 1
BLOCK_M_SIZES = (16, 32, 64, 128, 256)
BLOCK_N_SIZES = (16, 32, 64, 128)
WARPS = (1, 2, 4, 8, 16)
LOG2_E = 1.0 / math.log(2.0)


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """One tile configuration: a variant of the `triton-attention` backend (or a candidate of an autotune one)."""

    block_m: int  # queries per program
    block_n: int  # keys (and values) per step of the key loop
    num_warps: int
    num_stages: int  # software-pipeline depth Triton is asked for (K and V loads ahead of the dots)

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> TileConfig:
        return cls(**entry)

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> list[str]:
        """The config as the records' `flags` column shows it."""
        return [f"block={self.block_m}x{self.block_n}", f"warps={self.num_warps}", f"stages={self.num_stages}"]


def check_config(config: TileConfig) -> str | None:
    """Why a tile configuration can never run correctly, or None: the causal split needs BLOCK_N to divide BLOCK_M
    (both powers of two: BLOCK_N <= BLOCK_M), so that a program's first query m0 is where a key block starts."""
    if config.block_n > config.block_m:
        return (
            f"block_n ({config.block_n}) exceeds block_m ({config.block_m}): the causal loop's unmasked key blocks "
            "end at the program's first query, a multiple of block_m that must be one of block_n"
        )
    return None


def config_name(config: TileConfig) -> str:
    """The conventional variant name of a configuration, e.g. m128_n64_w4_s3 (config.yaml's names)."""
    return f"m{config.block_m}_n{config.block_n}_w{config.num_warps}_s{config.num_stages}"


# ---------------------------------------------------------------- the index math (the kernel's, in Python)


def padded_head_dim(d: int) -> int:
    """BLOCK_D: the head dim rounded up to a power of two, at least 16 (the padding is masked)."""
    return max(MIN_BLOCK, 1 << (d - 1).bit_length())


def softmax_scale_log2(d: int) -> float:
    """The factor on Q·Kᵀ that makes 2^s the softmax's e^(q·k/√D): log2(e)/√D, D the real head dim."""
    return LOG2_E / math.sqrt(d)


def layout_strides(layout: str, shape: Any) -> tuple[int, int, int]:
    """(stride_b, stride_h, stride_s) in elements of a contiguous array in the layout's order (D innermost: 1)."""
    bhsd = shape.qkv_shape_bhsd()
    order = INPUT_PERM[layout]  # memory axis i holds canonical axis order[i]
    strides = [0] * 4
    step = 1
    for axis in reversed(order):
        strides[axis] = step
        step *= bhsd[axis]
    if strides[3] != 1:
        raise ValueError(f"layout {layout}: the head dim is not innermost")
    return strides[0], strides[1], strides[2]


def query_blocks(s: int, block_m: int) -> int:
    """Query blocks per (batch, head): ceil(S / BLOCK_M)."""
    return -(-s // block_m)


def program_count(shape: Any, block_m: int) -> int:
    """The 1-D grid: every query block of every (batch, head)."""
    return query_blocks(shape.s, block_m) * shape.b * shape.h


def program_tile(pid: int, num_m: int, heads: int, causal: bool) -> tuple[int, int, int]:
    """Program pid -> (query block, batch, head). Consecutive programs share a (batch, head), so its K and V stay
    in L2 between them; where causal they take its query blocks last first (the last has the most keys: the
    longest programs start first and the short ones fill the tail)."""
    bh, j = divmod(pid, num_m)
    m_block = num_m - 1 - j if causal else j
    b, h = divmod(bh, heads)
    return m_block, b, h


def key_ranges(m0: int, s: int, block_m: int, block_n: int, causal: bool) -> tuple[int, int]:
    """(unmasked_end, masked_end): the unmasked key loop covers [0, unmasked_end), the masked one
    [unmasked_end, masked_end), each in BLOCK_N-wide steps (module docstring)."""
    if causal:
        return m0, min(m0 + block_m, s)
    return s - s % block_n, s


def largest_tensor(shape: Any) -> int:
    """Elements of one of Q, K, V, O (all four alike): each must fit 32-bit offsets."""
    return shape.b * shape.h * shape.s * shape.d
