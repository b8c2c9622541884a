// mma_implicit_gemm.cu -- variant 5: tensor cores through mma.sync (Ampere-style, runs on Hopper).
// opbench: dtypes=f16,bf16,f32 f32_math=tf32
//
// Adds over split_reduction (fp32 FFMA, register-staged double buffering): the block tile's
// inner product runs on the tensor cores. f16 and bf16 inputs use mma.sync m16n8k16 (f32
// accumulate); f32 inputs use mma.sync m16n8k8.tf32, each operand rounded with cvt.rna.tf32.f32
// (so f32 results are tf32 results and are judged with the tf32 tolerance). Output contract: Y
// is stored in the input type, so f16 / bf16 inputs give a 16-bit Y (the float32 accumulators
// rounded to nearest even, once) and tf32 gives a float32 Y. Around it:
//   * global -> shared by 16-byte cp.async.cg with zero fill (padding taps, kk >= KG, rows past
//     M or K), a kStages-deep pipeline (one __syncthreads per k-tile); the next tile's copies
//     are issued in kKSteps parts between the MMAs of the current one, branch-free (past the
//     end of a slice they zero-fill the free stage). Each thread decodes its A rows once into
//     an X offset and a 2 x 16-bit tap-validity mask, and walks (r, s, c) incrementally, so a
//     copy costs a mask test and an add (no division in the loop);
//   * shared rows of kChunks x 16 bytes (128 B = 64 halves or 32 floats in all four tiles), the
//     16-byte chunks XOR-swizzled by row: cp.async stores and ldmatrix.x4 reads of 8 rows hit 8
//     distinct 16-byte bank groups (conflict-free);
//   * shared -> registers by ldmatrix.x4 for A and B (both "kk contiguous": X's im2col rows and
//     Wt's KRSC rows), the same byte-level fragment addressing for 16-bit and tf32 operands;
//     fragments double-buffered (k-step ks + 1 is read while the MMAs of ks run);
//   * four block tiles (kTile* below), split-K over blockIdx.y for layers with few tiles: the
//     slices atomicAdd into zeroed float32 sums, Y itself for f32 and the float32 workspace for
//     a 16-bit Y (one more pass, round_output(), rounds it into Y); variant_prepare times every
//     (tile, split) candidate on the real problem through tune_candidates() (cuda/common/
//     conv2d.cuh: each one's output cross-checked against the first's) and keeps the fastest
//     valid;
//   * epilogue: accumulators staged through shared memory (the pipeline's buffers), then rows
//     of Y written coalesced, guarded against M and K: float32 Y (and split-K sums) as float4
//     (K % 4 == 0; scalar otherwise); a 16-bit Y is rounded as it is staged and written 8
//     outputs per 16-byte store (K % 8 == 0; two 8-byte stores if K % 4 == 0; else scalar).
// Paths ("path" in detail): "cp_async_16B" needs C % 8 == 0 (16-bit) or C % 4 == 0 (f32),
// R, S <= 16 (the masks) and 16-byte aligned X and Wt, so a chunk is 16 contiguous bytes of one
// (r, s) tap. Otherwise "guarded_scalar": the same kernel with element-wise zero-filling global
// loads stored to shared memory (C = 3 stem layers, odd C), each element with its own (r, s, c)
// and bounds check.
//
// Prediction, measured outcome and profile: docs/perf-log.md, "Tensor cores: mma_implicit_gemm".
#include "conv2d.cuh"
#include "mma_ptx.cuh"
#include "round_output.cuh"

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Block tile configurations
// ---------------------------------------------------------------------------------------------
// BM x BN outputs per block, kChunks 16-byte chunks of the reduction per shared-memory row
// (kChunks * 8 halves or kChunks * 4 floats per k-tile), kWarpsM x kWarpsN warps, kStages deep.
// kMinBlocksPerSm: blocks per SM promised to ptxas for the cp.async path (caps its registers at
// 65536 / (threads * blocks)); chosen so registers allow as many blocks as shared memory does.
template <int BM, int BN, int kChunksPerRow, int kWarpsAlongM, int kWarpsAlongN, int kStageCount,
          int kMinBlocksPerSm>
struct TileCfg {
  static constexpr int kBM = BM;
  static constexpr int kBN = BN;
  static constexpr int kChunks = kChunksPerRow;
  static constexpr int kWarpsM = kWarpsAlongM;
  static constexpr int kWarpsN = kWarpsAlongN;
  static constexpr int kStages = kStageCount;
  static constexpr int kMinBlocks = kMinBlocksPerSm;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int kWarpM = BM / kWarpsM;           // warp tile rows (output pixels)
  static constexpr int kWarpN = BN / kWarpsN;           // warp tile columns (output channels)
  static constexpr int kMTiles = kWarpM / 16;           // m16 MMA tiles per warp
  static constexpr int kNTiles = kWarpN / 8;            // n8 MMA tiles per warp
  static constexpr int kRowBytes = kChunks * mma::kChunkBytes;
  static constexpr int kKSteps = kChunks / mma::kChunksPerKStep;  // MMAs deep per k-tile
  static constexpr int kRowsPerLine = 128 / kRowBytes;  // rows sharing one 128-byte bank line
  static constexpr int kRowStep = kThreads / kChunks;   // rows between one thread's loads
  static constexpr int kARows = BM / kRowStep;          // A rows (chunks) loaded per thread
  static constexpr int kBRows = BN / kRowStep;          // B rows (chunks) loaded per thread
  static constexpr int kStageBytes = (BM + BN) * kRowBytes;
  static constexpr int kCStride = BN + 8;  // floats per row of the staged C tile (epilogue)
  static constexpr int kC16Stride = BN + 8;  // 16-bit values per row of a staged 16-bit C tile
  static constexpr int kSmemBytes = kStages * kStageBytes;

