"""The implicit-GEMM view of conv2d that the Triton kernel (kernel.py) computes, as plain Python: the tile
configurations (a variant), the index math the kernel's docstring states, the choice of its reduction walk and of
TMA for the filter, and the shared-memory estimate. Imports neither Triton nor PyTorch, so the CPU tests check the
same functions the kernel's comments cite.

NHWC input x[N, H, W, C], KRSC filter w[K, R, S, C], NPQK output y[N, P, Q, K]:

    GEMM rows     m in [0, M),  M = N*P*Q         m -> (n, p, q)  (output_pixel)
    GEMM columns  j in [0, K)                     one filter, one output channel
    reduction     k in [0, R*S*C), C innermost    k -> (r, s, c)  (reduction_index)

    y[m, j] = sum_k x[n, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w, c] * w[j, k]

with x read as zero outside the image (masks, never materialised padding). The filter is the plain row-major
[K, R*S*C] matrix w2d[j, k], the output the row-major [M, K] matrix y2d[m, j].

Two walks of the reduction, one BLOCK_K slice per step (`reduction_walk`):
- `tap` (C % BLOCK_K == 0): step t covers filter tap (r, s) = divmod(t // (C / BLOCK_K), S) and channels
  c0 .. c0 + BLOCK_K of it, c0 = (t % (C / BLOCK_K)) * BLOCK_K: the input slice of each output pixel is BLOCK_K
  contiguous channels (vector loads), its zero padding one mask per row. Its reduction index is k = t * BLOCK_K, the
  same column of w2d as in a plain GEMM.
- `flat` (any C): step t covers k = t*BLOCK_K .. t*BLOCK_K + BLOCK_K - 1 of the flat reduction, each element
  decomposed into (r, s, c) by itself (a gather); k >= R*S*C masked. The walk for C = 3 (a ResNet stem: 147
  reduction elements in ceil(147 / BLOCK_K) steps instead of 49 taps of one mostly empty slice each) and odd C.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

# Hopper's (sm_90) most shared memory one block may opt in to: 227 KiB (H100, H200).
SMEM_LIMIT_BYTES = 227 * 1024
# Tensors of 2**31 elements and more need 64-bit offsets; the kernel computes 32-bit ones.
MAX_ELEMENTS = 2**31 - 1
# The oldest Triton with host-side tensor descriptors (triton.tools.tensor_descriptor.TensorDescriptor), the TMA API
# the kernel uses; older releases had only the experimental descriptor API, which this backend does not call.
TMA_MIN_TRITON = (3, 4)
# A TMA box row: at least 16 bytes, and at most the 128-byte swizzle span (a wider one needs several copies per row,
# which not every Triton release splits itself).
TMA_ROW_BYTES = (16, 128)
ITEMSIZE = {"f16": 2, "bf16": 2, "f32": 4}  # the dtypes the kernel takes (f32 computed as TF32)
BLOCK_SIZES = (16, 32, 64, 128, 256)
BLOCK_K_SIZES = (16, 32, 64, 128)
WARPS = (1, 2, 4, 8, 16)


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """One tile configuration: a variant of the `triton` backend (or one candidate of an autotune variant)."""

    block_m: int  # output pixels per program
    block_n: int  # filters (output channels) per program
    block_k: int  # reduction elements per step
    num_warps: int
    num_stages: int  # software-pipeline depth Triton is asked for
    group_m: int = 8  # programs along M that share their filter tiles (L2 reuse), Triton's matmul ordering
    tma: bool = True  # load the filter through a TMA tensor descriptor where Triton and the card offer it

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> TileConfig:
        return cls(**entry)

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def smem_bytes(self, itemsize: int) -> int:
        """Shared memory of the operand pipeline: num_stages buffers of an A and a B tile (the epilogue reuses it)."""
        return self.num_stages * (self.block_m + self.block_n) * self.block_k * itemsize

    def describe(self) -> list[str]:
        """The config as the records' `flags` column shows it."""
        return [
            f"block={self.block_m}x{self.block_n}x{self.block_k}", f"warps={self.num_warps}",
            f"stages={self.num_stages}", f"group_m={self.group_m}", f"tma={'auto' if self.tma else 'off'}",
        ]  # fmt: skip


def check_config(config: TileConfig) -> str | None:
    """Why a tile configuration can never run (its 16-bit pipeline does not fit in shared memory), or None."""
    need = config.smem_bytes(2)
    if need > SMEM_LIMIT_BYTES:
        limit = SMEM_LIMIT_BYTES // 1024
        return f"needs {need // 1024} KiB of shared memory for 16-bit inputs (more than sm_90's {limit} KiB)"
    return None


