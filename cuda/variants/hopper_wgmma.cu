// opbench: dtypes=f16,bf16,f32 f32_math=tf32 archs=sm_90a
// hopper_wgmma.cu -- variant 5: Hopper implicit GEMM on wgmma + TMA, warp-specialised.
//
// Adds over mma.sync kernels (one warp, 16x8x16 per instruction, operands staged through
// registers with ldmatrix, addresses computed by every thread): a warpgroup (128 threads) issues
// wgmma.m64nNk16 (f16, bf16) or wgmma.m64nNk8 tf32 (f32 inputs) reading both operands straight
// from shared memory (128-byte swizzled, K-major), asynchronously, so the tensor cores run while
// the next tile lands. The tiles are moved by the tensor memory accelerator: the filter tile by a
// 2D tiled TMA load over Wt viewed as [K][R*S*C], the activation tile (128 output pixels x one
// 128-byte row of channels of one filter tap: 64 16-bit or 32 f32 values) by one TMA im2col load
// whose hardware walks the pixels (stride, padding = zero fill, image edges) itself. f32 operands
// are described to TMA as TFLOAT32, which rounds them to tf32 on the way in (relative error vs the
// float64 reference 2.9e-4, the same as cuDNN's tf32 rows; truncation would give ~1e-3).
// One producer warp (setmaxnreg down to 40) feeds a ring of kStages smem slots guarded by full
// (TMA transaction bytes) and empty (8 consumer-warp arrivals) mbarriers; two consumer
// warpgroups (setmaxnreg up to 232) each own 64 rows of the 128 x BN block tile and keep one
// wgmma group in flight (wait_group 1) before releasing a slot. Persistent grid (one block per
// SM walks work units), the ring running on across units.
// Epilogues (detail "epilogue"; Y is stored in the input type, f32 for tf32):
//   "tma_store": 16-bit Y with K % 8 == 0 (on the gather path timed against "direct"): each
//                consumer warpgroup rounds its 64 x BN tile into a 128B-swizzled staging tile
//                in shared memory and one thread stores it with TMA (cp.async.bulk.tensor),
//                which runs on while the warpgroup starts the next unit;
//   "direct":    guarded 4-/8-byte stores of value pairs straight from the accumulators.
// Schedules (detail "schedule"): "data_parallel": block b of a persistent grid (one block per SM)
// takes whole tiles b, b + grid, ...; "stream_k" (for tile counts that leave SMs idle or end in
// a partial wave): all but the last one or two waves of tiles as before, then the remaining
// tiles' k-steps laid end to end and cut into one even range per block, so every SM does the
// same number of k-steps. A tile cut between blocks is a "partial" one: each block stores its
// f32 partial tile into its own workspace slot (plain 16-byte stores) and counts itself in on a
// per-tile counter; the last to arrive sums the slots in block order (deterministic) and runs the
// epilogue. No memset, no atomics on data, no extra pass. (Step 6's split-K added the slices with
// vector REDs into one f32 tile: L2's atomic units made a 2-way split 3-5x slower than none.)
// Paths (detail "path"):
//   "tma_im2col": C a multiple of the 128-byte k-step and the im2col box within TMA's limits
//                 (every ResNet-50 layer but the stem): one k-step = one (r, s) tap.
//   "gather":     anything else (C = 3, odd C or K, ...): the same consumers, but the producer is
//                 a whole warpgroup that gathers the reduction slice into the same swizzled
//                 layout. C a multiple of 16 bytes: one cp.async per 16-byte chunk (zero fill
//                 for padding), the output pixels of its rows decoded once per work unit, and an
//                 mbarrier arrival when the copies land, so the producer runs up to kStages slices
//                 ahead; other C: guarded element-wise loads, smem stores, fence.proxy.async.
//   "gather_padded_c": C not a multiple of 16 bytes (the C = 3 stem): X and Wt copied into the
//                 workspace with C padded to the next 16 bytes (zeros), then the cp.async gather.
//                 The padding pass runs on every launch and is part of the timed work.
//   "tma_row_windows": S x C values of a filter row fit in half a k-step or less (the stem:
//                 7 x 3 of 64): a pass copies, per output pixel, the input windows of Q filter
//                 rows side by side into one 128-byte row of the workspace (the filter likewise),
//                 and the convolution runs on the TMA path as a ceil(R / Q)-tap, S = 1 problem
//                 (the stem: 4 k-steps instead of 7 padded ones, TMA instead of a gather
//                 producer). The pass runs on every launch and is part of the timed work.
// Blocks (detail "tile", "blocks_per_sm"): the default block above (128-row tiles, one per SM),
// and on the TMA path 64-row tiles of one consumer warpgroup, data-parallel, one or two blocks
// per SM (B read by one warpgroup instead of two, twice the tiles for small layers; two blocks
// overlap one's epilogue with the other's main loop).
// variant_prepare times block-tile widths BN in {64, 128, 256}, both schedules, both blocks, both
// epilogues on the gather path and the padded and row-window candidates on the real problem,
// cross-checks each candidate against the first and keeps the fastest; "detail" lists them all.
// Prediction (first version): the big 3x3 layers tensor-core bound, at or above cuDNN fp16; the
// 56x56 C=K=64 layers bound by writing Y. Measured (H200/H100, batch 16, vs cuDNN in the same
// call; docs/perf-log.md, "Tensor cores: hopper_wgmma", steps 1-8): correct on all ResNet-50
// layers and edge shapes (f16, bf16, tf32); SASS has HGMMA (.F32, .BF16, .TF32), UTMALDG,
// UTMASTG, LDGSTS (gather), no spills. Step 5 (16-bit Y, TMA-store epilogue, graph-replay
// timing): geometric mean 0.77-0.80x cuDNN fp16, 0.92x cuDNN tf32; 56x56 and 28x28 3x3 layers
// above cuDNN fp16, 7x7 layers 0.6-0.8x. Step 6 (cp.async gather, padded C): the stem 16 -> 37
// TFLOP/s on an H100 (cuDNN 36). 2-CTA clusters sharing the filter tile by TMA multicast were
// timed and gave nothing (step 6), so they are not here. Step 7 (stream-K instead of split-K):
// chosen on the two tf32 512-channel 3x3 layers (+4-20%); at f16/bf16 data-parallel stayed
// faster on every layer. Step 8: ncu put the L2 -> SM path at 7-17% of its peak and shared
// memory as the busiest unit; 64-row tiles (one consumer warpgroup, one or two blocks per SM)
// read fewer shared-memory bytes per MMA and give small layers more tiles: 1.08-1.19x on the
// 7x7 / 14x14 layers; row windows run the stem 2.1-2.3x faster (87 TFLOP/s). Run (H200, commit
// b5af669, cuDNN in the same run): 0.92 / 0.96x cuDNN fp16 at batch 16 / 32, 0.96x bf16, 1.11x
// tf32. Next: the 1x1 and 512-channel 3x3 layers (0.67-0.80x): A from registers (wgmma RS) or a
// B tile shared across a 2-CTA cluster, and tile widths that fill a wave.
#include "conv2d.cuh"
#include "hopper_ptx.cuh"
#include "hopper_tensormap.cuh"
#include "mma_ptx.cuh"  // cp.async copies (the gather producer)

