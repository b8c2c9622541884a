// separable_fused.cu -- separable_conv2d in one kernel: the depthwise stage's output never leaves
// the chip, the pointwise 1x1 runs on the tensor cores.
// opbench: op=separable_conv2d dtypes=f16,bf16
//
// Adds over the two-op sequence (depthwise_smem, then a 1x1 GEMM, the intermediate [N,P,Q,C] in
// DRAM): a block owns an 8 x 8 tile of output pixels of one image (kTileP x kTileQ = kM = 64, the
// MMA's M) and a tile of kBN output channels (all of K up to 64; more K tiles, each recomputing
// the depthwise stage from L2-resident X, above that). It walks C in chunks of kCK channels:
//   1. cp.async (16-byte, zero fill for the padding and for channels past C) stages the chunk's
//      input tile with its halo ((8-1)*stride + 3 rows and columns), its 3 x 3 depthwise taps and
//      its [kBN x kCK] slice of the pointwise filter in one of two shared-memory stages; chunk
//      k + 1 is in flight while chunk k is computed;
//   2. depthwise, float32: each thread owns 4 channels (one 8-byte shared load per pixel) of one
//      column of 4 output rows; taps in registers, the input rows walked once (sliding window,
//      (4-1)*stride + 3 rows of 3 pixels); the 16 results rounded to the element type (the
//      rounding a two-op baseline makes when it stores the intermediate) and written to the A
//      tile [64 pixels x kCK], 16-byte chunks XOR-swizzled by row;
//   3. pointwise: ldmatrix.x4 of A and of the filter slice (B, [kBN x kCK] "n-major", the KC
//      rows as they are in memory), mma.sync m16n8k16 (f16 or bf16 in, float32 accumulate) into
//      a 64 x kBN accumulator tile held in registers over all of C (2 x kWarpsN warps, each
//      32 x kNT*8);
//   4. epilogue: each accumulator pair rounded and stored (4 bytes) straight from the fragment,
//      guarded against P, Q and K.
// Paths ("path" in detail): "3x3 stride 1" / "3x3 stride 2" (R = S = 3, no dilation, equal
// strides, C % 8 == 0: the 16-byte copies need whole aligned chunks) with compile-time sizes;
// every other shape (odd C, 5x5, dilation, asymmetric stride, ...) runs "generic": the same
// tiles and MMA, the depthwise stage with runtime sizes straight from global memory (L1/L2),
// scalar guarded loads, the filter slice staged by plain loads. Slow but general.
// kCK = 64 (256 threads) when C > 32; kCK = 32 (128 threads) when C <= 32 and on the generic
// path, so a C = 32 layer does not compute a half-empty chunk.
//
// Prediction and outcome: docs/perf-log.md, "Fused separable convolution".
#include "depthwise.cuh"
#include "mma_ptx.cuh"

#include <string>