  static_assert(kChunks == 4 || kChunks == 8,
                "rows of 64 or 128 bytes: the XOR swizzle permutes the 8 16-byte bank groups of "
                "one 128-byte line across 8 consecutive rows");
  static_assert(BM % (16 * kWarpsM) == 0 && BN % (16 * kWarpsN) == 0,
                "warp tiles are whole m16 tiles and whole pairs of n8 tiles (one B ldmatrix.x4)");
  static_assert(kThreads % kChunks == 0 && BM % kRowStep == 0 && BN % kRowStep == 0,
                "every thread loads the same number of whole chunks of A and of B");
  static_assert(kRowStep % 8 == 0,
                "a thread's rows differ by a multiple of 8, so they share one swizzle pattern");
  static_assert(kStages >= 2, "a multistage pipeline needs at least two stages");
  static_assert(BM * kCStride * 4 <= kSmemBytes,
                "the epilogue stages the BM x BN float tile in the pipeline's shared memory");
  static_assert(kCStride % 32 == 8,
                "C-tile rows 8 banks apart: the float2 fragment stores of rows g = 0..3 and "
                "lanes t = 0..3 cover all 32 banks once");
  static_assert((kC16Stride / 2) % 32 == 4 && kC16Stride % 8 == 0,
                "16-bit C-tile rows 4 banks apart (the 32-bit pair stores of rows g = 0..7 and "
                "lanes t = 0..3 cover all 32 banks once) and 16-byte aligned (uint4 reads)");
};

using kTile128x128w8 = TileCfg<128, 128, 8, 2, 4, 3, 2>;  // 8 warps of 64x32, 96 KB
using kTile128x128w4 = TileCfg<128, 128, 8, 2, 2, 3, 2>;  // 4 warps of 64x64, 96 KB
using kTile128x64 = TileCfg<128, 64, 8, 2, 2, 3, 3>;      // 4 warps of 64x32, 72 KB
using kTile64x64 = TileCfg<64, 64, 8, 2, 2, 4, 3>;        // 4 warps of 32x32, 64 KB: small layers

enum class Tile { k128x128w8, k128x128w4, k128x64, k64x64 };
constexpr Tile kTiles[] = {Tile::k128x128w8, Tile::k128x128w4, Tile::k128x64, Tile::k64x64};
// 64x64 warp tiles hold 128 accumulators per thread: next to the guarded path's per-element
// load state they spill, so that path never uses this tile (and it is not compiled for it).
constexpr bool has_guarded_path(Tile t) { return t != Tile::k128x128w4; }

// Split-K (conv2d.cuh's kSplitCounts) is tried when a tile leaves the GPU under-filled (fewer
// than kSplitBelowWaves waves of one block per SM); each slice keeps >= kMinTilesPerSplit
// k-tiles and the grid stays <= kMaxSplitBlocksPerSm blocks per SM.
constexpr int kSplitBelowWaves = 2;
constexpr int kMinTilesPerSplit = 4;
constexpr int kMaxSplitBlocksPerSm = 4;
// The cp.async path keeps each row's filter-tap validity as two 16-bit masks (rows, columns).
constexpr int kMaxMaskTaps = 16;
// ih0 of rows past M: far below 0 even after + r * dil_h (finalize() bounds that by 2^30).
constexpr int kInvalidCoord = -(1 << 30);

// Swizzled 16-byte chunk index of logical chunk `chunk` in shared row `row`.
template <class Cfg>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  return chunk ^ ((row / Cfg::kRowsPerLine) & (Cfg::kChunks - 1));
}

// ---------------------------------------------------------------------------------------------
// The kernel. Grid: x = output tile (m-tile major, n-tile minor: neighbouring blocks share their
// A rows), y = split-K slice. Block: Cfg::kThreads. Dynamic shared memory: Cfg::kSmemBytes.
// kVec: cp.async path (see the header); otherwise guarded element-wise loads. OutT: the type
// written, T itself (Y) or float (Y for f32; the split-K workspace for a 16-bit Y); only a float
// output may be atomic (atomic_out: add into zeroed sums, for split-K).
// ---------------------------------------------------------------------------------------------