def fits(config: TileConfig, dtype: str) -> str | None:
    """Why a configuration cannot run one dtype (its pipeline needs more shared memory than sm_90 has), or None."""
    need = config.smem_bytes(ITEMSIZE[dtype])
    if need > SMEM_LIMIT_BYTES:
        return (
            f"block {config.block_m}x{config.block_n}x{config.block_k} x {config.num_stages} stages needs "
            f"{need // 1024} KiB of shared memory for {dtype} (more than sm_90's {SMEM_LIMIT_BYTES // 1024} KiB)"
        )
    return None


# ---------------------------------------------------------------- the index math (the kernel's, in Python)


def output_pixel(m: int, p: int, q: int) -> tuple[int, int, int]:
    """GEMM row m -> output pixel (n, p, q) of an N x P x Q output: m = (n*P + p)*Q + q."""
    n, pq = divmod(m, p * q)
    return n, pq // q, pq % q


def reduction_index(k: int, s: int, c: int) -> tuple[int, int, int]:
    """Reduction index k -> filter tap and channel (r, s, c) of an R x S x C filter (C innermost):
    k = (r*S + s)*C + c."""
    rs, ch = divmod(k, c)
    return rs // s, rs % s, ch


def tap_step(step: int, s: int, c: int, block_k: int) -> tuple[int, int, int]:
    """The `tap` walk's step t -> (r, s, c0): its filter tap and first channel (C % block_k == 0)."""
    c_steps = c // block_k
    rs, chunk = divmod(step, c_steps)
    return rs // s, rs % s, chunk * block_k


def input_coords(p: int, q: int, r: int, s: int, shape: Any) -> tuple[int, int]:
    """The input row and column (ih, iw) that filter tap (r, s) of output pixel (p, q) reads; outside [0, H) x [0, W)
    it reads the zero padding (a masked load)."""
    (sh, sw), (ph, pw), (dh, dw) = shape.stride, shape.pad, shape.dilation
    return p * sh - ph + r * dh, q * sw - pw + s * dw


def reduction_walk(c: int, block_k: int) -> str:
    """`tap` where BLOCK_K divides C (each step one tap's contiguous channels), else `flat` (module docstring)."""
    return "tap" if c % block_k == 0 else "flat"


def reduction_steps(shape: Any, block_k: int) -> int:
    """Main-loop steps of one program: R*S*C / BLOCK_K (`tap`) or ceil(R*S*C / BLOCK_K) (`flat`)."""
    return -(-shape.r * shape.s * shape.c // block_k)


def largest_tensor(shape: Any) -> int:
    """Elements of the largest operand (input, filter, output): each must fit 32-bit offsets."""
    return max(
        shape.n * shape.h * shape.w * shape.c,
        shape.k * shape.r * shape.s * shape.c,
        shape.n * shape.p * shape.q * shape.k,
    )


# ---------------------------------------------------------------- TMA for the filter, where Triton and the card offer i


def version_tuple(version: str) -> tuple[int, ...]:
    """'3.5.0+git1234' -> (3, 5, 0); the leading numeric parts only."""
    parts = []
    for part in version.split("+")[0].split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def tma_decision(
    *, config: TileConfig, dtype: str, shape: Any, triton_version: str, capability: tuple[int, int],
    has_descriptors: bool,
) -> tuple[bool, str]:  # fmt: skip
    """Whether the kernel loads the filter through a TMA tensor descriptor, and why (or why not): the variant allows
    it, Triton has host-side tensor descriptors (>= 3.4), the card has TMA (sm_90 and later), the filter's row stride
    R*S*C*itemsize is a multiple of 16 bytes (TMA's rule for every stride but the innermost), and a box row of
    BLOCK_K elements is 16 to 128 bytes."""
    itemsize = ITEMSIZE[dtype]
    row = shape.r * shape.s * shape.c * itemsize
    box = config.block_k * itemsize
    if not config.tma:
        return False, "off in the variant's settings (tma: false)"
    if version_tuple(triton_version) < TMA_MIN_TRITON or not has_descriptors:
        return False, (
            f"Triton {triton_version} has no host-side tensor descriptors "
            f"(triton.tools.tensor_descriptor, Triton >= {'.'.join(map(str, TMA_MIN_TRITON))})"
        )
    if capability < (9, 0):
        return False, f"sm_{capability[0]}{capability[1]} has no TMA (sm_90 and later)"
    if row % 16:
        return (
            False,
            f"the filter's rows (R*S*C = {row // itemsize} elements, {row} bytes) are not a multiple of 16 bytes",
        )
    if not TMA_ROW_BYTES[0] <= box <= TMA_ROW_BYTES[1]:
        return False, f"a box row of BLOCK_K = {config.block_k} {dtype} elements is {box} bytes (TMA here: 16 to 128)"
    return True, f"filter tiles [{config.block_n}, {config.block_k}] through a TMA tensor descriptor"


def config_name(config: TileConfig) -> str:
    """The conventional variant name of a configuration, e.g. m128_n64_k32_w4_s4 (config.yaml's names)."""
    return f"m{config.block_m}_n{config.block_n}_k{config.block_k}_w{config.num_warps}_s{config.num_stages}"
