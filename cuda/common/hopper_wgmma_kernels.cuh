// hopper_wgmma_kernels.cuh: the device half of the hopper_wgmma variant (sm_90a only): tile
// constants, shared-memory layouts, the gather producer, the channel-padding and row-window
// passes, the stream-K work decomposition and fixup, and hopper_conv_kernel. The host side
// (candidates, tensor maps, launches, the variant interface) is cuda/variants/hopper_wgmma.cu,
// the one file that includes this header: its contents are in that file's anonymous namespace
// (internal linkage, one translation unit), as they were before the split.
//
// Design. Against mma.sync kernels (one warp, 16x8x16 per instruction, operands staged through
// registers with ldmatrix, addresses computed by every thread): a warpgroup (128 threads) issues
// wgmma.m64nNk16 (f16, bf16) or wgmma.m64nNk8 tf32 (f32 inputs) reading both operands straight
// from shared memory (128-byte swizzled, K-major), asynchronously, so the tensor cores run while
// the next tile lands. The tiles are moved by the tensor memory accelerator: the filter tile by a
// 2D tiled TMA load over Wt viewed as [K][R*S*C], the activation tile (128 output pixels x one
// 128-byte row of channels of one filter tap: 64 16-bit or 32 f32 values) by one TMA im2col load
// whose hardware walks the pixels (stride, padding = zero fill, image edges) itself. f32 operands
// are described to TMA as TFLOAT32, which rounds them to tf32 on the way in (truncation would
// lose accuracy: docs/perf-log.md, "Tensor cores: hopper_wgmma").
// One producer warp (setmaxnreg down to kTmaProducerRegs = 40) feeds a ring of Layout::kStages
// smem slots guarded by full (TMA transaction bytes) and empty (8 consumer-warp arrivals)
// mbarriers; two consumer warpgroups (setmaxnreg up to kTmaConsumerRegs = 232) each own 64 rows
// of the 128 x BN block tile and keep one wgmma group in flight (wait_group 1) before releasing a
// slot.
// Persistent grid (one block per SM walks work units), the ring running on across units.
// Epilogues (kStaged; Y is stored in the input type, f32 for tf32):
//   staged ("tma_store"): 16-bit Y with K % 8 == 0: each consumer warpgroup rounds its 64 x BN
//                tile into a 128B-swizzled staging tile in shared memory and one thread stores
//                it with TMA (cp.async.bulk.tensor), which runs on while the warpgroup starts the
//                next unit;
//   direct:      guarded 4-/8-byte stores of value pairs straight from the accumulators.
// Schedules (Args::dp_tiles): data-parallel: block b of a persistent grid (one block per SM)
// takes whole tiles b, b + grid, ...; stream-K (for tile counts that leave SMs idle or end in a
// partial wave): all but the last one or two waves of tiles as before, then the remaining tiles'
// k-steps laid end to end and cut into one even range per block, so every SM does the same
// number of k-steps. A tile cut between blocks is a "partial" one: each block stores its f32
// partial tile into its own workspace slot (plain 16-byte stores) and counts itself in on a
// per-tile counter; the last to arrive sums the slots in block order (deterministic) and runs the
// epilogue. No memset, no atomics on data, no extra pass.
// Producers (kPath): Path::kTmaIm2col (C a multiple of the 128-byte k-step: one k-step = one
// (r, s) tap) is the TMA producer warp above. Path::kGather (any other C): the same consumers,
// but the producer is a whole warpgroup that gathers the reduction slice into the same swizzled
// layout. kVec (C a multiple of 16 bytes): one cp.async per 16-byte chunk (zero fill for
// padding), the output pixels of its rows decoded once per work unit, and an mbarrier arrival
// when the copies land, so the producer runs up to kStages slices ahead; otherwise guarded
// element-wise loads, smem stores, fence.proxy.async. pad_channels_kernel and row_windows_kernel
// rewrite X and Wt for the host's "gather_padded_c" and "tma_row_windows" paths.
// Blocks (Block<kWG, kOcc>): the default block above (128-row tiles, one per SM), and for the TMA
// path 64-row tiles of one consumer warpgroup, data-parallel, one or two blocks per SM (B read by
// one warpgroup instead of two, twice the tiles for small layers; two blocks overlap one's
// epilogue with the other's main loop).
#pragma once