// Per-thread state of its A rows (output pixels), decoded once per block.
//   kVec: base = X offset of tap (0, 0), channel 0 (may be negative: padding); mask bit r set
//         if row r of the filter lands inside the image (r < R <= kMaxMaskTaps), bit 16 + s for
//         column s; 0 for rows past M. A tap (r, s) is valid iff both of its bits are set.
//   guarded: image row offset n*H and the window origin (ih0, iw0); ih0 = kInvalidCoord past M.
template <bool kVec, int kRows>
struct ARows {
  int base[kRows];
  uint32_t mask[kRows];
};
template <int kRows>
struct ARows<false, kRows> {
  int nh[kRows], ih0[kRows], iw0[kRows];
};

// The blocks-per-SM promise: Cfg::kMinBlocks on the cp.async path, except for tf32 on 8-warp
// tiles (the cvt'ed double-buffered fragments spilled at 128 registers on sm_80) and the guarded
// path (its per-element load state needs the registers): those promise 1.
template <class T, class Cfg, bool kVec>
constexpr int min_blocks() {
  return kVec && (sizeof(T) == 2 || Cfg::kThreads <= 128) ? Cfg::kMinBlocks : 1;
}

template <class T, class OutT, class Cfg, bool kVec>
__global__ void __launch_bounds__(Cfg::kThreads, min_blocks<T, Cfg, kVec>())
mma_conv_kernel(const ConvProblem prob, const T* __restrict__ x, const T* __restrict__ w,
                OutT* __restrict__ y, int tiles_n, int k_tiles_per_split, bool atomic_out) {
  static_assert(std::is_same_v<OutT, T> || std::is_same_v<OutT, float>,
                "the output is Y in the input type or float32 sums");
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kE = mma::Elem<T>::kPerChunk;  // elements per 16-byte chunk
  constexpr int kBK = Cfg::kChunks * kE;       // reduction elements per k-tile
  using Raw = std::conditional_t<sizeof(T) == 2, uint16_t, uint32_t>;

  const int M = prob.gemm_m(), N = prob.gemm_n(), KG = prob.gemm_k();
  const int H = prob.h, W = prob.w, C = prob.c, S = prob.s;
  const int m0 = int(blockIdx.x / unsigned(tiles_n)) * Cfg::kBM;
  const int n0 = int(blockIdx.x % unsigned(tiles_n)) * Cfg::kBN;
  const int k_tiles = (KG + kBK - 1) / kBK;
  const int kt_begin = int(blockIdx.y) * k_tiles_per_split;
  const int kt_end = min(k_tiles, kt_begin + k_tiles_per_split);

  // ---- loader state: this thread's chunk column and rows, decoded once ----------------------
  const int tid = int(threadIdx.x);
  const int cc = tid % Cfg::kChunks;
  const int row0 = tid / Cfg::kChunks;
  const int dst0 = row0 * Cfg::kRowBytes + swizzle<Cfg>(row0, cc) * mma::kChunkBytes;
  ARows<kVec, Cfg::kARows> rows;
#pragma unroll
  for (int i = 0; i < Cfg::kARows; ++i) {
    const int m = m0 + row0 + i * Cfg::kRowStep;
    const int q = m % prob.q, t = m / prob.q;
    const int p = t % prob.p, n = t / prob.p;
    const int ih0 = p * prob.stride_h - prob.pad_h, iw0 = q * prob.stride_w - prob.pad_w;
    if constexpr (kVec) {
      uint32_t mask = 0;
      for (int r = 0; r < prob.r; ++r)
        mask |= uint32_t(unsigned(ih0 + r * prob.dil_h) < unsigned(H)) << r;
      for (int s = 0; s < S; ++s)
        mask |= uint32_t(unsigned(iw0 + s * prob.dil_w) < unsigned(W)) << (16 + s);
      rows.mask[i] = m < M ? mask : 0u;
      rows.base[i] = int((unsigned(n * H + ih0) * unsigned(W) + unsigned(iw0)) * unsigned(C));
    } else {
      rows.nh[i] = n * H;
      rows.ih0[i] = m < M ? ih0 : kInvalidCoord;
      rows.iw0[i] = iw0;
    }
  }
  const int b_row0 = n0 + row0;  // Wt row of this thread's first B chunk
  const uint32_t smem_base = mma::smem_addr(smem);

  // The reduction cursor of this thread's chunk column for the next tile to load: kk and its
  // tap (r, s, c). Advanced by kBK per loaded tile (no division in the loop).
  int cur_kk = kt_begin * kBK + cc * kE;
  int cur_c, cur_s, cur_r;
  {
    const int kk = min(cur_kk, KG - 1);  // past the end: any tap, the loads are masked off
    const int rs = kk / C;
    cur_c = kk - rs * C;
    cur_r = rs / S;
    cur_s = rs - cur_r * S;
  }
  auto advance_cursor = [&]() {
    cur_kk += kBK;
    cur_c += kBK;
    while (cur_c >= C) {
      cur_c -= C;
      if (++cur_s == S) {
        cur_s = 0;
        ++cur_r;
      }
    }
  };

  // Loads of one k-tile into stage `stage`, for the cursor's tile. The kVec path issues them
  // in kKSteps parts, one before each k-step's MMAs; `part` selects rows i % kKSteps == part.
  struct Tap {
    bool k_ok;
    int x_off;      // X offset of tap (r, s), channel c, relative to a row's base
    uint32_t bits;  // (1 << r) | (1 << (16 + s))
  };
  auto current_tap = [&](bool live) {  // live = false: zero-fill (a stage nobody reads again)
    Tap tap;
    tap.k_ok = live && cur_kk < KG;
    tap.x_off = int((unsigned(cur_r * prob.dil_h) * unsigned(W) + unsigned(cur_s * prob.dil_w)) *
                        unsigned(C) + unsigned(cur_c));
    tap.bits = tap.k_ok ? (1u << cur_r) | (1u << (16 + cur_s)) : 0u;
    return tap;
  };
  auto load_part = [&](int stage, const Tap& tap, int part) {
    if constexpr (kVec) {  // (the guarded kernel has no masks: discarded there)
      const uint32_t sa = smem_base + stage * Cfg::kStageBytes + dst0;
      const uint32_t sb = sa + Cfg::kBM * Cfg::kRowBytes;
#pragma unroll
      for (int i = 0; i < Cfg::kARows; ++i) {
        if (i % Cfg::kKSteps != part) continue;
        const bool ok = tap.k_ok && (rows.mask[i] & tap.bits) == tap.bits;
        mma::cp_async_16(sa + i * Cfg::kRowStep * Cfg::kRowBytes,
                         ok ? x + (rows.base[i] + tap.x_off) : x, ok);
      }
#pragma unroll
      for (int j = 0; j < Cfg::kBRows; ++j) {
        if (j % Cfg::kKSteps != part) continue;
        const int n = b_row0 + j * Cfg::kRowStep;
        const bool ok = tap.k_ok && n < N;
        mma::cp_async_16(sb + j * Cfg::kRowStep * Cfg::kRowBytes, ok ? w + n * KG + cur_kk : w, ok);
      }
    }
  };
  // Guarded path: element-wise loads, each of the chunk's kE indices with its own tap.
  auto load_guarded = [&](int stage) {
    if constexpr (!kVec) {
      const uint32_t sa = stage * Cfg::kStageBytes + dst0;  // offsets into smem[]
      const uint32_t sb = sa + Cfg::kBM * Cfg::kRowBytes;
      int tap_dh[kE], tap_dw[kE], tap_c[kE];
      bool tap_ok[kE];
      {
        int c = cur_c, s = cur_s, r = cur_r;
#pragma unroll
        for (int e = 0; e < kE; ++e) {
          tap_ok[e] = cur_kk + e < KG;
          tap_dh[e] = r * prob.dil_h;
          tap_dw[e] = s * prob.dil_w;
          tap_c[e] = c;
          if (++c == C) {
            c = 0;
            if (++s == S) {
              s = 0;
              ++r;
            }
          }
        }
      }
      const Raw* xr = reinterpret_cast<const Raw*>(x);
      const Raw* wr = reinterpret_cast<const Raw*>(w);
#pragma unroll
      for (int i = 0; i < Cfg::kARows; ++i) {
        __align__(16) Raw v[kE];
#pragma unroll
        for (int e = 0; e < kE; ++e) {
          const int ih = rows.ih0[i] + tap_dh[e], iw = rows.iw0[i] + tap_dw[e];
          const bool ok = tap_ok[e] && unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W);
          v[e] = ok ? xr[((rows.nh[i] + ih) * W + iw) * C + tap_c[e]] : Raw(0);
        }
        *reinterpret_cast<uint4*>(smem + sa + i * Cfg::kRowStep * Cfg::kRowBytes) =
            *reinterpret_cast<const uint4*>(v);
      }
#pragma unroll
      for (int j = 0; j < Cfg::kBRows; ++j) {
        const int n = b_row0 + j * Cfg::kRowStep;
        __align__(16) Raw v[kE];
#pragma unroll
        for (int e = 0; e < kE; ++e) v[e] = tap_ok[e] && n < N ? wr[n * KG + cur_kk + e] : Raw(0);
        *reinterpret_cast<uint4*>(smem + sb + j * Cfg::kRowStep * Cfg::kRowBytes) =
            *reinterpret_cast<const uint4*>(v);
      }
    }
  };

  // ---- fragment addressing (ldmatrix.x4: lane l supplies the address of one 16-byte row) ----
  const int warp = tid / 32, lane = tid % 32;
  const int wm = warp / Cfg::kWarpsN, wn = warp % Cfg::kWarpsN;
  // A: matrices (rows 0-7 | 8-15) x (chunk 0 | 1) of an m16 x 32-byte slice -> a0..a3.
  const int a_row = wm * Cfg::kWarpM + lane % 16;
  const int a_sel = lane / 16;
  const int a_swz = swizzle<Cfg>(a_row, 0);
  // B: matrices (n 0-7, chunk 0), (n 0-7, chunk 1), (n 8-15, chunk 0), (n 8-15, chunk 1): the
  // b0/b1 registers of two neighbouring n8 tiles.
  const int b_row = wn * Cfg::kWarpN + lane % 8 + 8 * (lane / 16);
  const int b_sel = (lane / 8) % 2;
  const int b_swz = swizzle<Cfg>(b_row, 0);

  float acc[Cfg::kMTiles][Cfg::kNTiles][4];
