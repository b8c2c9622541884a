"""The Triton kernel: attention's forward pass, softmax(Q·Kᵀ/√D)·V, fused FlashAttention-2 style, f16 or bf16
inputs and output, f32 scores, softmax and accumulator.

Imported only when a job runs (it imports Triton). The tiling and index math are tiles.py's (its docstring states
the online softmax and the two key loops): program `pid` of a 1-D grid owns BLOCK_M queries of one (batch, head)
(tiles.program_tile), loads them once, and walks that head's keys and values BLOCK_N at a time, first the blocks that
need no mask, then the masked ones (tiles.key_ranges: where causal, the diagonal blocks, and nothing beyond them;
else the partial last key block). Each step: scores = Q·Kᵀ (tl.dot, f32), scaled into base 2, the running maximum
and sum updated, P rounded to the element type and acc += P·V (tl.dot, f32). The result acc / l is stored in the
output's type. The two loops are one inlined helper (`_key_blocks`) specialised by MASKED, so the unmasked one has no
mask arithmetic and Triton's software pipeliner (`num_stages`) overlaps its K and V loads with the dots.

Operands are plain pointers with the layout's strides (tiles.layout_strides; D innermost), one set of strides for
Q, K, V and O (all four are stored alike); the head dim is padded to BLOCK_D (a power of two >= 16) and the padding
masked where EVEN_D is false. Offsets are 32-bit (tensors of 2^31 elements and more are refused by the backend).
"""

import triton
import triton.language as tl


@triton.jit
def _load_rows(base, rows, offs_d, n_rows, stride_s, head_dim, ROW_MASK: tl.constexpr, EVEN_D: tl.constexpr):
    """A [rows, BLOCK_D] tile of one head's Q, K or V; rows >= n_rows (where ROW_MASK) and the head dim's padding
    (where not EVEN_D) read as zero."""
    ptrs = base + rows[:, None] * stride_s + offs_d[None, :]
    if ROW_MASK:
        if EVEN_D:
            tile = tl.load(ptrs, mask=(rows < n_rows)[:, None], other=0.0)
        else:
            tile = tl.load(ptrs, mask=(rows < n_rows)[:, None] & (offs_d < head_dim)[None, :], other=0.0)
    elif EVEN_D:
        tile = tl.load(ptrs)
    else:
        tile = tl.load(ptrs, mask=(offs_d < head_dim)[None, :], other=0.0)
    return tile


@triton.jit
def _key_blocks(
    acc, l_i, m_i, q, k_base, v_base, offs_m, offs_d, lo, hi, seq, head_dim, stride_s, qk_scale,
    BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr,
):  # fmt: skip
    """Keys lo .. hi-1 (BLOCK_N at a time) folded into the running (acc, l_i, m_i) of the block's queries. MASKED:
    keys >= seq are hidden and, where CAUSAL, keys after the query (tiles.key_ranges' masked loop)."""
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(lo, hi, BLOCK_N):
        keys = n0 + offs_n
        k = _load_rows(k_base, keys, offs_d, seq, stride_s, head_dim, MASKED, EVEN_D)
        v = _load_rows(v_base, keys, offs_d, seq, stride_s, head_dim, MASKED, EVEN_D)
        scores = tl.dot(q, tl.trans(k)) * qk_scale  # [BLOCK_M, BLOCK_N], f32, log2(e)/√D folded in
        if MASKED:
            visible = (keys < seq)[None, :]
            if CAUSAL:
                visible = visible & (keys[None, :] <= offs_m[:, None])
            scores = tl.where(visible, scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, 1))  # finite: every query row sees key 0 in its first block
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])  # P rounded to the element type, f32 accumulation
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def attention_fwd(
    q_ptr, k_ptr, v_ptr, o_ptr,
    heads, seq, head_dim, stride_b, stride_h, stride_s, qk_scale, num_m,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
    EVEN_D: tl.constexpr,
):  # fmt: skip
    # tiles.program_tile: pid -> (query block, batch, head); causal: a head's query blocks last first
    pid = tl.program_id(0)
    bh = pid // num_m
    j = pid - bh * num_m
    m_block = num_m - 1 - j if CAUSAL else j
    b = bh // heads
    h = bh - b * heads
    head = b * stride_b + h * stride_h  # tiles.layout_strides: (b, h, s, d) at b*sb + h*sh + s*ss + d
    m0 = m_block * BLOCK_M

    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(q_ptr + head, offs_m, offs_d, seq, stride_s, head_dim, True, EVEN_D)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)

    # tiles.key_ranges: the unmasked blocks, then the masked ones (causal: the diagonal; else the partial last one)
    if CAUSAL:
        unmasked_end = m0
        masked_end = tl.minimum(m0 + BLOCK_M, seq)
    else:
        unmasked_end = seq - seq % BLOCK_N
        masked_end = seq
    acc, l_i, m_i = _key_blocks(
        acc, l_i, m_i, q, k_ptr + head, v_ptr + head, offs_m, offs_d, 0, unmasked_end, seq, head_dim, stride_s,
        qk_scale, BLOCK_N, False, CAUSAL, EVEN_D,
    )  # fmt: skip
    acc, l_i, m_i = _key_blocks(
        acc, l_i, m_i, q, k_ptr + head, v_ptr + head, offs_m, offs_d, unmasked_end, masked_end, seq, head_dim,
        stride_s, qk_scale, BLOCK_N, True, CAUSAL, EVEN_D,
    )  # fmt: skip

    o = (acc / l_i[:, None]).to(o_ptr.dtype.element_ty)
    o_ptrs = o_ptr + head + offs_m[:, None] * stride_s + offs_d[None, :]
    if EVEN_D:
        tl.store(o_ptrs, o, mask=(offs_m < seq)[:, None])
    else:
        tl.store(o_ptrs, o, mask=(offs_m < seq)[:, None] & (offs_d < head_dim)[None, :])