namespace {

// ---------------------------------------------------------------------------------------------
// Tile sizes
// ---------------------------------------------------------------------------------------------
constexpr int kTileP = 8;                   // output rows per block
constexpr int kTileQ = 8;                   // output columns per block
constexpr int kM = kTileP * kTileQ;         // output pixels per block: the MMA tile's rows
constexpr int kRows = 4;                    // output rows per depthwise thread (sliding window)
constexpr int kChan = 4;                    // channels per depthwise thread (one 8-byte access)
constexpr int kRuns = kM / kRows;           // depthwise column runs per block
constexpr int kWarpM = 32;                  // MMA rows per warp (two m16 tiles)
constexpr int kWarpsM = kM / kWarpM;        // warps along M
constexpr int kFastR = 3;                   // the fast paths' filter size (R = S = 3)
constexpr int kFastTaps = kFastR * kFastR;
constexpr int kBigChunk = 64;               // kCK when C > kSmallChunk
constexpr int kSmallChunk = 32;             // kCK when C <= 32, and the generic path's
// Widest K tile: 64 (kNT = 2 at kCK = 64). A 128-wide tile's 32 accumulators next to the depthwise
// stage's 36 taps and 16 sums spilled at 128 registers; a wider K runs more K tiles instead (the
// depthwise stage recomputed per tile from L2, but more blocks for the small late layers).
constexpr int kMaxBN = 64;

static_assert(kTileP % kRows == 0, "a depthwise thread's rows stay inside the tile");
static_assert(kM % kWarpM == 0 && kWarpM == 32, "warps own two m16 tiles each");

// Stride: 1 or 2 (compile-time 3x3 path) or 0 (generic: runtime R, S, stride, dilation).
// kCK: channels per chunk; kNT: n8 MMA tiles per warp.
template <int kCK, int kNT, int kStride>
struct Cfg {
  static constexpr bool kFast = kStride > 0;
  static constexpr int kGroups = kCK / kChan;                 // channel groups per chunk
  static constexpr int kThreads = kGroups * kRuns;            // one thread per (group, run)
  static constexpr int kWarps = kThreads / 32;
  static constexpr int kWarpsN = kWarps / kWarpsM;
  static constexpr int kBN = kWarpsN * kNT * 8;               // output channels per block
  static constexpr int kRowBytes = kCK * 2;                   // one pixel's (or K row's) chunk
  static constexpr int kChunks = kRowBytes / mma::kChunkBytes;  // 16-byte chunks per row
  static constexpr int kRowsPerLine = 128 / kRowBytes;        // rows sharing a 128-byte line
  static constexpr int kKSteps = kCK / 16;                    // MMA k-steps per chunk
  // The fast paths' input tile: kInRows x kInCols pixels of kRowBytes.
  static constexpr int kInRows = kFast ? (kTileP - 1) * kStride + kFastR : 0;
  static constexpr int kInCols = kFast ? (kTileQ - 1) * kStride + kFastR : 0;
  static constexpr int kWinRows = kFast ? (kRows - 1) * kStride + kFastR : 0;  // per thread
  static constexpr int kHaloBytes = kInRows * kInCols * kRowBytes;
  static constexpr int kFilterBytes = kFast ? kFastTaps * kRowBytes : 0;
  static constexpr int kBBytes = kBN * kRowBytes;
  static constexpr int kStageBytes = kHaloBytes + kFilterBytes + kBBytes;
  static constexpr int kABytes = kM * kRowBytes;
  static constexpr int kSmemBytes = kABytes + 2 * kStageBytes;  // A + a double-buffered stage
  // Blocks per SM promised to ptxas: 2 x 256 threads (128 registers each); 3 x 128 threads
  // (170 registers: at 4 blocks' 128 the kCK = 32 kernels spilled).
  static constexpr int kMinBlocks = kThreads == 256 ? 2 : 3;

  static_assert(kCK == 32 || kCK == 64, "rows of 64 or 128 bytes (the swizzles below)");
  static_assert(kThreads % kChunks == 0 && kBN % (kThreads / kChunks) == 0,
                "each thread copies one fixed chunk column of whole passes of pixels / B rows");
  static_assert(kWarps % kWarpsM == 0 && kWarpsN >= 1, "warps tile the block's M x kBN");
  static_assert(kNT == 1 || kNT % 2 == 0,
                "B fragments come in pairs of n8 tiles per ldmatrix.x4 (kNT = 1: two k-steps)");
  static_assert(kKSteps % 2 == 0, "kNT = 1 reads the B fragments of two k-steps at once");
  static_assert(kRowBytes != 64 || (kInRows * kInCols) % 2 == 0 ||
                    ((kInRows * kInCols - 1) / 2) % 2 == 0,
                "halo_slot() maps the input tile's pixels onto themselves (no slot past the end)");
  static_assert(kSmemBytes <= 227 * 1024, "fits the opt-in shared memory of sm_80 / sm_90");
};

// Swizzled 16-byte chunk of logical chunk `chunk` in row `row` of the A and B tiles: the 8 rows
// an ldmatrix reads (and the rows the depthwise stage writes) hit 8 distinct bank groups.
template <class C>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  return chunk ^ ((row / C::kRowsPerLine) & (C::kChunks - 1));
}