#include "conv2d.cuh"
#include "hopper_ptx.cuh"
#include "mma_ptx.cuh"  // cp.async copies (the gather producer)

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace {

constexpr int kWarpgroupThreads = 128;
constexpr int kWgmmaM = 64;
// The default block: two consumer warpgroups, each owning one wgmma M = 64 rows of a 128-row
// tile, one block per SM. Stream-K and the gather path use only this block.
constexpr int kConsumerWarpgroups = 2;
constexpr int kBlockM = kConsumerWarpgroups * kWgmmaM;  // output pixels per block tile
// A k-step is one 128-byte swizzle row of reduction elements: 64 of f16/bf16, 32 of f32 (tf32);
// one wgmma consumes 32 bytes of it (k16 or k8), so a k-step is 4 wgmmas for every type.
template <class T>
constexpr int kBlockK = hopper::kSwizzleBytes / int(sizeof(T));
constexpr int kWgmmaKBytes = 32;
constexpr int kWgmmasPerStep = hopper::kSwizzleBytes / kWgmmaKBytes;
constexpr int kChunkBytes = 16;              // one swizzle chunk: the gather path's load width
template <class T>
constexpr int kChunkElems = kChunkBytes / int(sizeof(T));  // elements of T in one chunk
constexpr int kSmemPerSm = 228 * 1024;       // shared memory per SM (sm_90)
constexpr int kSmemLimit = 227 * 1024;       // opt-in dynamic shared memory per block (sm_90)
constexpr int kMaxStages = 8;
constexpr int kRegsPerSm = 65536;
// setmaxnreg budgets of the default block (per thread). At entry every thread has 168 (65536 /
// 384, rounded down to 8); what the producer gives back the consumers take: 128*(168-P) ==
// 256*(C-168).
constexpr int kEntryRegs = 168;
constexpr int kTmaProducerRegs = 40, kTmaConsumerRegs = 232;
constexpr int kGatherProducerRegs = 120, kGatherConsumerRegs = 192;
static_assert(kWarpgroupThreads * (kEntryRegs - kTmaProducerRegs) ==
              kConsumerWarpgroups * kWarpgroupThreads * (kTmaConsumerRegs - kEntryRegs));
static_assert(kWarpgroupThreads * (kEntryRegs - kGatherProducerRegs) ==
              kConsumerWarpgroups * kWarpgroupThreads * (kGatherConsumerRegs - kEntryRegs));

// A block of kWG consumer warpgroups (a kWG * 64-row tile), kOcc blocks resident per SM. The
// one-warpgroup block (64-row tiles, TMA path, data-parallel only) halves the shared-memory
// reads per MMA of a 64-wide tile (the B tile is read by one warpgroup, not two) and gives the
// 7x7 / 14x14 layers twice the tiles; with two blocks per SM one block's epilogue overlaps the
// other's main loop.
template <int kWG, int kOcc>
struct Block {
  static constexpr int kM = kWG * kWgmmaM;
  static constexpr int kBlocksPerSm = kOcc;
  static constexpr int kThreads = kWarpgroupThreads * (1 + kWG);
  // Dynamic shared memory per block: with kOcc blocks, each also needs the 1 KiB the system
  // reserves per block and a little static shared memory (last_part).
  static constexpr int kSmem = kOcc == 1 ? kSmemLimit : kSmemPerSm / kOcc - 1024 - 256;
  // Registers at entry: the launch bound's share, rounded down to 8 (setmaxnreg's unit).
  static constexpr int kEntry = std::min(256, kRegsPerSm / (kThreads * kOcc)) / 8 * 8;
  // The TMA producer keeps kTmaProducerRegs, its consumers share the rest. A block whose entry
  // share is already the 255-register maximum needs no setmaxnreg.
  static constexpr bool kSetMaxNReg = kEntry < 256;
  static constexpr int kConsumerRegs =
      std::min(256, kEntry + (kEntry - kTmaProducerRegs) / kWG / 8 * 8);
  static_assert(kWG == 1 || kWG == 2);
  static_assert(!kSetMaxNReg || kWarpgroupThreads * (kEntry - kTmaProducerRegs) >=
                                    kWG * kWarpgroupThreads * (kConsumerRegs - kEntry));
};
using DefaultBlock = Block<kConsumerWarpgroups, 1>;
static_assert(DefaultBlock::kEntry == kEntryRegs && DefaultBlock::kConsumerRegs == kTmaConsumerRegs);

// Partial tiles are summed kFixupChunk float4 columns at a time (the loads of a chunk in flight
// together, without a second accumulator array beside the wgmma one); 4 beside BN = 256's 128
// accumulators, where 8 spilled.
template <int BN>
constexpr int kFixupChunk = BN == 256 ? 4 : 8;

enum class Path { kTmaIm2col, kGather };

// The staged (TMA-store) epilogue of a 16-bit Y: each consumer warpgroup rounds its 64 x BN
// tile into shared memory as BN / 64 boxes of 64 rows x 64 columns (128-byte rows, 128B
// swizzle: the fragment writes are conflict-free), then one thread stores the boxes with TMA.
constexpr int kYBoxCols = 64;
constexpr int kYBoxBytes = kWgmmaM * kYBoxCols * 2;

// Shared-memory layout of one configuration: kStages x (A tile, B tile), the Y staging tiles of
// the staged epilogue, then the barriers.
template <class B, int BN, bool kStaged>
struct Layout {
  static constexpr int kABytes = B::kM * hopper::kSwizzleBytes;  // 16 KiB for 128 rows
  static constexpr int kBBytes = BN * hopper::kSwizzleBytes;
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kYBytes = kStaged ? (B::kM / kWgmmaM) * (BN / kYBoxCols) * kYBoxBytes : 0;
  static constexpr int kStages = std::min(
      kMaxStages, (B::kSmem - hopper::kSwizzleAtomBytes - kYBytes - 256) / kStageBytes);
  // + 1024 slack to align the dynamic base to a swizzle atom, + barriers
  static constexpr int kSmemBytes =
      hopper::kSwizzleAtomBytes + kStages * kStageBytes + kYBytes + 2 * kStages * 8;
  static_assert(BN % 64 == 0 && BN <= 256, "wgmma N and the TMA box (<= 256 rows)");
  static_assert(kStages >= 2, "a ring needs two slots");
  static_assert(kSmemBytes <= B::kSmem);
};

struct Args {
  ConvProblem prob;
  const void* x;      // gather path only (the TMA path reads X and Wt through tensor maps)
  const void* w;
  void* y;            // prob.elem
  float* partials;    // stream-K: [2 * gridDim.x][BN / 8][kConsumerThreads] float4 partial tiles;
                      // block b's slots: 2b (the tile its range starts in), 2b + 1 (ends in)
  int* tile_counters; // stream-K: partial tiles stored so far, per stream-K tile; 0 between launches
  int k_steps;        // total k-steps: ceil(R*S*C / kBlockK)
  int m_tiles, n_tiles;
  int dp_tiles;       // tiles [0, dp_tiles): data-parallel (a multiple of gridDim.x or all tiles);
                      // the rest: stream-K
};

constexpr int kConsumerThreads = kConsumerWarpgroups * kWarpgroupThreads;
// Named barriers of the consumers (0 is __syncthreads): one per warpgroup (its Y staging tile),
// one over both (the stream-K fixup).
constexpr int kStagingBarrier = 1;  // + consumer warpgroup index
constexpr int kConsumersBarrier = kStagingBarrier + kConsumerWarpgroups;

// Raw storage of one element (the gather path copies bits, never converts).
template <class T>
using Raw = std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>;

// ---- gather producer: one reduction slice (kBlockK wide) of A and B into swizzled smem ----------
// Thread t of the producer warpgroup fills 16-byte chunk t % 8 of rows t / 8 + 16 u; a chunk is
// kElems consecutive reduction indices.

// The output pixels of this thread's A rows (t / 8 + 16 u) in one M tile: image and window
// corner, computed once per work unit (a row past M gets a corner no tap can bring in bounds).
constexpr int kGatherRows = kBlockM / (kWarpgroupThreads / 8);
struct GatherRows {
  int img[kGatherRows], ih0[kGatherRows], iw0[kGatherRows];
};

__device__ __forceinline__ GatherRows gather_rows(const ConvProblem& p, int m0, int t) {
  GatherRows rows;
#pragma unroll
  for (int u = 0; u < kGatherRows; ++u) {
    const int m = m0 + t / 8 + u * (kWarpgroupThreads / 8);
    const int q = m % p.q, pq = m / p.q;
    const bool in = m < p.gemm_m();
    rows.img[u] = in ? pq / p.p : 0;
    rows.ih0[u] = in ? (pq % p.p) * p.stride_h - p.pad_h : -(1 << 30);
    rows.iw0[u] = q * p.stride_w - p.pad_w;
  }
  return rows;
}

// gather_stage_async (C % kElems == 0: a chunk is kElems consecutive channels of one tap): one
// cp.async per chunk (zero fill for padding and rows past M or K), X through L1 (neighbouring
// output pixels read the same input pixels); the caller then arranges one arrival on the slot's
// full barrier when the copies land. The producer does not wait for them: it goes on to the next
// free slot, so up to kStages slices are in flight (a load-then-store producer had one, and ran
// the C = 3 stem at 16 TFLOP/s).
template <class T, int BN>
__device__ __forceinline__ void gather_stage_async(const Args& a, const GatherRows& rows, int step,
                                                   int n0, uint8_t* sa, uint8_t* sb, int t) {
  constexpr int kElems = kChunkElems<T>;
  const ConvProblem& p = a.prob;
  const T* x = static_cast<const T*>(a.x);
  const T* wt = static_cast<const T*>(a.w);
  const int chunk = t % 8;
  const int kg = p.gemm_k();
  const int kk = step * kBlockK<T> + chunk * kElems;
  const bool k_ok = kk < kg;  // kg % kElems == 0: the chunk is all in or all out
  const int c = kk % p.c, rs = kk / p.c;
  const int dr = (rs / p.s) * p.dil_h, ds = (rs % p.s) * p.dil_w;
#pragma unroll
  for (int u = 0; u < kGatherRows; ++u) {
    const int ih = rows.ih0[u] + dr, iw = rows.iw0[u] + ds;
    const bool ok = k_ok && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
    const T* src = ok ? x + ((size_t(rows.img[u]) * p.h + ih) * p.w + iw) * p.c + c : x;
    mma::cp_async_16<true>(
        hopper::smem_addr(sa + hopper::swizzle128_offset(t / 8 + u * (kWarpgroupThreads / 8), chunk)),
        src, ok);
  }
#pragma unroll
  for (int row = t / 8; row < BN; row += kWarpgroupThreads / 8) {
    const int k = n0 + row;
    const bool ok = k_ok && k < p.k;
    mma::cp_async_16(hopper::smem_addr(sb + hopper::swizzle128_offset(row, chunk)),
                     ok ? wt + size_t(k) * kg + kk : wt, ok);
  }
}

// gather_stage_regs (any C): element-wise guarded loads into registers, then 16-byte shared
// stores; the caller fences and arrives.
template <class T, int BN>
__device__ __forceinline__ void gather_stage_regs(const Args& a, int step, int m0, int n0,
                                                  uint8_t* sa, uint8_t* sb, int t) {
  using R = Raw<T>;
  constexpr int kElems = kChunkElems<T>;
  const ConvProblem& p = a.prob;
  const R* x = static_cast<const R*>(a.x);
  const R* wt = static_cast<const R*>(a.w);
  const int chunk = t % 8;
  const int kg = p.gemm_k();
  const int kk0 = step * kBlockK<T> + chunk * kElems;
  // Per-element filter tap (dr, ds) and channel for this thread's kElems reduction indices.
  int dr[kElems], ds[kElems], ch[kElems];
#pragma unroll
  for (int e = 0; e < kElems; ++e) {
    const int kk = kk0 + e;
    ch[e] = kk < kg ? kk % p.c : -1;
    dr[e] = (kk / p.c / p.s) * p.dil_h;
    ds[e] = (kk / p.c % p.s) * p.dil_w;
  }
  const int m_count = p.gemm_m();
#pragma unroll 4  // 4 rows x kElems loads in flight per thread
  for (int row = t / 8; row < kBlockM; row += kWarpgroupThreads / 8) {
    const int m = m0 + row;
    R e16[kElems] = {};
    if (m < m_count) {
      const int q = m % p.q, pq = m / p.q;
      const int ih0 = (pq % p.p) * p.stride_h - p.pad_h, iw0 = q * p.stride_w - p.pad_w;
      const R* xn = x + size_t(pq / p.p) * p.h * p.w * p.c;
#pragma unroll
      for (int e = 0; e < kElems; ++e) {
        const int ih = ih0 + dr[e], iw = iw0 + ds[e];
        if (ch[e] >= 0 && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w)
          e16[e] = __ldg(xn + (size_t(ih) * p.w + iw) * p.c + ch[e]);
      }
    }
    uint4 v;
    memcpy(&v, e16, kChunkBytes);
    *reinterpret_cast<uint4*>(sa + hopper::swizzle128_offset(row, chunk)) = v;
  }
  for (int row = t / 8; row < BN; row += kWarpgroupThreads / 8) {
    const int k = n0 + row;
    R e16[kElems] = {};
    if (k < p.k) {
      const R* wk = wt + size_t(k) * kg;
#pragma unroll
      for (int e = 0; e < kElems; ++e)
        if (kk0 + e < kg) e16[e] = __ldg(wk + kk0 + e);
    }
    uint4 v;
    memcpy(&v, e16, kChunkBytes);
    *reinterpret_cast<uint4*>(sb + hopper::swizzle128_offset(row, chunk)) = v;
  }
}

// Channel padding for the gather path: rows of c elements -> rows of cp (c rounded up to a whole
// 16-byte chunk), the new channels zero. One thread per 16-byte chunk of the output. With X and Wt
// padded so, a C = 3 problem (the stem) takes the 16-byte gather loads instead of 2-byte ones.
template <class T>
__global__ void pad_channels_kernel(const Raw<T>* src, Raw<T>* dst, long long chunks, int c,
                                    int cp) {
  constexpr int kElems = kChunkElems<T>;
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= chunks) return;
  const int per_row = cp / kElems;
  const long long row = i / per_row;
  const int c0 = int(i % per_row) * kElems;
  Raw<T> v[kElems];
#pragma unroll
  for (int e = 0; e < kElems; ++e) v[e] = c0 + e < c ? src[row * c + c0 + e] : Raw<T>(0);
  uint4 chunk;
  memcpy(&chunk, v, kChunkBytes);
  *reinterpret_cast<uint4*>(dst + row * cp + c0) = chunk;
}

