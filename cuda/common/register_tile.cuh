// register_tile.cuh: the register-tiled implicit-GEMM conv2d kernel (variant 3's kernel),
// shared by cuda/variants/register_tiled.cu and cuda/variants/split_reduction.cu, which adds a
// split of the reduction over blockIdx.z on top of the same tile loop.
//
// GEMM view (see conv2d.cuh): Y[m][k] = sum_kk A[m][kk] * Wt[k][kk], A gathered from NHWC X.
// Both operands are "row-major with kk contiguous", so they are handled symmetrically.
//
// Block: BM x BN outputs, (BM/8)*(BN/8) threads, each thread an 8x8 micro-tile in registers.
// Warp tile 32 x 64: lanes as 4 (ty) x 8 (tx); a thread owns rows {ty*4+i, 16+ty*4+i} and
// columns {tx*4+j, 32+tx*4+j} (i, j < 4) of its warp tile. So for each kk a thread reads two
// float4 of A and two of B from shared memory (LDS.128) and does 64 FFMA; within one LDS.128 a
// warp touches 4 (A) or 8 (B) distinct consecutive float4 = at most 128 contiguous bytes:
// conflict-free, the rest are broadcasts. Stores to Y are float4 and coalesced (8 lanes write
// 128 contiguous bytes of one row).
//
// Shared memory holds both tiles transposed, kk-major: sA[kk][m], sB[kk][k], each row padded by
// kPad = 4 floats (keeps 16-byte alignment; makes the transposed stores conflict-free: the two
// kk-chunks of a row land 16 banks apart). Two buffers: while the block computes on one, the
// next tile's global loads are in flight in registers and are stored to the other buffer after
// the compute (register-staged double buffering, one __syncthreads per BK step).
//
// Global loads: each thread owns kALoads rows of A and kBLoads rows of B for the whole kernel
// (row decode m -> (n, p, q) done once, kept as image offset + ih0 + iw0) and one 4-wide chunk
// of kk per tile. The kk cursor (c, s, r) advances incrementally by BK per tile (no division in
// the loop). VEC=true (C % 4 == 0, 16-byte aligned X and Wt): the 4 kk of a chunk share (r, s)
// and are 4 contiguous floats in X and in Wt -> one LDG.E.128 each. VEC=false: 4 scalar loads,
// each with its own (r, s, c) and bounds check (C = 3 stem convolutions, odd C).
// Bounds: kk >= KG and padding taps load 0; rows m >= M / k >= K are clamped to row M-1 / K-1
// (in-bounds loads whose products only reach outputs that are never stored); stores guarded
// per element (float4 only when K % 4 == 0, i.e. a whole aligned 4-column group is in range).
// ConvProblem::finalize() bounds H + 2*pad + dil*(R+16) < 2^30 so ih/iw never overflow.
//
// Split of the reduction (used by split_reduction.cu): blockIdx.z handles k-tiles
// [z*tiles_per_split, min((z+1)*tiles_per_split, k_tiles)); it writes its partial tile to
// y + z*split_stride (workspace strategy) or atomicAdds it into y (atomic strategy). An empty
// range writes zeros (store) or nothing (atomic), so any split count is safe.
#pragma once

#include "conv2d.cuh"

#include <cstdint>
#include <string>

namespace rt {

template <int BM, int BN, int BK>
struct TileShape {
  static constexpr int kThreads = (BM / 8) * (BN / 8);  // one 8x8 micro-tile per thread
  static constexpr int kWarpsM = BM / 32;                // warp tile is 32 (m) x 64 (n)
  static constexpr int kWarpsN = BN / 64;
  static constexpr int kChunksPerRow = BK / 4;           // float4 chunks of kk per tile row
  static constexpr int kRowStep = kThreads / kChunksPerRow;  // rows between a thread's loads
  static constexpr int kALoads = BM / kRowStep;          // A rows loaded per thread per tile
  static constexpr int kBLoads = BN / kRowStep;          // B rows loaded per thread per tile
  static constexpr int kPad = 4;                         // floats of padding per smem row
  // Blocks per SM promised to ptxas (caps registers at 65536 / (kThreads * kMinBlocks)):
  // 256 threads x 2 -> 128 registers (16 warps/SM); 128 threads x 3 -> 168 registers (12
  // warps/SM): at 128 registers the 128-thread tiles (two A or two B rows per thread) spilled.
  static constexpr int kMinBlocks = kThreads >= 256 ? 2 : 3;
  static constexpr size_t kSmemBytes = 2ull * BK * (BM + BN + 2 * kPad) * sizeof(float);