// Input-tile pixel slot of pixel `pix`: with 64-byte pixels (kCK = 32) the two pixels of each
// 128-byte line swap places in every other line, so the 4 pixels a warp reads (adjacent at
// stride 1, 2 apart at stride 2) fall in both halves of the banks; 128-byte pixels stay put.
template <class C>
__device__ __forceinline__ int halo_slot(int pix) {
  if constexpr (C::kRowBytes == 64) return pix ^ ((pix >> 1) & 1);
  return pix;
}

template <class T, int kCK, int kNT, int kStride>
__global__ void __launch_bounds__(Cfg<kCK, kNT, kStride>::kThreads,
                                  Cfg<kCK, kNT, kStride>::kMinBlocks)
separable_fused_kernel(const ConvProblem prob, int tiles_q, int tiles_p, int k_tiles,
                       const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y) {
  using Cf = Cfg<kCK, kNT, kStride>;
  using V = Pack<T, kChan>;
  static_assert(sizeof(T) == 2, "16-bit inputs (mma.sync m16n8k16)");
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* a_tile = smem;                       // [kM][kCK], swizzled
  unsigned char* stages = smem + Cf::kABytes;         // 2 x (input tile, taps, B)

  const int H = prob.h, W = prob.w, C = prob.c, K = prob.k, P = prob.p, Q = prob.q;
  const T* __restrict__ pw = w + prob.r * prob.s * C;  // [K][C] after the depthwise [R][S][C]

  // ---- the block's tile ----------------------------------------------------------------------
  int bid = int(blockIdx.x);
  const int kt = bid % k_tiles;  // K tiles fastest: blocks sharing X run together (L2)
  bid /= k_tiles;
  const int tq = bid % tiles_q;
  bid /= tiles_q;
  const int tp = bid % tiles_p;
  const int n = bid / tiles_p;
  const int p0 = tp * kTileP, q0 = tq * kTileQ, n0 = kt * Cf::kBN;
  const int num_chunks = (C + kCK - 1) / kCK;

  const int tid = int(threadIdx.x);
  const uint32_t smem_base = mma::smem_addr(smem);
  const uint32_t a_base = smem_base;
  auto stage_addr = [&](int st) { return smem_base + Cf::kABytes + st * Cf::kStageBytes; };

  // ---- stage loads (fast path: cp.async of chunk `chunk` into stage `st`) --------------------
  const int ih0 = p0 * (Cf::kFast ? kStride : prob.stride_h) - prob.pad_h;
  const int iw0 = q0 * (Cf::kFast ? kStride : prob.stride_w) - prob.pad_w;
  // A thread copies the same 16-byte chunk column `cc` of every pixel (and B row) it loads:
  // kThreads is a multiple of kChunks, so only the pixel advances, by kPixPerPass.
  constexpr int kPixPerPass = Cf::kThreads / Cf::kChunks;
  const int cc = tid % Cf::kChunks;
  const int pix_first = tid / Cf::kChunks;
  const T* __restrict__ x_img = x + n * H * W * C;
  auto load_stage = [&](int st, int chunk) {
    if constexpr (Cf::kFast) {
      const int c = chunk * kCK + cc * mma::Elem<T>::kPerChunk;
      const bool c_ok = c < C;
      const uint32_t halo = stage_addr(st);
      const uint32_t filt = halo + Cf::kHaloBytes;
      const uint32_t bt = filt + Cf::kFilterBytes;
      constexpr int kHaloPix = Cf::kInRows * Cf::kInCols;
      // Every copy of the chunk is relative to one pointer (a zero offset where nothing is read),
      // so a copy costs 32-bit index math and one 64-bit add. Not unrolled: unrolled, ptxas
      // keeps every pixel's address live across the chunk loop.
      const T* x_chunk = c_ok ? x_img + c : x;
#pragma unroll 1
      for (int pix = pix_first; pix < kHaloPix; pix += kPixPerPass) {
        const int row = pix / Cf::kInCols;
        const int ih = ih0 + row, iw = iw0 + (pix - row * Cf::kInCols);
        const bool ok = c_ok && unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W);
        mma::cp_async_16(halo + halo_slot<Cf>(pix) * Cf::kRowBytes + cc * mma::kChunkBytes,
                         x_chunk + (ok ? (ih * W + iw) * C : 0), ok);
      }
      if (pix_first < kFastTaps) {  // the taps: kFastTaps rows of kChunks chunks
#pragma unroll
        for (int tap = pix_first; tap < kFastTaps; tap += kPixPerPass)
          mma::cp_async_16(filt + tap * Cf::kRowBytes + cc * mma::kChunkBytes,
                           c_ok ? w + tap * C + c : w, c_ok);
      }
#pragma unroll
      for (int row = pix_first; row < Cf::kBN; row += kPixPerPass) {
        const int kk = n0 + row;
        const bool ok = c_ok && kk < K;
        mma::cp_async_16(bt + row * Cf::kRowBytes + swizzle<Cf>(row, cc) * mma::kChunkBytes,
                         ok ? pw + kk * C + c : w, ok);
      }
    }
  };
  // Generic path: the B slice by plain guarded loads (rows of C values need not be aligned).
  auto load_b_generic = [&](int st, int chunk) {
    if constexpr (!Cf::kFast) {
      const int c0 = chunk * kCK;
      unsigned char* bt = stages + st * Cf::kStageBytes;
      const uint16_t* raw = reinterpret_cast<const uint16_t*>(pw);
      for (int i = tid; i < Cf::kBN * kCK; i += Cf::kThreads) {
        const int row = i / kCK, cl = i % kCK;
        const int kk = n0 + row, c = c0 + cl;
        const uint16_t v = kk < K && c < C ? raw[kk * C + c] : uint16_t(0);
        *reinterpret_cast<uint16_t*>(bt + row * Cf::kRowBytes +
                                     swizzle<Cf>(row, cl / 8) * mma::kChunkBytes + (cl % 8) * 2) = v;
      }
    }
  };

  // ---- depthwise thread: channel group g of column `col`, rows rg*kRows .. + kRows-1 ---------
  const int g = tid % Cf::kGroups;
  const int run = tid / Cf::kGroups;
  const int col = run % kTileQ;
  const int rg = run / kTileQ;
  // A-tile byte offset of this thread's 8 bytes in row m (m = (rg*kRows + out)*kTileQ + col).
  auto a_offset = [&](int m) {
    return m * Cf::kRowBytes + swizzle<Cf>(m, g / 2) * mma::kChunkBytes + (g % 2) * 8;
  };

  auto depthwise = [&](int st, int chunk, float (&acc)[kRows][kChan]) {
#pragma unroll
    for (int o = 0; o < kRows; ++o)
#pragma unroll
      for (int e = 0; e < kChan; ++e) acc[o][e] = 0.f;
    if constexpr (Cf::kFast) {
      const unsigned char* halo = stages + st * Cf::kStageBytes;
      const unsigned char* filt = halo + Cf::kHaloBytes;
      float wt[kFastR][kFastR][kChan];
#pragma unroll
      for (int r = 0; r < kFastR; ++r)
#pragma unroll
        for (int s = 0; s < kFastR; ++s)
          unpack(reinterpret_cast<const V*>(filt + (r * kFastR + s) * Cf::kRowBytes + g * 8),
                 wt[r][s]);
      const int pix0 = rg * kRows * kStride * Cf::kInCols + col * kStride;
#pragma unroll
      for (int row = 0; row < Cf::kWinRows; ++row) {
        float xs[kFastR][kChan];
#pragma unroll
        for (int s = 0; s < kFastR; ++s) {
          const int pix = pix0 + row * Cf::kInCols + s;
          unpack(reinterpret_cast<const V*>(halo + halo_slot<Cf>(pix) * Cf::kRowBytes + g * 8),
                 xs[s]);
        }
#pragma unroll
        for (int o = 0; o < kRows; ++o) {
          const int r = row - o * kStride;  // a constant once unrolled
          if (r < 0 || r >= kFastR) continue;
#pragma unroll
          for (int s = 0; s < kFastR; ++s)
#pragma unroll
            for (int e = 0; e < kChan; ++e) acc[o][e] = fmaf(xs[s][e], wt[r][s][e], acc[o][e]);
        }
      }
    } else {
      // Runtime sizes from global memory, every element guarded (C need not be a multiple of 4).
      const int q = q0 + col;
      const int c_first = chunk * kCK + g * kChan;
      for (int r = 0; r < prob.r; ++r)
        for (int s = 0; s < prob.s; ++s) {
          float wv[kChan];
#pragma unroll
          for (int e = 0; e < kChan; ++e) {
            const int c = c_first + e;
            wv[e] = c < C ? to_f32(w[(r * prob.s + s) * C + c]) : 0.f;
          }
          const int iw = q * prob.stride_w - prob.pad_w + s * prob.dil_w;
#pragma unroll
          for (int o = 0; o < kRows; ++o) {
            const int p = p0 + rg * kRows + o;
            const int ih = p * prob.stride_h - prob.pad_h + r * prob.dil_h;
            if (unsigned(ih) >= unsigned(H) || unsigned(iw) >= unsigned(W)) continue;
            const T* px = x + ((n * H + ih) * W + iw) * C;
#pragma unroll
            for (int e = 0; e < kChan; ++e) {
              const int c = c_first + e;
              if (c < C) acc[o][e] = fmaf(to_f32(px[c]), wv[e], acc[o][e]);
            }
          }
        }
    }
  };

  // ---- MMA state -------------------------------------------------------------------------------
  const int warp = tid / 32, lane = tid % 32;
  const int wm = warp / Cf::kWarpsN, wn = warp % Cf::kWarpsN;
  const int a_row = wm * kWarpM + lane % 16;  // + mi * 16
  const int a_sel = lane / 16;
  // kNT >= 2: matrices (n 0-7, k-chunk 0), (n 0-7, 1), (n 8-15, 0), (n 8-15, 1) of an n16 pair;
  // kNT == 1: (n 0-7, k-chunks 0, 1, 2, 3): the fragments of two k-steps.
  const int b_row = kNT == 1 ? wn * 8 + lane % 8 : wn * kNT * 8 + lane % 8 + 8 * (lane / 16);
  const int b_sel = kNT == 1 ? lane / 8 : (lane / 8) % 2;

  float acc[2][kNT][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < kNT; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;

  auto mma_chunk = [&](int st) {
    const uint32_t bt = stage_addr(st) + Cf::kHaloBytes + Cf::kFilterBytes;
#pragma unroll
    for (int ks = 0; ks < Cf::kKSteps; ++ks) {
      uint32_t a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const int row = a_row + mi * 16;
        mma::ldmatrix_x4(a[mi], a_base + row * Cf::kRowBytes +
                                    swizzle<Cf>(row, ks * 2 + a_sel) * mma::kChunkBytes);
      }
      uint32_t b[kNT][2];
      if constexpr (kNT == 1) {
        // One ldmatrix.x4 covers k-steps ks and ks + 1: read it on even ks, keep the odd half.
        uint32_t t[4];
        mma::ldmatrix_x4(t, bt + b_row * Cf::kRowBytes +
                                swizzle<Cf>(b_row, (ks & ~1) * 2 + b_sel) * mma::kChunkBytes);
        b[0][0] = t[(ks & 1) * 2];
        b[0][1] = t[(ks & 1) * 2 + 1];
      } else {
#pragma unroll
        for (int nj = 0; nj < kNT / 2; ++nj) {
          const int row = b_row + nj * 16;
          uint32_t t[4];
          mma::ldmatrix_x4(t, bt + row * Cf::kRowBytes +
                                  swizzle<Cf>(row, ks * 2 + b_sel) * mma::kChunkBytes);
          b[2 * nj][0] = t[0];
          b[2 * nj][1] = t[1];
          b[2 * nj + 1][0] = t[2];
          b[2 * nj + 1][1] = t[3];
        }
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < kNT; ++ni) mma::mma_16x8<T>(acc[mi][ni], a[mi], b[ni]);
    }
  };

  // ---- the chunk loop: two stages, two barriers per chunk -------------------------------------
  load_stage(0, 0);
  mma::cp_async_commit();
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    const int st = chunk & 1;
    mma::cp_async_wait<0>();  // this thread's copies of chunk `chunk` landed
    __syncthreads();          // everyone's; and the MMAs of chunk - 1 are done (A, stage st^1 free)
    if (chunk + 1 < num_chunks) load_stage(st ^ 1, chunk + 1);
    mma::cp_async_commit();
    load_b_generic(st, chunk);
    float dw[kRows][kChan];
    depthwise(st, chunk, dw);