#include <algorithm>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

// Stream-K: >= 4 k-steps per block, else the ring's fill/drain and the fixup dominate.
constexpr int kMinStepsPerBlock = 4;
// Partial tiles are summed kFixupChunk float4 columns at a time (the loads of a chunk in flight
// together, without a second accumulator array beside the wgmma one); 4 beside BN = 256's 128
// accumulators, where 8 spilled.
template <int BN>
constexpr int kFixupChunk = BN == 256 ? 4 : 8;

enum class Path { kTmaIm2col, kGather };

const char* path_name(Path p) { return p == Path::kTmaIm2col ? "tma_im2col" : "gather"; }

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

// ---- host side ----------------------------------------------------------------------------------
struct Candidate {
  int bn;
  bool stream_k = false;  // the stream-K schedule (else data-parallel)
  bool staged = false;    // the TMA-store epilogue (16-bit Y, K % 8 == 0)
  bool pad_c = false;     // gather path on X and Wt padded to whole 16-byte channel chunks
  bool windows = false;   // TMA path on the row windows of X and Wt (tma_row_windows)
  int wg = kConsumerWarpgroups;  // consumer warpgroups: the tile has 64 * wg rows
  int occ = 1;            // blocks per SM (the persistent grid is occ blocks per SM)
  float ms = 0.f;
  double rel_diff = 0.0;  // max |Y - Y_first| / max |Y_first|
  bool valid = true;
};

// Tensor maps of one (X, Wt) buffer pair; the B map's box depends on BN.
struct Maps {
  const void* x;
  const void* w;
  CUtensorMap a[2];  // boxes of 64 and 128 output pixels (the block tile's rows)
  CUtensorMap b[3];  // BN = 64, 128, 256
};
// The Y map of one output buffer (staged epilogue): [M][K], box 64 x 64, 128B swizzle.
struct YMap {
  const void* y;
  CUtensorMap map;
};