// Row windows (the "tma_row_windows" path): a problem whose S taps x C channels fit in half a
// k-step or less (the C = 3 stem: 7 x 3 = 21 values against 64) is rewritten as an ordinary TMA
// im2col problem. For each output column j and each group of Q consecutive filter rows, the pass
// below copies the S x C input values the taps of each row read (contiguous in NHWC when the
// horizontal dilation is 1) into one 128-byte row: Q windows of G = k-step / Q elements side by
// side, zeros past S x C. The filter is laid out the same way, so the convolution becomes
// [N][H'][Q'][k-step] (*) [K][ceil(R / Q)][1][k-step] with S' = 1: ceil(R / Q) k-steps instead
// of R x S taps of a few channels, and TMA instead of a gather producer.
// out(img, m, j, q) = the `taps` windows of `c` values at columns j * col_stride - col_pad +
// s * col_dil of source row m * row_step - row_pad + q * row_dil (zero outside the source).
struct WindowPass {
  int images, rows, cols, c;           // source [images][rows][cols][c]
  int out_rows, out_cols, q_rows, group;  // output [images][out_rows][out_cols][q_rows * group]
  int row_step, row_pad, row_dil;
  int taps, col_stride, col_pad, col_dil;
};

// One thread per (output pixel, window): `group` elements, 16 bytes at a time.
template <class T>
__global__ void row_windows_kernel(const Raw<T>* src, Raw<T>* dst, WindowPass wp, long long windows) {
  constexpr int kElems = kChunkElems<T>;
  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= windows) return;
  const int q = int(i % wp.q_rows);
  const long long pixel = i / wp.q_rows;
  const int j = int(pixel % wp.out_cols);
  const long long img_row = pixel / wp.out_cols;
  const int m = int(img_row % wp.out_rows);
  const long long img = img_row / wp.out_rows;
  const int row = m * wp.row_step - wp.row_pad + q * wp.row_dil;
  const bool row_in = row >= 0 && row < wp.rows;
  const Raw<T>* src_row = src + (img * wp.rows + (row_in ? row : 0)) * wp.cols * wp.c;
  Raw<T>* out = dst + i * wp.group;
  const int col0 = j * wp.col_stride - wp.col_pad;
  int tap = 0, ch = 0;
  for (int e0 = 0; e0 < wp.group; e0 += kElems) {
    Raw<T> v[kElems];
#pragma unroll
    for (int e = 0; e < kElems; ++e) {
      const int col = col0 + tap * wp.col_dil;
      v[e] = row_in && tap < wp.taps && col >= 0 && col < wp.cols ? src_row[size_t(col) * wp.c + ch]
                                                                   : Raw<T>(0);
      if (++ch == wp.c) { ch = 0; ++tap; }
    }
    uint4 chunk;
    memcpy(&chunk, v, kChunkBytes);
    *reinterpret_cast<uint4*>(out + e0) = chunk;
  }
}

