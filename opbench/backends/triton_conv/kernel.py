"""The Triton kernel: conv2d as an implicit GEMM, NHWC input, KRSC filter, NPQK output, f32 accumulation.

Imported only when a job runs (it imports Triton). The index math is gemm.py's (output_pixel, reduction_index,
tap_step, input_coords; its docstring states the GEMM view): one program computes a BLOCK_M x BLOCK_N tile of the
[M = N*P*Q, K] output, walking the R*S*C reduction BLOCK_K at a time in one loop (one loop, so Triton's software
pipeliner overlaps the loads of later steps with the MMA of this one: `num_stages`). Padding is never materialised:
input reads outside the image are masked to zero. The filter tile is read through a TMA tensor descriptor where
USE_TMA (host-side descriptor, w_desc; gemm.tma_decision), else with masked pointer loads. f32 inputs are multiplied
as TF32 (INPUT_PRECISION "tf32"); f16 and bf16 in their type; the tile is stored in the output's type.
"""

import triton
import triton.language as tl


@triton.jit
def conv2d_nhwc_krsc(
    x_ptr, w_ptr, w_desc, y_ptr,
    N, H, W, C, K, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    TAP_WALK: tl.constexpr, USE_TMA: tl.constexpr, INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    M = N * P * Q
    RSC = R * S * C
    # Program -> output tile, GROUP_M row tiles sharing their filter tiles (Triton's grouped matmul ordering).
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(K, BLOCK_N)
    in_group = GROUP_M * num_pid_n
    first_m = (pid // in_group) * GROUP_M
    group_rows = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + ((pid % in_group) % group_rows)
    pid_n = (pid % in_group) // group_rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    n_ok = offs_n < K
    # gemm.output_pixel: m = (n*P + p)*Q + q
    img = offs_m // (P * Q)
    pq = offs_m % (P * Q)
    ih0 = (pq // Q) * stride_h - pad_h
    iw0 = (pq % Q) * stride_w - pad_w
    x_img = img * (H * W * C)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    c_steps = C // BLOCK_K
    for step in range(0, tl.cdiv(RSC, BLOCK_K)):
        k0 = step * BLOCK_K
        if TAP_WALK:
            # gemm.tap_step: one filter tap (r, s), BLOCK_K contiguous channels from c0 (C % BLOCK_K == 0)
            rs = step // c_steps
            c0 = (step - rs * c_steps) * BLOCK_K
            r = rs // S
            s = rs - r * S
            ih = ih0 + r * dil_h  # gemm.input_coords
            iw = iw0 + s * dil_w
            row_ok = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            a_ptrs = x_ptr + (x_img + (ih * W + iw) * C + c0)[:, None] + offs_k[None, :]
            a = tl.load(a_ptrs, mask=row_ok[:, None], other=0.0)
        else:
            # gemm.reduction_index per element: k = (r*S + s)*C + c, k >= R*S*C masked
            kk = k0 + offs_k
            c = kk % C
            rs = kk // C
            r = rs // S
            s = rs - r * S
            ih = ih0[:, None] + (r * dil_h)[None, :]
            iw = iw0[:, None] + (s * dil_w)[None, :]
            ok = m_ok[:, None] & (kk < RSC)[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            a = tl.load(x_ptr + x_img[:, None] + (ih * W + iw) * C + c[None, :], mask=ok, other=0.0)
        if USE_TMA:
            b = w_desc.load([pid_n * BLOCK_N, k0])  # out-of-bounds rows and columns read as zero
        else:
            kb = k0 + offs_k
            b_ptrs = w_ptr + offs_n[:, None] * RSC + kb[None, :]
            b = tl.load(b_ptrs, mask=n_ok[:, None] & (kb < RSC)[None, :], other=0.0)
        acc = tl.dot(a, tl.trans(b), acc, input_precision=INPUT_PRECISION)

    y = acc.to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + offs_m[:, None] * K + offs_n[None, :], y, mask=m_ok[:, None] & n_ok[None, :])