constexpr int kBlockNs[] = {64, 128, 256};
constexpr int kOneWarpgroupMaxBN = 128;  // one-warpgroup blocks: 64 x 64 and 64 x 128 tiles

int bn_index(int bn) { return bn == 64 ? 0 : bn == 128 ? 1 : 2; }

// Reduction elements per k-step for the problem's element type (kBlockK<T> on the device).
int block_k(const ConvProblem& p) { return hopper::kSwizzleBytes / int(elem_bytes(p.elem)); }
int k_steps(const ConvProblem& p) { return (p.gemm_k() + block_k(p) - 1) / block_k(p); }

int m_tiles(const ConvProblem& p, int bm = kBlockM) { return (p.gemm_m() + bm - 1) / bm; }
int n_tiles(const ConvProblem& p, int bn) { return (p.k + bn - 1) / bn; }

// The persistent grid (occ blocks per SM: the ring takes most of the shared memory) and the
// tiles it runs data-parallel. Data-parallel: min(tiles, occ * SMs) blocks, every tile.
// Stream-K (default block only): as many blocks as SMs while each gets >= kMinStepsPerBlock
// k-steps; whole waves of tiles data-parallel except the last one or two, whose k-steps are
// shared out evenly.
struct Schedule {
  int grid, dp_tiles;
};
Schedule schedule_for(const ConvProblem& p, int bn, bool stream_k, int bm = kBlockM, int occ = 1) {
  const int tiles = m_tiles(p, bm) * n_tiles(p, bn);
  if (!stream_k) return {std::min(tiles, occ * sm_count()), tiles};
  const long long steps = (long long)tiles * k_steps(p);
  const int grid = int(std::clamp<long long>(steps / kMinStepsPerBlock, 1, sm_count()));
  return {grid, tiles >= 2 * grid ? (tiles / grid - 1) * grid : 0};
}

// Stream-K is a candidate where it changes something (the tiles are not whole waves of blocks)
// and every block gets kMinStepsPerBlock k-steps of the region.
bool stream_k_helps(const ConvProblem& p, int bn) {
  const int tiles = m_tiles(p) * n_tiles(p, bn);
  const Schedule s = schedule_for(p, bn, true);
  const long long region_steps = (long long)(tiles - s.dp_tiles) * k_steps(p);
  return s.grid > 1 && tiles % s.grid != 0 && region_steps / s.grid >= kMinStepsPerBlock;
}

// TMA im2col needs: C a multiple of the k-step (64 or 32 channels: a k-step is one tap), 16-byte
// strides, window corners in [-128, 127] (rank-4 limit), tap offsets that fit comfortably in
// the 16-bit offset operands, and traversal strides <= 8.
bool tma_shape_ok(const ConvProblem& p) {
  const int upper_w = (p.q - 1) * p.stride_w - p.pad_w - (p.w - 1);
  const int upper_h = (p.p - 1) * p.stride_h - p.pad_h - (p.h - 1);
  auto corner_ok = [](int v) { return v >= -128 && v <= 127; };
  return p.c % block_k(p) == 0 && corner_ok(-p.pad_w) && corner_ok(-p.pad_h) && corner_ok(upper_w) &&
         corner_ok(upper_h) && (p.r - 1) * p.dil_h < 128 && (p.s - 1) * p.dil_w < 128 &&
         p.stride_h <= 8 && p.stride_w <= 8;
}

// The staged epilogue stores Y with TMA: 16-bit Y whose rows are whole 16-byte units.
bool staged_ok(const ConvProblem& p) { return p.elem != ElemType::f32 && p.k % 8 == 0; }

// The problem the channel-padded candidates run: C rounded up to a whole 16-byte chunk.
int chunk_elems(const ConvProblem& p) { return kChunkBytes / int(elem_bytes(p.elem)); }
ConvProblem padded_problem(const ConvProblem& p) {
  ConvProblem q = p;
  q.c = (p.c + chunk_elems(p) - 1) / chunk_elems(p) * chunk_elems(p);
  return q;
}
bool pads_channels(const ConvProblem& p) { return p.c % chunk_elems(p) != 0; }
// Workspace: [stream-K counters + partial tiles][padded X][padded Wt][row windows of X][of Wt],
// each part 256-byte aligned.
size_t round_up_256(size_t bytes) { return (bytes + 255) / 256 * 256; }
size_t padded_x_bytes(const ConvProblem& p) {
  return round_up_256(size_t(p.n) * p.h * p.w * padded_problem(p).c * elem_bytes(p.elem));
}
size_t padded_w_bytes(const ConvProblem& p) {
  return round_up_256(size_t(p.k) * p.r * p.s * padded_problem(p).c * elem_bytes(p.elem));
}