#pragma unroll
  for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
    for (int ni = 0; ni < Cfg::kNTiles; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;

  // Fragments of one k-step (32 bytes of reduction): A for kMTiles m16 tiles, B for kNTiles n8.
  using AFrag = uint32_t[Cfg::kMTiles][4];
  using BFrag = uint32_t[Cfg::kNTiles][2];
  auto load_frags = [&](int stage, int ks, AFrag& a, BFrag& b) {
    const uint32_t sa = smem_base + stage * Cfg::kStageBytes;
    const uint32_t sb = sa + Cfg::kBM * Cfg::kRowBytes;
#pragma unroll
    for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
      const int chunk = (ks * mma::kChunksPerKStep + a_sel) ^ a_swz;
      mma::ldmatrix_x4(a[mi], sa + (a_row + mi * 16) * Cfg::kRowBytes + chunk * mma::kChunkBytes);
      mma::to_mma_operand<T>(a[mi]);
    }
#pragma unroll
    for (int nj = 0; nj < Cfg::kNTiles / 2; ++nj) {
      const int chunk = (ks * mma::kChunksPerKStep + b_sel) ^ b_swz;
      uint32_t t[4];
      mma::ldmatrix_x4(t, sb + (b_row + nj * 16) * Cfg::kRowBytes + chunk * mma::kChunkBytes);
      mma::to_mma_operand<T>(t);
      b[2 * nj][0] = t[0];
      b[2 * nj][1] = t[1];
      b[2 * nj + 1][0] = t[2];
      b[2 * nj + 1][1] = t[3];
    }
  };
  auto mma_frags = [&](const AFrag& a, const BFrag& b) {
#pragma unroll
    for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
      for (int ni = 0; ni < Cfg::kNTiles; ++ni) mma::mma_16x8<T>(acc[mi][ni], a[mi], b[ni]);
  };
  auto load_tile = [&](int stage) {  // whole tile at once (prologue)
    if constexpr (kVec) {
      const Tap tap = current_tap(true);
#pragma unroll
      for (int part = 0; part < Cfg::kKSteps; ++part) load_part(stage, tap, part);
    } else {
      load_guarded(stage);
    }
    advance_cursor();
  };

  // ---- multistage pipeline: kStages - 1 tiles in flight while one is computed --------------