  static_assert(BM % 32 == 0 && BN % 64 == 0,
                "the warp tile is 32x64 (4x8 lanes, each 8x8 = 2x2 blocks of 4x4)");
  static_assert(kWarpsM * kWarpsN * 32 == kThreads, "warps must tile the block exactly");
  static_assert(kThreads >= 64 && kThreads <= 1024, "block size out of range");
  static_assert(BK % 4 == 0, "global loads move 4 consecutive kk (one float4) per chunk");
  static_assert(kThreads % kChunksPerRow == 0, "each thread keeps the same kk chunk per tile");
  static_assert(BM % kRowStep == 0 && BN % kRowStep == 0,
                "every tile row must be loaded by exactly one thread");
  static_assert((BM + kPad) % 4 == 0 && (BN + kPad) % 4 == 0,
                "padded smem rows must stay 16-byte aligned for LDS.128");
  static_assert(kSmemBytes <= 48 * 1024, "static shared memory is limited to 48 KB");
  static_assert(kThreads * kMinBlocks <= 2048, "more threads per SM than the hardware has");
};

template <int BM, int BN, int BK, bool VEC>
__global__ void __launch_bounds__(TileShape<BM, BN, BK>::kThreads, TileShape<BM, BN, BK>::kMinBlocks)
conv2d_register_tile_kernel(const ConvProblem prob, const float* __restrict__ x,
                            const float* __restrict__ w, float* __restrict__ y,
                            const int tiles_per_split, const long long split_stride,
                            const int atomic) {
  using T = TileShape<BM, BN, BK>;
  __shared__ __align__(16) float sA[2][BK][BM + T::kPad];
  __shared__ __align__(16) float sB[2][BK][BN + T::kPad];

  const int tid = threadIdx.x;
  const int M = prob.gemm_m(), KG = prob.gemm_k(), K = prob.k;
  const int C = prob.c, S = prob.s, H = prob.h, W = prob.w;
  const int PQ = prob.p * prob.q;
  const int m0 = blockIdx.x * BM;
  const int n0 = blockIdx.y * BN;

  // This block's range of k-tiles (all of them unless the reduction is split).
  const int k_tiles = (KG + BK - 1) / BK;
  const int kt_begin = min(k_tiles, int(blockIdx.z) * tiles_per_split);
  const int kt_end = min(k_tiles, kt_begin + tiles_per_split);
  const int num_tiles = kt_end - kt_begin;  // uniform over the block; may be 0

  // ---- loader role: rows ld_row + l*kRowStep, kk chunk ld_kc of every tile ----
  const int ld_row = tid / T::kChunksPerRow;
  const int ld_kc = tid % T::kChunksPerRow;

  // Rows past the end (m >= M, k >= K) are clamped to the last valid row: their loads stay in
  // bounds and only feed output rows/columns that the epilogue never stores. No valid flags.
  int a_img[T::kALoads], a_ih0[T::kALoads], a_iw0[T::kALoads];
#pragma unroll
  for (int l = 0; l < T::kALoads; ++l) {
    const int mm = min(m0 + ld_row + l * T::kRowStep, M - 1);
    const int img = mm / PQ;
    const int pq = mm - img * PQ;
    const int p = pq / prob.q;
    const int q = pq - p * prob.q;
    a_img[l] = img * H * W * C;
    a_ih0[l] = p * prob.stride_h - prob.pad_h;
    a_iw0[l] = q * prob.stride_w - prob.pad_w;
  }
  int b_off[T::kBLoads];
#pragma unroll
  for (int l = 0; l < T::kBLoads; ++l) b_off[l] = min(n0 + ld_row + l * T::kRowStep, K - 1) * KG;

  // kk cursor of this thread's chunk: kk = (r*S + s)*C + c, ih_off = r*dil_h, iw_off = s*dil_w.
  int kk = kt_begin * BK + ld_kc * 4;
  int c = kk % C;
  int s = (kk / C) % S;
  int ih_off = (kk / C / S) * prob.dil_h;
  int iw_off = s * prob.dil_w;

  float ra[T::kALoads][4], rb[T::kBLoads][4];  // staged next tile

  auto load_tile = [&]() {
    if constexpr (VEC) {
      // C % 4 == 0 and kk % 4 == 0: the chunk's 4 kk share (r, s), are contiguous, and are
      // either all < KG or all >= KG (KG = R*S*C is a multiple of 4).
      const bool k_ok = kk < KG;
#pragma unroll
      for (int l = 0; l < T::kALoads; ++l) {
        const int ih = a_ih0[l] + ih_off;
        const int iw = a_iw0[l] + iw_off;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (k_ok && unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W))
          v = __ldg(reinterpret_cast<const float4*>(x + a_img[l] + (ih * W + iw) * C + c));
        ra[l][0] = v.x; ra[l][1] = v.y; ra[l][2] = v.z; ra[l][3] = v.w;
      }
#pragma unroll
      for (int l = 0; l < T::kBLoads; ++l) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (k_ok) v = __ldg(reinterpret_cast<const float4*>(w + b_off[l] + kk));
        rb[l][0] = v.x; rb[l][1] = v.y; rb[l][2] = v.z; rb[l][3] = v.w;
      }
    } else {
      // Scalar path: each of the 4 kk has its own (r, s, c); step the cursor copy by one.
      int cj = c, sj = s, ihj = ih_off, iwj = iw_off;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const bool k_ok = kk + j < KG;
#pragma unroll
        for (int l = 0; l < T::kALoads; ++l) {
          const int ih = a_ih0[l] + ihj;
          const int iw = a_iw0[l] + iwj;
          ra[l][j] = (k_ok && unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W))
                         ? __ldg(x + a_img[l] + (ih * W + iw) * C + cj)
                         : 0.f;
        }
#pragma unroll
        for (int l = 0; l < T::kBLoads; ++l)
          rb[l][j] = k_ok ? __ldg(w + b_off[l] + kk + j) : 0.f;
        if (++cj == C) {
          cj = 0;
          iwj += prob.dil_w;
          if (++sj == S) {
            sj = 0;
            iwj = 0;
            ihj += prob.dil_h;
          }
        }
      }
    }
  };
  auto advance = [&]() {  // kk += BK, keeping (c, s, ih_off, iw_off) consistent
    kk += BK;
    c += BK;
    while (c >= C) {  // at most once when C >= BK
      c -= C;
      iw_off += prob.dil_w;
      if (++s == S) {
        s = 0;
        iw_off = 0;
        ih_off += prob.dil_h;
      }
    }
  };
  auto store_tile = [&](int buf) {
#pragma unroll
    for (int l = 0; l < T::kALoads; ++l)
#pragma unroll
      for (int j = 0; j < 4; ++j) sA[buf][ld_kc * 4 + j][ld_row + l * T::kRowStep] = ra[l][j];
#pragma unroll
    for (int l = 0; l < T::kBLoads; ++l)
#pragma unroll
      for (int j = 0; j < 4; ++j) sB[buf][ld_kc * 4 + j][ld_row + l * T::kRowStep] = rb[l][j];
  };

  // ---- compute role: 8x8 micro-tile ----
  const int warp = tid >> 5, lane = tid & 31;
  const int wm = warp / T::kWarpsN, wn = warp % T::kWarpsN;
  const int a_col = wm * 32 + (lane >> 3) * 4;  // first of this thread's rows in the tile
  const int b_col = wn * 64 + (lane & 7) * 4;   // first of this thread's columns in the tile

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  if (num_tiles > 0) {
    load_tile();
    store_tile(0);
    advance();
    __syncthreads();
    for (int t = 0; t < num_tiles; ++t) {
      const int buf = t & 1;
      const bool has_next = t + 1 < num_tiles;
      if (has_next) load_tile();  // global loads in flight during the FFMAs below
#pragma unroll
      for (int kq = 0; kq < BK; ++kq) {
        const float4 a0 = *reinterpret_cast<const float4*>(&sA[buf][kq][a_col]);
        const float4 a1 = *reinterpret_cast<const float4*>(&sA[buf][kq][a_col + 16]);
        const float4 b0 = *reinterpret_cast<const float4*>(&sB[buf][kq][b_col]);
        const float4 b1 = *reinterpret_cast<const float4*>(&sB[buf][kq][b_col + 32]);
        const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      if (has_next) {
        store_tile(buf ^ 1);  // the other buffer: last read before the previous barrier
        advance();
      }
      __syncthreads();
    }
  }

  // ---- epilogue: rows a_col + {0..3, 16..19}, columns b_col + {0..3, 32..35} ----
  float* yz = y + (long long)blockIdx.z * split_stride;
  const bool vec_store = (K % 4 == 0) && ((reinterpret_cast<uintptr_t>(yz) & 15) == 0);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + a_col + (i < 4 ? i : 12 + i);  // i >= 4: a_col + 16 + (i - 4)
    if (m >= M) continue;
    float* yrow = yz + m * K;  // m*K + n < N*P*Q*K < 2^31
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int n = n0 + b_col + h * 32;
      if (atomic) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (n + j < K) atomicAdd(yrow + n + j, acc[i][h * 4 + j]);
      } else if (vec_store && n < K) {  // K % 4 == 0 and n % 4 == 0: n < K => n + 3 < K
        *reinterpret_cast<float4*>(yrow + n) =
            make_float4(acc[i][h * 4 + 0], acc[i][h * 4 + 1], acc[i][h * 4 + 2], acc[i][h * 4 + 3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (n + j < K) yrow[n + j] = acc[i][h * 4 + j];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: the tile configurations that variants may pick at run time.
// ---------------------------------------------------------------------------------------------
enum class TileCfg : int { k128x128 = 0, k128x64 = 1, k64x128 = 2 };
// Reduction step of every configuration. BK = 16 was tried: with the 128-register cap of the
// 128x128 tile it spills (16 staged floats + second row state per thread), so BK stays 8.
constexpr int kBK = 8;

struct TileInfo {
  int bm, bn, bk, threads;
  size_t smem_bytes;
  std::string name;  // "BMxBNxBK"
};

inline TileInfo make_tile_info(int bm, int bn, int bk, int threads, size_t smem) {
  return {bm, bn, bk, threads, smem,
          std::to_string(bm) + "x" + std::to_string(bn) + "x" + std::to_string(bk)};
}

inline TileInfo tile_info(TileCfg cfg) {
  switch (cfg) {
    case TileCfg::k128x128: {
      using T = TileShape<128, 128, kBK>;
      return make_tile_info(128, 128, kBK, T::kThreads, T::kSmemBytes);
    }
    case TileCfg::k128x64: {
      using T = TileShape<128, 64, kBK>;
      return make_tile_info(128, 64, kBK, T::kThreads, T::kSmemBytes);
    }
    case TileCfg::k64x128: {
      using T = TileShape<64, 128, kBK>;
      return make_tile_info(64, 128, kBK, T::kThreads, T::kSmemBytes);
    }
  }
  FAIL("unknown tile configuration %d", int(cfg));
}

inline int k_tiles(const ConvProblem& prob, TileCfg cfg) {
  return (prob.gemm_k() + tile_info(cfg).bk - 1) / tile_info(cfg).bk;
}

inline dim3 tile_grid(const ConvProblem& prob, TileCfg cfg, int splits) {
  const TileInfo t = tile_info(cfg);
  return dim3(unsigned((prob.gemm_m() + t.bm - 1) / t.bm), unsigned((prob.k + t.bn - 1) / t.bn),
              unsigned(splits));
}

// 128-bit global loads need C % 4 == 0 and 16-byte aligned base pointers.
inline bool vector_loads_ok(const ConvProblem& prob, const float* x, const float* w) {
  return prob.c % 4 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
         (reinterpret_cast<uintptr_t>(w) & 15) == 0;
}

template <int BM, int BN>
void launch_shape(const ConvProblem& prob, const float* x, const float* w, float* y,
                  dim3 grid, int tiles_per_split, long long split_stride, bool atomic,
                  cudaStream_t stream) {
  using T = TileShape<BM, BN, kBK>;
  if (vector_loads_ok(prob, x, w))
    conv2d_register_tile_kernel<BM, BN, kBK, true><<<grid, T::kThreads, 0, stream>>>(
        prob, x, w, y, tiles_per_split, split_stride, atomic ? 1 : 0);
  else
    conv2d_register_tile_kernel<BM, BN, kBK, false><<<grid, T::kThreads, 0, stream>>>(
        prob, x, w, y, tiles_per_split, split_stride, atomic ? 1 : 0);
  CHECK_LAUNCH();
}

// Launches the register-tiled kernel with `splits` slices of the reduction over blockIdx.z.
//   splits == 1: plain conv2d into y.
//   atomic:      every slice atomicAdds into y, which the caller must have zeroed.
//   otherwise:   slice z stores its partial result to y + z*split_stride (a workspace).
inline void launch_register_tile(TileCfg cfg, const ConvProblem& prob, const float* x,
                                 const float* w, float* y, int splits, bool atomic,
                                 long long split_stride, cudaStream_t stream) {
  const int kt = k_tiles(prob, cfg);
  const int tiles_per_split = (kt + splits - 1) / splits;
  const dim3 grid = tile_grid(prob, cfg, splits);
  check_grid(grid, "conv2d_register_tile_kernel");
  switch (cfg) {
    case TileCfg::k128x128:
      launch_shape<128, 128>(prob, x, w, y, grid, tiles_per_split, split_stride, atomic, stream);
      return;
    case TileCfg::k128x64:
      launch_shape<128, 64>(prob, x, w, y, grid, tiles_per_split, split_stride, atomic, stream);
      return;
    case TileCfg::k64x128:
      launch_shape<64, 128>(prob, x, w, y, grid, tiles_per_split, split_stride, atomic, stream);
      return;
  }
  FAIL("unknown tile configuration %d", int(cfg));
}

}  // namespace rt