// The row-window rewrite of a problem (row_windows_kernel): Q filter rows per k-step, the X and
// Wt passes, and the TMA problem they make. Output row oh, tap t reads source rows
// oh * stride_h - pad_h + (Q t + q) dil_h = m * step - pad_h + q dil_h with m = oh stride' + t dil'
// for step = gcd(stride_h, Q dil_h): the windowed X has rows m (step source rows apart), and the
// TMA problem strides by stride' = stride_h / step and dilates by dil' = Q dil_h / step.
struct RowWindows {
  bool ok = false;
  WindowPass x, w;
  ConvProblem run;
};
constexpr int kWindowRowsMax = 4;  // Q <= 4: a window of >= 16 elements (>= one 16-byte chunk)
RowWindows row_windows(const ConvProblem& p) {
  RowWindows rw;
  // 16-bit only. f32 on the stem: 155 us against 103 for the padded gather (H200, batch 16: 7
  // k-steps of 32 values), and TMA rounds the windows to tf32 where the gather candidates it is
  // checked against truncate (max difference 9e-4 of max |Y|, over the f32 check's 1e-4).
  if (p.elem == ElemType::f32) return rw;
  const int block = block_k(p);
  int q_rows = 1;  // the largest Q whose windows fit and that R can use
  while (q_rows < kWindowRowsMax && p.s * p.c * 2 * q_rows <= block && q_rows < p.r) q_rows *= 2;
  if (p.s * p.c * q_rows > block) return rw;
  const int group = block / q_rows, taps = (p.r + q_rows - 1) / q_rows;
  const int step = std::gcd(p.stride_h, q_rows * p.dil_h);
  ConvProblem run = p;
  run.c = block;
  run.r = taps;
  run.s = 1;
  run.stride_h = p.stride_h / step;
  run.dil_h = q_rows * p.dil_h / step;
  run.h = (p.p - 1) * run.stride_h + (taps - 1) * run.dil_h + 1;
  run.w = p.q;
  run.stride_w = run.dil_w = 1;
  run.pad_h = run.pad_w = 0;
  if (!run.finalize().empty() || run.p != p.p || run.q != p.q || !tma_shape_ok(run)) return rw;
  rw.ok = true;
  rw.run = run;
  rw.x = {p.n, p.h, p.w, p.c, run.h, p.q, q_rows, group, step, p.pad_h, p.dil_h,
          p.s, p.stride_w, p.pad_w, p.dil_w};
  rw.w = {p.k, p.r, p.s, p.c, taps, 1, q_rows, group, q_rows, 0, 1, p.s, 1, 0, 1};
  return rw;
}
size_t windows_x_bytes(const RowWindows& rw) {
  return rw.ok ? round_up_256(size_t(rw.run.n) * rw.run.h * rw.run.w * rw.run.c *
                              elem_bytes(rw.run.elem))
               : 0;
}
size_t windows_w_bytes(const RowWindows& rw) {
  return rw.ok ? round_up_256(size_t(rw.run.k) * rw.run.r * rw.run.c * elem_bytes(rw.run.elem)) : 0;
}

struct State {
  Path path = Path::kGather;
  Candidate choice{64};
  std::vector<Candidate> timed;
  std::vector<Maps> maps;    // one per buffer set seen
  std::vector<YMap> y_maps;  // one per output buffer seen
  size_t padding_offset = 0; // workspace offset of the padded X (after the stream-K part)
  size_t windows_offset = 0; // workspace offset of the row windows of X (after the padded part)
  RowWindows windows;        // the row-window rewrite of the problem (windows.ok: offered)
};
State g;

bool encode_maps(const ConvProblem& p, const void* x, const void* w, Maps& m) {
  m.x = x;
  m.w = w;
  for (int i = 0; i < 2; ++i)
    if (!hopper::encode_im2col_4d(&m.a[i], p, x, kWgmmaM * (i + 1), block_k(p))) return false;
  for (int bn : kBlockNs)
    if (!hopper::encode_tiled_2d(&m.b[bn_index(bn)], p.elem, w, uint64_t(p.k),
                                 uint64_t(p.gemm_k()), uint32_t(bn), block_k(p)))
      return false;
  return true;
}