#pragma unroll
    for (int o = 0; o < kRows; ++o) {
      V v;
#pragma unroll
      for (int e = 0; e < kChan; ++e) v.v[e] = from_f32<T>(dw[o][e]);
      store_pack(reinterpret_cast<V*>(a_tile + a_offset((rg * kRows + o) * kTileQ + col)), v);
    }
    __syncthreads();  // the A tile (and the generic path's B) complete
    mma_chunk(st);
  }

  // ---- epilogue: round each accumulator pair and store it, guarded -----------------------------
  const bool pairs = K % 2 == 0;  // 4-byte aligned pairs
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = wm * kWarpM + mi * 16 + lane / 4 + half * 8;
      const int p = p0 + m / kTileQ, q = q0 + m % kTileQ;
      if (p >= P || q >= Q) continue;
      T* yrow = y + ((n * P + p) * Q + q) * K;
#pragma unroll
      for (int ni = 0; ni < kNT; ++ni) {
        const int kk = n0 + wn * kNT * 8 + ni * 8 + (lane % 4) * 2;
        const float v0 = acc[mi][ni][half * 2], v1 = acc[mi][ni][half * 2 + 1];
        if (pairs && kk + 1 < K) {
          *reinterpret_cast<uint32_t*>(yrow + kk) = pack_pair<T>(v0, v1);
        } else {
          if (kk < K) yrow[kk] = from_f32<T>(v0);
          if (kk + 1 < K) yrow[kk + 1] = from_f32<T>(v1);
        }
      }
    }
}