// Two adjacent outputs (columns col, col + 1 of one row) into Y: one 8- or 4-byte store when
// `pair` (K even: the pair never straddles a row), else element-wise with the column guard.
template <class T>
__device__ __forceinline__ void store_pair(T* yrow, int col, float v0, float v1, bool pair,
                                           int k) {
  if (pair) {
    if constexpr (std::is_same_v<T, float>)
      *reinterpret_cast<float2*>(yrow + col) = make_float2(v0, v1);
    else
      *reinterpret_cast<uint32_t*>(yrow + col) = pack_pair<T>(v0, v1);
    return;
  }
  yrow[col] = from_f32<T>(v0);
  if (col + 1 < k) yrow[col + 1] = from_f32<T>(v1);
}

// ---- work decomposition --------------------------------------------------------------------------
// Tile t covers M tile t % m_tiles (M fastest, so the blocks running at the same time share one
// filter tile) and N tile t / m_tiles. A segment is the k-steps [step_begin, step_end) of one tile
// that one block computes: all of them for a data-parallel tile.
struct Segment {
  int tile, m0, n0, step_begin, step_end;
};

__device__ __forceinline__ Segment segment_at(const Args& a, int tile, int k0, int k1, int bm,
                                              int bn) {
  return Segment{tile, (tile % a.m_tiles) * bm, (tile / a.m_tiles) * bn, k0, k1};
}