const Maps& maps_for(const ConvProblem& p, const void* x, const void* w) {
  for (const Maps& m : g.maps)
    if (m.x == x && m.w == w) return m;
  Maps m{};
  if (!encode_maps(p, x, w, m)) FAIL("TMA tensor-map encoding failed for a new buffer pair");
  g.maps.push_back(m);
  return g.maps.back();
}

const CUtensorMap& y_map_for(const ConvProblem& p, const void* y) {
  for (const YMap& m : g.y_maps)
    if (m.y == y) return m.map;
  YMap m{y, {}};
  if (!hopper::encode_tiled_2d(&m.map, p.elem, y, uint64_t(p.gemm_m()), uint64_t(p.k), kWgmmaM,
                               kYBoxCols))
    FAIL("TMA tensor-map encoding of Y failed");
  g.y_maps.push_back(m);
  return g.y_maps.back().map;
}

// Workspace of the stream-K candidates: the tile counters, then the float32 partial tiles.
constexpr size_t kCountersBytes = 256;  // rounded up to this (keeps the partials aligned)
size_t counters_bytes(const ConvProblem& p) {
  const size_t bytes = size_t(m_tiles(p)) * n_tiles(p, kBlockNs[0]) * sizeof(int);
  return (bytes + kCountersBytes - 1) / kCountersBytes * kCountersBytes;
}

template <class T, class B, int BN, Path kPath, bool kVec, bool kStaged>
void launch_kernel(const ConvProblem& p, const void* x, const void* w, void* y, void* workspace,
                   bool stream_k, cudaStream_t stream) {
  using L = Layout<B, BN, kStaged>;
  auto kernel = hopper_conv_kernel<T, B, BN, kPath, kVec, kStaged>;
  static bool configured = false;
  if (!configured) {
    CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    L::kSmemBytes));
    configured = true;
  }
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  Args args{p,
            x,
            w,
            y,
            reinterpret_cast<float*>(ws + counters_bytes(p)),
            reinterpret_cast<int*>(ws),
            k_steps(p),
            m_tiles(p, B::kM),
            n_tiles(p, BN),
            0};
  if ((long long)args.m_tiles * args.n_tiles >= (1LL << 31) / B::kM)
    FAIL("too many tiles for int32 indexing");
  const Schedule schedule = schedule_for(p, BN, stream_k, B::kM, B::kBlocksPerSm);
  args.dp_tiles = schedule.dp_tiles;
  CUtensorMap a{}, b{}, c{};
  if constexpr (kPath == Path::kTmaIm2col) {
    const Maps& m = maps_for(p, x, w);
    a = m.a[B::kM / kWgmmaM - 1];
    b = m.b[bn_index(BN)];
  }
  if constexpr (kStaged) c = y_map_for(p, y);
  const dim3 grid(unsigned(schedule.grid));
  check_grid(grid, "hopper_conv_kernel");
  kernel<<<grid, B::kThreads, L::kSmemBytes, stream>>>(a, b, c, args);
  CHECK_LAUNCH();
}

template <class T, int BN, bool kStaged>
void launch_gather(const Candidate& c, const ConvProblem& p, const void* x, const void* w, void* y,
                   void* ws, cudaStream_t stream) {
  if (p.c % kChunkElems<T> == 0)
    launch_kernel<T, DefaultBlock, BN, Path::kGather, true, kStaged>(p, x, w, y, ws, c.stream_k,
                                                                     stream);
  else
    launch_kernel<T, DefaultBlock, BN, Path::kGather, false, kStaged>(p, x, w, y, ws, c.stream_k,
                                                                      stream);
}

template <class T, class B, int BN>
void launch_tma(const Candidate& c, const ConvProblem& p, const void* x, const void* w, void* y,
                void* ws, cudaStream_t stream) {
  if constexpr (sizeof(T) == 2)
    if (c.staged)
      return launch_kernel<T, B, BN, Path::kTmaIm2col, true, true>(p, x, w, y, ws, c.stream_k,
                                                                   stream);
  launch_kernel<T, B, BN, Path::kTmaIm2col, true, false>(p, x, w, y, ws, c.stream_k, stream);
}