// ---------------------------------------------------------------------------------------------
// Host side: the path and the kernel configuration of a problem.
// ---------------------------------------------------------------------------------------------
enum class Path { k3x3s1, k3x3s2, generic };

const char* path_name(Path p) {
  switch (p) {
    case Path::k3x3s1: return "3x3 stride 1";
    case Path::k3x3s2: return "3x3 stride 2";
    case Path::generic: return "generic";
  }
  return "?";
}

struct Plan {
  Path path;
  int chunk;    // kCK
  int nt;       // kNT
  int bn;       // output channels per block
  int threads;
  int tiles_p, tiles_q, k_tiles;
  size_t smem_bytes;
  dim3 grid, block;
};

Path choose_path(const ConvProblem& prob) {
  const bool plain = prob.r == kFastR && prob.s == kFastR && prob.dil_h == 1 && prob.dil_w == 1 &&
                     prob.stride_h == prob.stride_w && prob.stride_h <= 2;
  if (plain && prob.c % 8 == 0) return prob.stride_h == 1 ? Path::k3x3s1 : Path::k3x3s2;
  return Path::generic;
}

template <int kCK, int kNT, int kStride>
void fill_plan(Plan& pl) {
  using Cf = Cfg<kCK, kNT, kStride>;
  pl.chunk = kCK;
  pl.nt = kNT;
  pl.bn = Cf::kBN;
  pl.threads = Cf::kThreads;
  pl.smem_bytes = Cf::kSmemBytes;
}