#pragma unroll
  for (int st = 0; st < Cfg::kStages - 1; ++st) {
    if (kt_begin + st < kt_end) load_tile(st);
    mma::cp_async_commit();
  }
  int read_stage = 0, write_stage = Cfg::kStages - 1;
  AFrag a_frag[2];  // double-buffered: k-step ks + 1 is read from shared memory while the
  BFrag b_frag[2];  // MMAs of k-step ks run
  for (int kt = kt_begin; kt < kt_end; ++kt) {
    mma::cp_async_wait<Cfg::kStages - 2>();  // tile kt has landed (this thread's part)
    __syncthreads();                         // ... everyone's; and stage kt-1 is free again
    const bool prefetch = kt + Cfg::kStages - 1 < kt_end;
    load_frags(read_stage, 0, a_frag[0], b_frag[0]);
    if constexpr (kVec) {
      // Branch-free: past the slice's end the loads zero-fill the free stage instead.
      const Tap tap = current_tap(prefetch);
#pragma unroll
      for (int ks = 0; ks < Cfg::kKSteps; ++ks) {
        if (ks + 1 < Cfg::kKSteps)
          load_frags(read_stage, ks + 1, a_frag[(ks + 1) % 2], b_frag[(ks + 1) % 2]);
        load_part(write_stage, tap, ks);  // the next tile's loads, spread over the k-steps
        mma_frags(a_frag[ks % 2], b_frag[ks % 2]);
      }
      advance_cursor();
    } else {
      if (prefetch) load_tile(write_stage);
#pragma unroll
      for (int ks = 0; ks < Cfg::kKSteps; ++ks) {
        if (ks + 1 < Cfg::kKSteps)
          load_frags(read_stage, ks + 1, a_frag[(ks + 1) % 2], b_frag[(ks + 1) % 2]);
        mma_frags(a_frag[ks % 2], b_frag[ks % 2]);
      }
    }
    mma::cp_async_commit();
    read_stage = read_stage + 1 == Cfg::kStages ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == Cfg::kStages ? 0 : write_stage + 1;
  }
  mma::cp_async_wait<0>();
  __syncthreads();  // every warp is done with the pipeline buffers: reuse them for C

  // ---- epilogue: fragments -> shared C tile -> coalesced rows of Y -------------------------
  // Fragment layout: c0,c1 at (row g, cols 2t, 2t+1), c2,c3 at (row g + 8, same cols).
  const int g = lane / 4, t4 = lane % 4;
  // Calls stage(row, col, v0, v1) for each accumulator pair and its place in the C tile.
  auto for_each_pair = [&](auto&& stage) {
#pragma unroll
    for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
      for (int ni = 0; ni < Cfg::kNTiles; ++ni)
#pragma unroll
        for (int half = 0; half < 2; ++half)
          stage(wm * Cfg::kWarpM + mi * 16 + g + 8 * half, wn * Cfg::kWarpN + ni * 8 + 2 * t4,
                acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
  };
  if constexpr (std::is_same_v<OutT, float>) {  // float32 Y or split-K sums: float4 rows
    float* cs = reinterpret_cast<float*>(smem);
    for_each_pair([&](int row, int col, float v0, float v1) {
      *reinterpret_cast<float2*>(cs + row * Cfg::kCStride + col) = make_float2(v0, v1);
    });
    __syncthreads();
    const bool vec_out = !atomic_out && N % 4 == 0;  // float4 at a 4-aligned column
    constexpr int kGroupsPerRow = Cfg::kBN / 4;
#pragma unroll 4
    for (int idx = tid; idx < Cfg::kBM * kGroupsPerRow; idx += Cfg::kThreads) {
      const int row = idx / kGroupsPerRow, col = (idx % kGroupsPerRow) * 4;
      const int m = m0 + row, n = n0 + col;
      if (m >= M || n >= N) continue;
      const float4 v = *reinterpret_cast<const float4*>(cs + row * Cfg::kCStride + col);
      float* dst = y + m * N + n;
      if (vec_out) {
        *reinterpret_cast<float4*>(dst) = v;
        continue;
      }
      const float vals[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (n + e >= N) break;
        if (atomic_out) atomicAdd(dst + e, vals[e]);
        else dst[e] = vals[e];
      }
    }
  } else {  // 16-bit Y: rounded once as it is staged (half the bytes), 8 outputs per store
    uint32_t* cs = reinterpret_cast<uint32_t*>(smem);  // pairs of OutT
    constexpr int kWordStride = Cfg::kC16Stride / 2;
    for_each_pair([&](int row, int col, float v0, float v1) {
      cs[row * kWordStride + col / 2] = pack_pair<OutT>(v0, v1);
    });
    __syncthreads();
    constexpr int kOutVec = 8;  // outputs per thread and step: 16 bytes
    constexpr int kGroupsPerRow = Cfg::kBN / kOutVec;
    const bool vec16_out = N % 8 == 0;  // one 16-byte store at an 8-aligned column
    const bool vec8_out = N % 4 == 0;   // two 8-byte stores (the second may lie past N)
#pragma unroll 4
    for (int idx = tid; idx < Cfg::kBM * kGroupsPerRow; idx += Cfg::kThreads) {
      const int row = idx / kGroupsPerRow, col = (idx % kGroupsPerRow) * kOutVec;
      const int m = m0 + row, n = n0 + col;
      if (m >= M || n >= N) continue;
      const uint4 v = *reinterpret_cast<const uint4*>(cs + row * kWordStride + col / 2);
      OutT* dst = y + m * N + n;
      if (vec16_out) {
        *reinterpret_cast<uint4*>(dst) = v;
        continue;
      }
      if (vec8_out) {
        *reinterpret_cast<uint2*>(dst) = make_uint2(v.x, v.y);
        if (n + 4 < N) *reinterpret_cast<uint2*>(dst + 4) = make_uint2(v.z, v.w);
        continue;
      }
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
      uint16_t* dst16 = reinterpret_cast<uint16_t*>(dst);
#pragma unroll
      for (int e = 0; e < kOutVec; ++e) {
        if (n + e >= N) break;
        dst16[e] = uint16_t(words[e / 2] >> (16 * (e % 2)));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: one (element type, tile, path) kernel per launch, chosen at run time.
// ---------------------------------------------------------------------------------------------
struct TileInfo {
  int bm, bn, chunks, threads, stages, warp_m, warp_n;
  size_t smem_bytes;
};

template <class Cfg>
TileInfo info_of() {
  return {Cfg::kBM, Cfg::kBN, Cfg::kChunks, Cfg::kThreads, Cfg::kStages, Cfg::kWarpM, Cfg::kWarpN,
          size_t(Cfg::kSmemBytes)};
}

TileInfo tile_info(Tile t) {
  switch (t) {
    case Tile::k128x128w8: return info_of<kTile128x128w8>();
    case Tile::k128x128w4: return info_of<kTile128x128w4>();
    case Tile::k128x64: return info_of<kTile128x64>();
    case Tile::k64x64: return info_of<kTile64x64>();
  }
  FAIL("unknown tile");
}

int chunk_elems(const ConvProblem& prob) { return 16 / int(elem_bytes(prob.elem)); }

// "BMxBNxBK" in elements of this problem's type, plus warps and stages.
std::string tile_name(Tile t, const ConvProblem& prob) {
  const TileInfo i = tile_info(t);
  return std::to_string(i.bm) + "x" + std::to_string(i.bn) + "x" +
         std::to_string(i.chunks * chunk_elems(prob)) + "_w" + std::to_string(i.threads / 32) +
         "_s" + std::to_string(i.stages);
}

int k_tiles(const ConvProblem& prob, Tile t) {
  const int bk = tile_info(t).chunks * chunk_elems(prob);
  return (prob.gemm_k() + bk - 1) / bk;
}

long long output_tiles(const ConvProblem& prob, Tile t) {
  const TileInfo i = tile_info(t);
  return (long long)((prob.gemm_m() + i.bm - 1) / i.bm) * ((prob.gemm_n() + i.bn - 1) / i.bn);
}

bool vec_path(const ConvProblem& prob, const void* x, const void* w) {
  return prob.c % chunk_elems(prob) == 0 && prob.r <= kMaxMaskTaps && prob.s <= kMaxMaskTaps &&
         (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
         (reinterpret_cast<uintptr_t>(w) & 15) == 0;
}

struct Candidate {
  Tile tile;
  int splits;  // effective: every slice has >= 1 k-tile
};

dim3 grid_of(const ConvProblem& prob, const Candidate& c) {
  return dim3(unsigned(output_tiles(prob, c.tile)), unsigned(c.splits));
}

// splits > 1: the slices atomicAdd into `y`, zeroed float32 sums (OutT = float).
template <class T, class OutT, class Cfg, bool kVec>
void launch_typed(const ConvProblem& prob, const void* x, const void* w, OutT* y, int splits,
                  cudaStream_t stream) {
  if (splits > 1 && !std::is_same_v<OutT, float>) FAIL("split-K adds into float32 sums only");
  const auto kernel = mma_conv_kernel<T, OutT, Cfg, kVec>;
  static bool smem_raised = false;  // once per kernel instance (host state, single-threaded)
  if (!smem_raised) {
    CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    Cfg::kSmemBytes));
    smem_raised = true;
  }
  const int tiles_n = (prob.gemm_n() + Cfg::kBN - 1) / Cfg::kBN;
  const int bk = Cfg::kChunks * mma::Elem<T>::kPerChunk;
  const int kt = (prob.gemm_k() + bk - 1) / bk;
  const int per = (kt + splits - 1) / splits;
  const long long tiles =
      (long long)((prob.gemm_m() + Cfg::kBM - 1) / Cfg::kBM) * tiles_n;
  const dim3 grid(unsigned(std::min<long long>(tiles, 0xFFFFFFFFll)), unsigned(splits));
  if (tiles > 2147483647ll) FAIL("%lld output tiles exceed the grid limit", tiles);
  check_grid(grid, "mma_conv_kernel");
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(
      prob, static_cast<const T*>(x), static_cast<const T*>(w), y, tiles_n, per, splits > 1);
  CHECK_LAUNCH();
}

template <class T, class OutT, bool kVec>
void launch_tile(Tile t, const ConvProblem& prob, const void* x, const void* w, OutT* y,
                 int splits, cudaStream_t stream) {
  switch (t) {
    case Tile::k128x128w8:
      return launch_typed<T, OutT, kTile128x128w8, kVec>(prob, x, w, y, splits, stream);
    case Tile::k128x128w4:
      if constexpr (kVec)
        return launch_typed<T, OutT, kTile128x128w4, kVec>(prob, x, w, y, splits, stream);
      else FAIL("tile %s has no guarded path", tile_name(t, prob).c_str());
    case Tile::k128x64:
      return launch_typed<T, OutT, kTile128x64, kVec>(prob, x, w, y, splits, stream);
    case Tile::k64x64:
      return launch_typed<T, OutT, kTile64x64, kVec>(prob, x, w, y, splits, stream);
  }
  FAIL("unknown tile");
}

template <class T, class OutT>
void launch_path(const Candidate& c, const ConvProblem& prob, const void* x, const void* w,
                 OutT* y, cudaStream_t stream) {
  if (vec_path(prob, x, w)) launch_tile<T, OutT, true>(c.tile, prob, x, w, y, c.splits, stream);
  else launch_tile<T, OutT, false>(c.tile, prob, x, w, y, c.splits, stream);
}

// Unsplit: the kernel writes Y (type T). Split-K: the slices atomicAdd into zeroed float32 sums,
// Y itself for f32, else the workspace, which round_output() then rounds into the 16-bit Y.
template <class T>
void launch_elem(const Candidate& c, const ConvProblem& prob, const void* x, const void* w,
                 void* y, void* workspace, cudaStream_t stream) {
  if (c.splits == 1) return launch_path<T, T>(c, prob, x, w, static_cast<T*>(y), stream);
  constexpr bool kSumInY = std::is_same_v<T, float>;
  float* sums = static_cast<float*>(kSumInY ? y : workspace);
  if (sums == nullptr) FAIL("split-K of a 16-bit Y without the float32 workspace");
  CHECK_CUDA(cudaMemsetAsync(sums, 0, size_t(prob.y_elems()) * sizeof(float), stream));
  launch_path<T, float>(c, prob, x, w, sums, stream);
  if constexpr (!kSumInY) round_output(prob, sums, y, stream);
}

void launch_candidate(const Candidate& c, const ConvProblem& prob, const void* x, const void* w,
                      void* y, void* workspace, cudaStream_t stream) {
  switch (prob.elem) {
    case ElemType::f16: return launch_elem<__half>(c, prob, x, w, y, workspace, stream);
    case ElemType::bf16: return launch_elem<__nv_bfloat16>(c, prob, x, w, y, workspace, stream);
    case ElemType::f32: return launch_elem<float>(c, prob, x, w, y, workspace, stream);
  }
  FAIL("unknown element type");
}

std::vector<Candidate> candidate_list(const ConvProblem& prob, bool vec) {
  std::vector<Candidate> out;
  for (Tile t : kTiles) {
    if (!vec && !has_guarded_path(t)) continue;
    out.push_back({t, 1});
    const long long tiles = output_tiles(prob, t);
    if (tiles >= (long long)kSplitBelowWaves * sm_count()) continue;
    for (int splits : balanced_split_counts(k_tiles(prob, t), tiles, kMinTilesPerSplit,
                                            (long long)kMaxSplitBlocksPerSm * sm_count()))
      out.push_back({t, splits});
  }
  return out;
}

Tuning<Candidate> g_tuning;  // filled in variant_prepare; g_tuning.choice() runs
bool g_vec = false;

}  // namespace

const char* variant_name() { return "mma_implicit_gemm"; }

// The float32 split-K sums of a 16-bit Y (split-K of a float32 Y adds into Y itself).
size_t variant_workspace_bytes(const ConvProblem& prob) {
  return prob.elem == ElemType::f32 ? 0 : size_t(prob.y_elems()) * sizeof(float);
}

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets,
                     void* workspace, cudaStream_t stream) {
  require_problem(prob, OpKind::conv2d, {ElemType::f16, ElemType::bf16, ElemType::f32},
                  variant_name());
  g_vec = vec_path(prob, sets[0].x, sets[0].w);
  // Cross-checked against the first candidate. candidate_tolerance(): 1e-4 of max |Y| for a
  // float32 Y (tensor-core fp32 accumulation is not IEEE round-to-nearest; tf32 candidates
  // differed by up to 1e-5 on ResNet-50 layers), two unit roundoffs of a 16-bit Y.
  g_tuning = tune_candidates(
      prob, sets, num_sets, candidate_list(prob, g_vec),
      [&](const Candidate& c, const DeviceSet& s) {
        launch_candidate(c, prob, s.x, s.w, s.y, workspace, stream);
      },
      [&](const Candidate& c) {
        return tile_name(c.tile, prob) + " split " + std::to_string(c.splits);
      },
      /*warmup=*/2, /*reps=*/8, stream);
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y,
                    void* workspace, cudaStream_t stream) {
  launch_candidate(g_tuning.choice(), prob, x, w, y, workspace, stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const Candidate& choice = g_tuning.choice();
  const TileInfo t = tile_info(choice.tile);
  const std::string cands = g_tuning.candidates_json([&](Json& c, const Candidate& cand) {
    c.add_str("tile", tile_name(cand.tile, prob)).add_int("splits", cand.splits);
  });
  detail.add_str("path", g_vec ? "cp_async_16B" : "guarded_scalar")
      .add_str("mma", prob.elem == ElemType::f16    ? mma::Elem<__half>::kMma
                      : prob.elem == ElemType::bf16 ? mma::Elem<__nv_bfloat16>::kMma
                                                    : mma::Elem<float>::kMma)
      .add_str("tile", tile_name(choice.tile, prob))
      .add_str("warp_tile", std::to_string(t.warp_m) + "x" + std::to_string(t.warp_n))
      .add_int("stages", t.stages)
      .add_int("splits", choice.splits)
      .add_str("split_reduction", choice.splits == 1           ? "none"
                                  : prob.elem == ElemType::f32 ? "atomic"
                                                               : "atomic_f32_workspace")
      .add_int("k_tiles", k_tiles(prob, choice.tile))
      .add_raw("candidates", cands);
  launch_config = launch_json(grid_of(prob, choice), dim3(t.threads), t.smem_bytes);
  if (choice.splits > 1) {  // the zeroed float32 sums: Y (f32) or the workspace (16-bit Y)
    launch_config.add_int("memset_bytes", (long long)(prob.y_elems() * sizeof(float)))
        .add_str("memset_buffer", prob.elem == ElemType::f32 ? "y" : "workspace");
    if (prob.elem != ElemType::f32)  // then one pass rounds the workspace into Y
      launch_config.add_str("round_output", "round_output_kernel (float32 workspace -> Y)");
  }
}