template <class T, int BN>
void launch_bn(const Candidate& c, Path path, const ConvProblem& p, const void* x, const void* w,
               void* y, void* ws, cudaStream_t stream) {
  if (path == Path::kTmaIm2col) {
    if (c.wg == kConsumerWarpgroups) return launch_tma<T, DefaultBlock, BN>(c, p, x, w, y, ws, stream);
    if constexpr (BN <= kOneWarpgroupMaxBN) {
      if (c.occ == 1) return launch_tma<T, Block<1, 1>, BN>(c, p, x, w, y, ws, stream);
      return launch_tma<T, Block<1, 2>, BN>(c, p, x, w, y, ws, stream);
    } else {
      FAIL("no one-warpgroup kernel for BN=%d", BN);
    }
  }
  if constexpr (BN == 256) {  // the gather producer's register budget is sized for BN <= 128
    FAIL("no gather-path kernel for BN=256");
  } else {
    if constexpr (sizeof(T) == 2)
      if (c.staged) return launch_gather<T, BN, true>(c, p, x, w, y, ws, stream);
    launch_gather<T, BN, false>(c, p, x, w, y, ws, stream);
  }
}

template <class T>
void launch_bns(const Candidate& c, Path path, const ConvProblem& p, const void* x, const void* w,
                void* y, void* ws, cudaStream_t stream) {
  switch (c.bn) {
    case 64: return launch_bn<T, 64>(c, path, p, x, w, y, ws, stream);
    case 128: return launch_bn<T, 128>(c, path, p, x, w, y, ws, stream);
    case 256: return launch_bn<T, 256>(c, path, p, x, w, y, ws, stream);
  }
  FAIL("no kernel for BN=%d", c.bn);
}

template <class T>
void pad_channels(const void* src, void* dst, long long rows, int c, int cp, cudaStream_t stream) {
  const long long chunks = rows * (cp / kChunkElems<T>);
  constexpr int kPadThreads = 256;
  const dim3 grid(unsigned((chunks + kPadThreads - 1) / kPadThreads));
  check_grid(grid, "pad_channels_kernel");
  pad_channels_kernel<T><<<grid, kPadThreads, 0, stream>>>(static_cast<const Raw<T>*>(src),
                                                           static_cast<Raw<T>*>(dst), chunks, c, cp);
  CHECK_LAUNCH();
}

template <class T>
void window_pass(const void* src, void* dst, const WindowPass& wp, cudaStream_t stream) {
  const long long windows = (long long)wp.images * wp.out_rows * wp.out_cols * wp.q_rows;
  constexpr int kWindowThreads = 256;
  const dim3 grid(unsigned((windows + kWindowThreads - 1) / kWindowThreads));
  check_grid(grid, "row_windows_kernel");
  row_windows_kernel<T><<<grid, kWindowThreads, 0, stream>>>(static_cast<const Raw<T>*>(src),
                                                            static_cast<Raw<T>*>(dst), wp, windows);
  CHECK_LAUNCH();
}

// A padded or row-window candidate rewrites X and Wt into the workspace on every launch (the
// inputs may change between launches; the pass is part of the timed work), then runs the
// rewritten problem.
template <class T>
void launch_typed(const Candidate& c, const ConvProblem& p, const void* x, const void* w, void* y,
                  void* ws, cudaStream_t stream) {
  if (c.pad_c) {
    const ConvProblem pp = padded_problem(p);
    uint8_t* xp = static_cast<uint8_t*>(ws) + g.padding_offset;
    uint8_t* wp = xp + padded_x_bytes(p);
    pad_channels<T>(x, xp, (long long)p.n * p.h * p.w, p.c, pp.c, stream);
    pad_channels<T>(w, wp, (long long)p.k * p.r * p.s, p.c, pp.c, stream);
    return launch_bns<T>(c, Path::kGather, pp, xp, wp, y, ws, stream);
  }
  if (c.windows) {
    const RowWindows& rw = g.windows;
    uint8_t* xr = static_cast<uint8_t*>(ws) + g.windows_offset;
    uint8_t* wr = xr + windows_x_bytes(rw);
    window_pass<T>(x, xr, rw.x, stream);
    window_pass<T>(w, wr, rw.w, stream);
    return launch_bns<T>(c, Path::kTmaIm2col, rw.run, xr, wr, y, ws, stream);
  }
  launch_bns<T>(c, g.path, p, x, w, y, ws, stream);
}

void launch_candidate(const Candidate& c, const ConvProblem& p, const void* x, const void* w,
                      void* y, void* workspace, cudaStream_t stream) {
  if (p.elem == ElemType::bf16) launch_typed<__nv_bfloat16>(c, p, x, w, y, workspace, stream);
  else if (p.elem == ElemType::f16) launch_typed<__half>(c, p, x, w, y, workspace, stream);
  else launch_typed<float>(c, p, x, w, y, workspace, stream);
}