Plan make_plan(const ConvProblem& prob) {
  Plan pl{};
  pl.path = choose_path(prob);
  const bool small = pl.path == Path::generic || prob.c <= kSmallChunk;
  if (small) {
    // kCK = 32: 4 warps (2 x 2), kNT = 2: kBN = 32.
    if (pl.path == Path::k3x3s1) fill_plan<kSmallChunk, 2, 1>(pl);
    else if (pl.path == Path::k3x3s2) fill_plan<kSmallChunk, 2, 2>(pl);
    else fill_plan<kSmallChunk, 2, 0>(pl);
  } else {
    // kCK = 64: 8 warps (2 x 4): kBN = 32 * kNT, kNT in {1, 2}. The fewest K tiles, then the
    // narrowest tile that gives that many.
    const int tiles = (prob.k + kMaxBN - 1) / kMaxBN;
    const int per_tile = (prob.k + tiles - 1) / tiles;
    const bool s1 = pl.path == Path::k3x3s1;
    if (per_tile <= 32) s1 ? fill_plan<kBigChunk, 1, 1>(pl) : fill_plan<kBigChunk, 1, 2>(pl);
    else s1 ? fill_plan<kBigChunk, 2, 1>(pl) : fill_plan<kBigChunk, 2, 2>(pl);
  }
  pl.tiles_p = (prob.p + kTileP - 1) / kTileP;
  pl.tiles_q = (prob.q + kTileQ - 1) / kTileQ;
  pl.k_tiles = (prob.k + pl.bn - 1) / pl.bn;
  const long long blocks = (long long)prob.n * pl.tiles_p * pl.tiles_q * pl.k_tiles;
  if (blocks > 2147483647LL) FAIL("separable_fused: %lld blocks exceed the grid limit", blocks);
  pl.grid = dim3(unsigned(blocks));
  pl.block = dim3(unsigned(pl.threads));
  return pl;
}