// The stream-K region: tiles [dp_tiles, tiles), their k-steps numbered end to end (region tile i
// has steps [i * k_steps, (i + 1) * k_steps)); block b computes steps [begin(b), begin(b + 1)).
struct StreamK {
  long long steps;  // k-steps in the region (0: no stream-K tiles)
  int blocks;

  __device__ __forceinline__ long long begin(int b) const { return steps * b / blocks; }
  // The block whose range holds step i: the largest b with begin(b) <= i.
  __device__ __forceinline__ int owner(long long i) const {
    return int(((i + 1) * blocks - 1) / steps);
  }
};

__device__ __forceinline__ StreamK stream_k_region(const Args& a) {
  return StreamK{(long long)(a.m_tiles * a.n_tiles - a.dp_tiles) * a.k_steps, int(gridDim.x)};
}

// Calls f(segment) for this block's segments in order: its data-parallel tiles, then its stream-K
// range (the tail of one tile, whole tiles, the head of another). The producer and the consumers
// walk the same sequence, so the ring's stage/phase run on across segments.
template <class F>
__device__ __forceinline__ void for_each_segment(const Args& a, int bm, int bn, F&& f) {
  for (int t = blockIdx.x; t < a.dp_tiles; t += gridDim.x)
    f(segment_at(a, t, 0, a.k_steps, bm, bn));
  const StreamK sk = stream_k_region(a);
  if (sk.steps == 0) return;
  const long long end = sk.begin(blockIdx.x + 1);
  for (long long i = sk.begin(blockIdx.x); i < end;) {
    const long long tile_begin = i / a.k_steps * a.k_steps;
    const int k1 = int(min(end - tile_begin, (long long)a.k_steps));
    f(segment_at(a, a.dp_tiles + int(i / a.k_steps), int(i - tile_begin), k1, bm, bn));
    i = tile_begin + k1;
  }
}