// BN no wider than K rounded up to 64 (a wider tile only multiplies zeros); 256 only on the TMA
// path. Stream-K where the tiles are not whole waves of blocks (stream_k_helps). On the TMA path
// also 64-row tiles (one consumer warpgroup) with one or two blocks per SM, BN <= 128. A 16-bit Y with K % 8 == 0
// takes the staged epilogue on the TMA path (it beat the direct one on every ResNet-50 layer
// but one, where they tied within 2%: docs/perf-log.md); the gather path times both.
std::vector<Candidate> candidate_list(const ConvProblem& p, Path path) {
  std::vector<Candidate> out;
  const int k_round = (p.k + 63) / 64 * 64;
  const bool staged = staged_ok(p);
  for (int bn : kBlockNs) {
    if (bn > std::max(64, k_round) || (bn == 256 && path != Path::kTmaIm2col)) continue;
    for (bool stream_k : {false, true}) {
      if (stream_k && !stream_k_helps(p, bn)) continue;
      out.push_back({bn, stream_k, staged});
      if (path == Path::kGather && staged) out.push_back({bn, stream_k, false});
    }
    if (path == Path::kTmaIm2col && bn <= kOneWarpgroupMaxBN)
      for (int occ : {1, 2}) {
        Candidate c{bn, false, staged};
        c.wg = 1;
        c.occ = occ;
        out.push_back(c);
      }
  }
  return out;
}

// What variant_prepare times: the problem's own candidates, and on the gather path those of its
// rewrites: channels that are not whole 16-byte chunks (C = 3, odd C) padded, and row windows
// where S x C fits in a k-step.
std::vector<Candidate> all_candidates(const ConvProblem& p, Path path) {
  std::vector<Candidate> out = candidate_list(p, path);
  if (path == Path::kGather && pads_channels(p))
    for (Candidate c : candidate_list(padded_problem(p), Path::kGather)) {
      c.pad_c = true;
      out.push_back(c);
    }
  if (const RowWindows rw = row_windows(p); path == Path::kGather && rw.ok)
    for (Candidate c : candidate_list(rw.run, Path::kTmaIm2col)) {
      c.windows = true;
      out.push_back(c);
    }
  return out;
}

// Bytes of the float32 partial tiles of the stream-K candidates: two slots per block (0 if no
// candidate is stream-K).
size_t partials_bytes(const ConvProblem& p) {
  size_t bytes = 0;
  // The TMA lists are supersets of the gather lists (of p and of the padded problem).
  std::vector<ConvProblem> problems{p, padded_problem(p)};
  if (const RowWindows rw = row_windows(p); rw.ok) problems.push_back(rw.run);
  for (const ConvProblem& q : problems)
    for (const Candidate& c : candidate_list(q, Path::kTmaIm2col))
      if (c.stream_k)
        bytes = std::max(bytes, size_t(2) * schedule_for(q, c.bn, true).grid * kBlockM * c.bn *
                                    sizeof(float));
  return bytes;
}

size_t padding_offset(const ConvProblem& p) {
  const size_t partials = partials_bytes(p);
  return partials == 0 ? 0 : counters_bytes(p) + partials;
}

size_t windows_offset(const ConvProblem& p) {
  return padding_offset(p) + (pads_channels(p) ? padded_x_bytes(p) + padded_w_bytes(p) : 0);
}

}  // namespace

const char* variant_name() { return "hopper_wgmma"; }

size_t variant_workspace_bytes(const ConvProblem& prob) {
  const RowWindows rw = row_windows(prob);
  return windows_offset(prob) + windows_x_bytes(rw) + windows_w_bytes(rw);
}

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets, void* workspace,
                     cudaStream_t stream) {
  require_elem(prob, {ElemType::f16, ElemType::bf16, ElemType::f32}, variant_name());
  int dev = 0, major = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  if (major != 9) FAIL("hopper_wgmma needs a compute capability 9.x GPU (sm_90a), found %d.x", major);

  g.path = Path::kGather;
  g.maps.clear();
  g.y_maps.clear();
  g.padding_offset = padding_offset(prob);
  g.windows_offset = windows_offset(prob);
  g.windows = row_windows(prob);
  // The stream-K tile counters start at 0; every launch leaves them at 0.
  if (workspace != nullptr)
    CHECK_CUDA(cudaMemsetAsync(workspace, 0, variant_workspace_bytes(prob), stream));
  if (tma_shape_ok(prob)) {
    bool ok = true;
    for (int i = 0; i < num_sets && ok; ++i) {
      Maps m{};
      ok = encode_maps(prob, sets[i].x, sets[i].w, m);
      g.maps.push_back(m);
    }
    if (ok) g.path = Path::kTmaIm2col;
    else std::fprintf(stderr, "warning: TMA tensor-map encoding refused; using the gather path\n");
  }

  g.timed = all_candidates(prob, g.path);
  CandidateCheck check;
  for (size_t i = 0; i < g.timed.size(); ++i) {
    Candidate& c = g.timed[i];
    const CandidateCheck::Measured m = check.measure(
        prob, sets, num_sets,
        [&](const DeviceSet& s) { launch_candidate(c, prob, s.x, s.w, s.y, workspace, stream); },
        /*warmup=*/3, /*reps=*/10, stream);
    c.ms = m.ms;
    c.rel_diff = m.rel_diff;
    c.valid = m.valid;
    if (!c.valid)
      std::fprintf(stderr, "warning: candidate BN=%d stream_k=%d staged=%d pad_c=%d windows=%d "
                   "disagrees with the first (max rel diff %g); rejected\n", c.bn, int(c.stream_k),
                   int(c.staged), int(c.pad_c), int(c.windows), c.rel_diff);
    if (i == 0 || (c.valid && c.ms < g.choice.ms)) g.choice = c;
  }
  CHECK_CUDA(cudaStreamSynchronize(stream));
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y,
                    void* workspace, cudaStream_t stream) {
  launch_candidate(g.choice, prob, x, w, y, workspace, stream);
}