template <class T, int kCK, int kNT, int kStride>
void launch_kernel(const ConvProblem& prob, const Plan& pl, const void* x, const void* w, void* y,
                   cudaStream_t stream) {
  const auto kernel = separable_fused_kernel<T, kCK, kNT, kStride>;
  static bool smem_raised = false;  // once per kernel instance (host state, single-threaded)
  if (!smem_raised) {
    CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    Cfg<kCK, kNT, kStride>::kSmemBytes));
    smem_raised = true;
  }
  kernel<<<pl.grid, pl.block, pl.smem_bytes, stream>>>(
      prob, pl.tiles_q, pl.tiles_p, pl.k_tiles, static_cast<const T*>(x),
      static_cast<const T*>(w), static_cast<T*>(y));
}

template <class T>
void launch_typed(const ConvProblem& prob, const Plan& pl, const void* x, const void* w, void* y,
                  cudaStream_t stream) {
  if (pl.chunk == kSmallChunk) {
    if (pl.path == Path::k3x3s1) return launch_kernel<T, kSmallChunk, 2, 1>(prob, pl, x, w, y, stream);
    if (pl.path == Path::k3x3s2) return launch_kernel<T, kSmallChunk, 2, 2>(prob, pl, x, w, y, stream);
    return launch_kernel<T, kSmallChunk, 2, 0>(prob, pl, x, w, y, stream);
  }
  if (pl.path == Path::k3x3s1) {
    if (pl.nt == 1) return launch_kernel<T, kBigChunk, 1, 1>(prob, pl, x, w, y, stream);
    return launch_kernel<T, kBigChunk, 2, 1>(prob, pl, x, w, y, stream);
  }
  if (pl.nt == 1) return launch_kernel<T, kBigChunk, 1, 2>(prob, pl, x, w, y, stream);
  return launch_kernel<T, kBigChunk, 2, 2>(prob, pl, x, w, y, stream);
}

}  // namespace

const char* variant_name() { return "separable_fused"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::separable_conv2d, {ElemType::f16, ElemType::bf16}, variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  const Plan pl = make_plan(prob);
  check_grid(pl.grid, "separable_fused_kernel");
  if (prob.elem == ElemType::f16) launch_typed<__half>(prob, pl, x, w, y, stream);
  else if (prob.elem == ElemType::bf16) launch_typed<__nv_bfloat16>(prob, pl, x, w, y, stream);
  else FAIL("separable_fused: element type %s not implemented", elem_name(prob.elem));
  CHECK_LAUNCH();
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const Plan pl = make_plan(prob);
  detail.add_str("path", path_name(pl.path))
      .add_str("pixel_tile", std::to_string(kTileP) + "x" + std::to_string(kTileQ))
      .add_int("chunk_channels", pl.chunk)
      .add_int("k_tile", pl.bn)
      .add_int("k_tiles", pl.k_tiles)
      .add_int("chunks", (prob.c + pl.chunk - 1) / pl.chunk);
  launch_config = launch_json(pl.grid, pl.block, pl.smem_bytes);
}