// ---- stream-K fixup -----------------------------------------------------------------------------
// A partial tile's blocks each store their f32 partial sums into their own slot and count
// themselves in on the tile's counter; the last to arrive sums every slot in block order and
// stores Y, and resets the counter for the next launch. The accumulators are only read here: a
// non-wgmma write to them would make ptxas serialise the wgmma pipeline.
struct Fixup {
  float4* parts;    // the partial tiles, at this consumer thread's float4
  int first, last;  // the blocks that computed parts of the tile
  bool first_began_before;  // block `first`'s range began in an earlier tile
  int counter;      // the tile's counter (region tile index)
  int* counters;

  __device__ static Fixup of(const Args& a, const Segment& s, int consumer_thread) {
    const StreamK sk = stream_k_region(a);
    const long long tile_begin = (long long)(s.tile - a.dp_tiles) * a.k_steps;
    const int first = sk.owner(tile_begin);
    return Fixup{reinterpret_cast<float4*>(a.partials) + consumer_thread, first,
                 sk.owner(tile_begin + a.k_steps - 1), sk.begin(first) < tile_begin,
                 s.tile - a.dp_tiles, a.tile_counters};
  }

  // Block b's part, float4 v: slot 2b if the tile is the one b's range began in, else 2b + 1
  // (only `first` can have begun in an earlier tile).
  template <int BN>
  __device__ __forceinline__ float4* at(int b, int v) const {
    const int slot = 2 * b + (b == first && first_began_before ? 1 : 0);
    return parts + (size_t(slot) * (BN / 8) + v) * kConsumerThreads;
  }
};

// Stores this block's part; true if it was the tile's last (then every part is visible).
template <int BN>
__device__ __forceinline__ bool store_part(const Fixup& f, const float (&acc)[BN / 2],
                                           int* last_flag) {
#pragma unroll
  for (int v = 0; v < BN / 8; ++v)
    __stcg(f.at<BN>(blockIdx.x, v),
           make_float4(acc[4 * v], acc[4 * v + 1], acc[4 * v + 2], acc[4 * v + 3]));
  __threadfence();
  hopper::named_barrier_sync(kConsumersBarrier, kConsumerThreads);
  if (threadIdx.x == kWarpgroupThreads) {  // the first consumer thread
    const bool last = atomicAdd(&f.counters[f.counter], 1) == f.last - f.first;
    if (last) f.counters[f.counter] = 0;
    *last_flag = last;
  }
  hopper::named_barrier_sync(kConsumersBarrier, kConsumerThreads);
  if (!*last_flag) return false;
  __threadfence();
  return true;
}

// This thread's final values of float4 columns [j0, j0 + kFixupChunk<BN>): the accumulators, or for
// a partial tile the sum of every block's part in block order (this block's from registers).
template <int BN>
__device__ __forceinline__ void final_chunk(const float (&acc)[BN / 2], bool partial,
                                            const Fixup& fixup, int j0, float4 (&out)[kFixupChunk<BN>]) {
#pragma unroll
  for (int jj = 0; jj < kFixupChunk<BN>; ++jj) {
    const int j = j0 + jj;
    out[jj] = partial ? make_float4(0.f, 0.f, 0.f, 0.f)
                      : make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]);
  }
  if (!partial) return;
  for (int b = fixup.first; b <= fixup.last; ++b)
#pragma unroll
    for (int jj = 0; jj < kFixupChunk<BN>; ++jj) {
      const int j = j0 + jj;
      const float4 part = b == int(blockIdx.x)
                              ? make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3])
                              : __ldcg(fixup.at<BN>(b, j));
      out[jj] = make_float4(out[jj].x + part.x, out[jj].y + part.y, out[jj].z + part.z,
                            out[jj].w + part.w);
    }
}