// Stages and shared-memory bytes of a configuration (template constants, chosen at run time).
template <class B, bool kStaged>
std::pair<int, int> layout_of(int bn) {
  switch (bn) {
    case 64: return {Layout<B, 64, kStaged>::kStages, Layout<B, 64, kStaged>::kSmemBytes};
    case 128: return {Layout<B, 128, kStaged>::kStages, Layout<B, 128, kStaged>::kSmemBytes};
  }
  if constexpr (B::kM == kBlockM) {  // BN = 256: the default block only
    return {Layout<B, 256, kStaged>::kStages, Layout<B, 256, kStaged>::kSmemBytes};
  } else {
    FAIL("no one-warpgroup kernel for BN=%d", bn);
  }
}
template <class B>
std::pair<int, int> layout_of(const Candidate& c) {
  return c.staged ? layout_of<B, true>(c.bn) : layout_of<B, false>(c.bn);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  std::string cands = "[";
  for (size_t i = 0; i < g.timed.size(); ++i) {
    Json c;
    c.add_int("bn", g.timed[i].bn)
        .add_bool("stream_k", g.timed[i].stream_k)
        .add_bool("staged", g.timed[i].staged)
        .add_bool("pad_c", g.timed[i].pad_c)
        .add_bool("windows", g.timed[i].windows)
        .add_int("bm", kWgmmaM * g.timed[i].wg)
        .add_int("blocks_per_sm", g.timed[i].occ)
        .add_num("ms", g.timed[i].ms)
        .add_num("max_rel_diff_vs_first", g.timed[i].rel_diff)
        .add_bool("valid", g.timed[i].valid);
    cands += (i ? ", " : "") + c.str();
  }
  cands += "]";
  const Candidate& c = g.choice;
  const int bm = kWgmmaM * c.wg;
  const auto [stages, smem] = c.wg == kConsumerWarpgroups ? layout_of<DefaultBlock>(c)
                              : c.occ == 1                ? layout_of<Block<1, 1>>(c)
                                                          : layout_of<Block<1, 2>>(c);
  const ConvProblem run = c.pad_c ? padded_problem(prob) : c.windows ? g.windows.run : prob;
  const Schedule schedule = schedule_for(run, c.bn, c.stream_k, bm, c.occ);
  detail.add_str("path", c.pad_c     ? "gather_padded_c"
                         : c.windows ? "tma_row_windows"
                                     : path_name(g.path))
      .add_int("c_run", run.c)
      .add_int("r_run", run.r)
      .add_str("tile", std::to_string(bm) + "x" + std::to_string(c.bn) + "x" +
                           std::to_string(block_k(prob)))
      .add_str("epilogue", c.staged ? "tma_store" : "direct")
      .add_str("schedule", c.stream_k ? "stream_k" : "data_parallel")
      .add_int("dp_tiles", schedule.dp_tiles)
      .add_int("tiles", m_tiles(run, bm) * n_tiles(run, c.bn))
      .add_int("stages", stages)
      .add_int("k_steps", k_steps(run))
      .add_int("consumer_warpgroups", c.wg)
      .add_int("blocks_per_sm", c.occ)
      .add_raw("candidates", cands);
  launch_config =
      launch_json(dim3(unsigned(schedule.grid)), dim3(kWarpgroupThreads * (1 + c.wg)), size_t(smem));
}