template <class T, class B, int BN, Path kPath, bool kVec, bool kStaged>
__global__ void __launch_bounds__(B::kThreads, B::kBlocksPerSm)
hopper_conv_kernel(const __grid_constant__ CUtensorMap map_x,
                   const __grid_constant__ CUtensorMap map_w,
                   const __grid_constant__ CUtensorMap map_y, const Args args) {
  using L = Layout<B, BN, kStaged>;
  static_assert(!kStaged || sizeof(T) == 2, "the staged epilogue is for 16-bit Y");
  constexpr bool kTma = kPath == Path::kTmaIm2col;
  static_assert(kTma || std::is_same_v<B, DefaultBlock>, "the gather path runs the default block");
  constexpr bool kStreamK = std::is_same_v<B, DefaultBlock>;  // the fixup's layout assumes it
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + hopper::kSwizzleAtomBytes - 1) &
      ~uintptr_t(hopper::kSwizzleAtomBytes - 1));
  uint8_t* smem_a = smem;                                  // [kStages][kABytes]
  uint8_t* smem_b = smem + L::kStages * L::kABytes;        // [kStages][kBBytes]
  uint8_t* smem_y = smem + L::kStages * L::kStageBytes;  // [consumer][BN / 64][kYBoxBytes]
  uint64_t* full = reinterpret_cast<uint64_t*>(smem_y + L::kYBytes);
  uint64_t* empty = full + L::kStages;
  __shared__ int last_part;  // store_part: was this block the partial tile's last?

  const ConvProblem& p = args.prob;
  const int warpgroup = threadIdx.x / kWarpgroupThreads;
  const int t = threadIdx.x % kWarpgroupThreads;

  if (threadIdx.x == 0) {
    for (int s = 0; s < L::kStages; ++s) {
      hopper::mbar_init(&full[s], kTma ? 1 : kWarpgroupThreads);
      hopper::mbar_init(&empty[s], B::kM / kWgmmaM * kWarpgroupThreads / 32);
    }
    hopper::fence_mbar_init();
    if (kTma) {
      hopper::prefetch_tensormap(&map_x);
      hopper::prefetch_tensormap(&map_w);
    }
  }
  __syncthreads();

  int stage = 0;
  uint32_t phase = 0;
  if (warpgroup == 0) {
    // ---------------- producer ----------------
    if constexpr (kTma) {
      if constexpr (B::kSetMaxNReg) hopper::setmaxnreg_dec<kTmaProducerRegs>();
      if (t != 0) return;
      const int c_steps = p.c / kBlockK<T>;
      for_each_segment(args, B::kM, BN, [&](const Segment& w) {
        // Window corner of the tile's first output pixel; TMA walks the next B::kM - 1 itself.
        const int q0 = w.m0 % p.q, pq0 = w.m0 / p.q;
        const int w0 = q0 * p.stride_w - p.pad_w, h0 = (pq0 % p.p) * p.stride_h - p.pad_h;
        const int img0 = pq0 / p.p;
        for (int step = w.step_begin; step < w.step_end; ++step) {
          hopper::mbar_wait(&empty[stage], phase ^ 1);
          hopper::mbar_arrive_expect_tx(&full[stage], L::kStageBytes);
          const int tap = step / c_steps, c = (step % c_steps) * kBlockK<T>;
          hopper::tma_load_im2col_4d(smem_a + stage * L::kABytes, &map_x, &full[stage], c, w0,
                                     h0, img0, uint16_t((tap % p.s) * p.dil_w),
                                     uint16_t((tap / p.s) * p.dil_h));
          hopper::tma_load_2d(smem_b + stage * L::kBBytes, &map_w, &full[stage],
                              step * kBlockK<T>, w.n0);
          if (++stage == L::kStages) { stage = 0; phase ^= 1; }
        }
      });
    } else {
      hopper::setmaxnreg_dec<kGatherProducerRegs>();
      for_each_segment(args, B::kM, BN, [&](const Segment& w) {
        const GatherRows rows = gather_rows(p, w.m0, t);
        for (int step = w.step_begin; step < w.step_end; ++step) {
          hopper::mbar_wait(&empty[stage], phase ^ 1);
          uint8_t* sa = smem_a + stage * L::kABytes;
          uint8_t* sb = smem_b + stage * L::kBBytes;
          if constexpr (kVec) {
            gather_stage_async<T, BN>(args, rows, step, w.n0, sa, sb, t);
            hopper::cp_async_mbar_arrive(&full[stage]);  // the consumers fence the proxies
          } else {
            gather_stage_regs<T, BN>(args, step, w.m0, w.n0, sa, sb, t);
            hopper::fence_proxy_async_smem();  // these stores, before wgmma (async proxy) reads
            hopper::mbar_arrive(&full[stage]);
          }
          if (++stage == L::kStages) { stage = 0; phase ^= 1; }
        }
      });
      if constexpr (kVec) {  // all copies landed before the producer exits
        mma::cp_async_commit();
        mma::cp_async_wait<0>();
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  if constexpr (!kTma) hopper::setmaxnreg_inc<kGatherConsumerRegs>();
  else if constexpr (B::kSetMaxNReg) hopper::setmaxnreg_inc<B::kConsumerRegs>();
  const int cw = warpgroup - 1;  // rows [64 cw, 64 cw + 64) of the block tile
  const int warp = t / 32, lane = t % 32;
  for_each_segment(args, B::kM, BN, [&](const Segment& w) {
    // No zero fill: the segment's first wgmma runs with scale-d = 0 (a zero fill would be a
    // non-wgmma definition of the accumulators, which makes ptxas serialise the wgmma pipeline).
    float acc[BN / 2];
    int prev_stage = stage;
    for (int step = w.step_begin; step < w.step_end; ++step) {
      hopper::mbar_wait(&full[stage], phase);
      // cp.async wrote the slot through the generic proxy; order it before wgmma's reads.
      if constexpr (kPath == Path::kGather && kVec) hopper::fence_proxy_async_smem();
      const uint64_t da = hopper::wgmma_desc_sw128(smem_a + stage * L::kABytes +
                                                   cw * kWgmmaM * hopper::kSwizzleBytes);
      const uint64_t db = hopper::wgmma_desc_sw128(smem_b + stage * L::kBBytes);
      hopper::wgmma_fence();
#pragma unroll
      for (int k = 0; k < kWgmmasPerStep; ++k)  // +32 bytes of K = +2 in the descriptor
        hopper::Wgmma<T, BN>::mma(acc, da + 2 * k, db + 2 * k, step > w.step_begin || k > 0);
      hopper::wgmma_commit();
      hopper::wgmma_wait<1>();  // the previous step's group is done: its slot may be refilled
      if (step > w.step_begin && lane == 0) hopper::mbar_arrive(&empty[prev_stage]);
      prev_stage = stage;
      if (++stage == L::kStages) { stage = 0; phase ^= 1; }
    }
    hopper::wgmma_wait<0>();
    hopper::fence_operands(acc);
    if (lane == 0) hopper::mbar_arrive(&empty[prev_stage]);

    // A stream-K tile cut between blocks: store this part; the last block to finish one stores Y.
    const bool partial = kStreamK && (w.step_begin > 0 || w.step_end < args.k_steps);
    Fixup fixup;
    if constexpr (kStreamK) {
      if (partial) {
        fixup = Fixup::of(args, w, cw * kWarpgroupThreads + t);
        if (!store_part<BN>(fixup, acc, &last_part)) return;
      }
    }
    // Below, this thread's final values of float4 column j (columns 8j + 2 (lane % 4) + {0, 1},
    // rows r and r + 8), a chunk at a time.

    if constexpr (kStaged) {
      // ---------------- epilogue: acc -> smem (rounded, swizzled) -> TMA store -----------------
      uint8_t* ys = smem_y + cw * (BN / kYBoxCols) * kYBoxBytes;
      if (t == 0) hopper::bulk_wait_group_read<0>();  // the last segment's store has read ys
      hopper::named_barrier_sync(kStagingBarrier + cw, kWarpgroupThreads);
      const int row = warp * 16 + lane / 4;
#pragma unroll
      for (int j0 = 0; j0 < BN / 8; j0 += kFixupChunk<BN>) {
        float4 v[kFixupChunk<BN>];
        final_chunk<BN>(acc, partial, fixup, j0, v);
#pragma unroll
        for (int jj = 0; jj < kFixupChunk<BN>; ++jj) {
          const int col = 8 * (j0 + jj) + 2 * (lane % 4);
          uint8_t* box = ys + (col / kYBoxCols) * kYBoxBytes + (col % 8) * 2;
          const int chunk = (col % kYBoxCols) / 8;
          *reinterpret_cast<uint32_t*>(box + hopper::swizzle128_offset(row, chunk)) =
              pack_pair<T>(v[jj].x, v[jj].y);
          *reinterpret_cast<uint32_t*>(box + hopper::swizzle128_offset(row + 8, chunk)) =
              pack_pair<T>(v[jj].z, v[jj].w);
        }
      }
      hopper::fence_proxy_async_smem();  // the writes above, before the async proxy reads them
      hopper::named_barrier_sync(kStagingBarrier + cw, kWarpgroupThreads);
      if (t == 0) {
#pragma unroll
        for (int b = 0; b < BN / kYBoxCols; ++b)  // rows past M, columns past K are clipped
          hopper::tma_store_2d(&map_y, ys + b * kYBoxBytes, w.n0 + b * kYBoxCols,
                               w.m0 + cw * kWgmmaM);
        hopper::bulk_commit_group();
      }
    } else {
      // ---------------- epilogue: acc -> Y (rounded to T), guarded stores ----------------------
      const bool pairs = p.k % 2 == 0;  // a pair at an even column stays inside the row
      const int m = w.m0 + cw * kWgmmaM + warp * 16 + lane / 4;
      T* yrow = static_cast<T*>(args.y) + size_t(m) * p.k;
      const bool row_ok = m < p.gemm_m(), row8_ok = m + 8 < p.gemm_m();
#pragma unroll
      for (int j0 = 0; j0 < BN / 8; j0 += kFixupChunk<BN>) {
        float4 v[kFixupChunk<BN>];
        final_chunk<BN>(acc, partial, fixup, j0, v);
#pragma unroll
        for (int jj = 0; jj < kFixupChunk<BN>; ++jj) {
          const int col = w.n0 + 8 * (j0 + jj) + 2 * (lane % 4);
          if (col >= p.k) continue;
          if (row_ok) store_pair(yrow, col, v[jj].x, v[jj].y, pairs, p.k);
          if (row8_ok) store_pair(yrow + 8 * p.k, col, v[jj].z, v[jj].w, pairs, p.k);
        }
      }
    }
  });
  if constexpr (kStaged)
    if (t == 0) hopper::bulk_wait_group<0>();  // the last store is complete before the block ends
}

}  // namespace
