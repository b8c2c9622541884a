// attention_fa2.cu -- FlashAttention-2 forward (issue #19): O = softmax(Q·Kᵀ/√D)·V on the tensor cores.
// opbench: op=attention dtypes=f16,bf16
//
// Q, K, V, O are [B,H,S,D] (bhsd) in f16 or bf16; the scores and the softmax are float32, P is rounded
// to the element type for P·V (as FlashAttention does; the op's error model has the term for it), O is
// accumulated in float32 and rounded once. No S x S matrix ever leaves the registers.
//
//   * Grid: one block per (batch*head, query tile), head-major so that the blocks resident at one time
//     share their heads' K and V in L2; causal problems start each head with its longest (last) tile.
//     4 warps per block, each owning kWarpRows query rows.
//   * Q: the block's tile copied to shared memory once (cp.async) and moved into registers by ldmatrix
//     once: the A fragments of every Q·Kᵀ MMA for the whole key loop.
//   * K and V: tiles of kBN = 64 keys streamed through shared memory with cp.async, double-buffered
//     (tile t+1 is copied while tile t is computed; one __syncthreads per tile); rows of D halves with
//     their 16-byte chunks XOR-swizzled by row, so the cp.async stores and the ldmatrix reads of 8 rows
//     hit 8 distinct bank groups. K rows give Q·Kᵀ's B fragments through ldmatrix, V rows give P·V's
//     through ldmatrix.trans. Rows past S are zero-filled (so masked keys multiply zeros, never stale
//     shared memory).
//   * S = Q·Kᵀ: mma.sync m16n8k16, f32 accumulate. Online softmax in registers: the running max and sum
//     of each row (the 4 threads of a row reduce with two shuffles), exp2 with 1/√D·log2(e) folded into
//     one FMA per score, O rescaled when the max grows.
//   * P·V: the S accumulators, rounded to the element type and packed in pairs, ARE the A fragments of
//     the next mma (m16n8k16's C layout for two n8 tiles is its A layout for one k16 step): no shared
//     memory round trip.
//   * Masks: keys >= S (the last partial key tile) get -inf; causal blocks stop at the diagonal (key tiles
//     entirely above it are never loaded) and mask the tiles that cross it. Rows >= S (the last partial
//     query tile) are computed on zero-filled Q and not stored.
//   * Tiles: D = 64 takes 128-query blocks (warps of 32 rows, two m16 tiles: each K/V fragment read from
//     shared memory feeds two MMAs, which Hopper's mma.sync rate needs to stay ahead of shared-memory
//     bandwidth); D = 128 takes 64-query blocks (warps of 16 rows): with Q in registers, 32 rows would
//     need O (128) + Q (64) + S (64) = 256 registers per thread. Both compiled as constants (template);
//     any other D stops with an error naming the variant.
//
// Test-only faults (never in a built variant of the config; tests/test_gpu_attention_cuda.py builds them
// to prove the verdict catches each): -DOPBENCH_FAULT_DROP_CAUSAL drops the causal mask of the diagonal
// tiles, -DOPBENCH_FAULT_DROP_TAIL drops the last partial key tile.
//
// Prediction and measured outcome: docs/perf-log.md, "Attention: attention_fa2 (issue #19)".
#include "attention.cuh"
#include "conv2d.cuh"
#include "mma_ptx.cuh"

#include <cmath>

namespace {

// ---------------------------------------------------------------------------------------------
// Tile configuration per head dim.
// ---------------------------------------------------------------------------------------------
template <int D>
struct Fa2Cfg {
  static_assert(D == 64 || D == 128, "compiled head dims: 64 and 128");
  static constexpr int kHeadDim = D;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  // m16 MMA row tiles per warp: 2 at D = 64 (32 rows), 1 at D = 128 (16 rows; see the header).
  static constexpr int kMTiles = D == 64 ? 2 : 1;
  static constexpr int kWarpRows = 16 * kMTiles;
  static constexpr int kBM = kWarps * kWarpRows;        // queries per block: 128 (D 64), 64 (D 128)
  static constexpr int kBN = 64;                         // keys per shared-memory tile
  static constexpr int kRowBytes = D * 2;                // one row of 16-bit Q, K or V values
  static constexpr int kChunks = D / 8;                  // 16-byte chunks per row
  static constexpr int kDSteps = D / 16;                 // k16 MMA steps over D (Q·Kᵀ)
  static constexpr int kDTiles = D / 8;                  // n8 MMA tiles over O's D columns (P·V)
  static constexpr int kKeyTiles = kBN / 8;              // n8 MMA tiles over a tile's keys (Q·Kᵀ)
  static constexpr int kKeySteps = kBN / 16;             // k16 MMA steps over a tile's keys (P·V)
  static constexpr int kTileBytes = kBN * kRowBytes;     // one K or V tile
  static constexpr int kStageBytes = 2 * kTileBytes;     // K then V
  static constexpr int kStages = 2;                      // double buffering
  static constexpr int kSmemBytes = kStages * kStageBytes;  // 32 KiB (D 64), 64 KiB (D 128)
  // Blocks per SM promised to ptxas (caps registers at 65536 / (128 * kMinBlocks)).
  static constexpr int kMinBlocks = 2;

  static_assert(kBM * kRowBytes <= kStageBytes, "the Q tile is staged in stage 1's K/V space");
  static_assert((kBM * kChunks) % kThreads == 0 && (kBN * kChunks) % kThreads == 0,
                "every thread copies the same number of 16-byte chunks");
  static_assert(kKeyTiles % 2 == 0 && kDTiles % 2 == 0, "ldmatrix.x4 loads two n8 tiles at a time");
  static_assert(kChunks >= 8, "the XOR swizzle permutes 8 chunks (128 bytes) of a row");
};

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile of D-wide rows: chunks XOR-swizzled by
// the row's low 3 bits, so 8 consecutive rows at one logical chunk hit 8 distinct bank groups.
template <int D>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return uint32_t(row * (D * 2) + ((chunk ^ (row & 7)) << 4));
}

// kRows rows of one head's [S, D] matrix, from row0, into a swizzled tile at `dst` (rows >= S zeroed).
template <class Cfg, int kRows, class T>
__device__ __forceinline__ void load_rows(uint32_t dst, const T* head, int row0, int S, int tid) {
  constexpr int kCopies = kRows * Cfg::kChunks / Cfg::kThreads;
#pragma unroll
  for (int i = 0; i < kCopies; ++i) {
    const int idx = tid + i * Cfg::kThreads;
    const int r = idx / Cfg::kChunks, c = idx % Cfg::kChunks;
    const int row = row0 + r;
    const bool valid = row < S;
    const T* src = valid ? head + row * Cfg::kHeadDim + c * 8 : head;
    mma::cp_async_16(dst + swz<Cfg::kHeadDim>(r, c), src, valid);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(Fa2Cfg<D>::kThreads, Fa2Cfg<D>::kMinBlocks)
    fa2_forward(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                T* __restrict__ o, int S, int n_qtiles, int causal, float scale_log2) {
  using Cfg = Fa2Cfg<D>;
  constexpr int kMT = Cfg::kMTiles;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = mma::smem_addr(smem);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;  // MMA fragment row group and column pair

  const int bh = blockIdx.x / n_qtiles;
  const int qt_in_head = blockIdx.x - bh * n_qtiles;
  const int qt = causal ? n_qtiles - 1 - qt_in_head : qt_in_head;  // causal: longest tiles first
  const int q0 = qt * Cfg::kBM;
  const int head = bh * S * D;  // < 2^31: the harness bounds B*H*S*D
  const T* qh = q + head;
  const T* kh = k + head;
  const T* vh = v + head;
  T* oh = o + head;

  // Key tiles this block visits: all of them, or (causal) up to the one holding its last query.
  const int key_end = causal ? min(q0 + Cfg::kBM, S) : S;
#ifdef OPBENCH_FAULT_DROP_TAIL
  const int n_ktiles = key_end / Cfg::kBN;  // test-only fault: the last partial key tile is dropped
#else
  const int n_ktiles = (key_end + Cfg::kBN - 1) / Cfg::kBN;
#endif

  // ---- Q: shared memory (stage 1's space, free until tile 1 is loaded) -> registers, once --------
  const uint32_t q_smem = smem_base + Cfg::kStageBytes;
  load_rows<Cfg, Cfg::kBM>(q_smem, qh, q0, S, tid);
  if (n_ktiles > 0) {
    load_rows<Cfg, Cfg::kBN>(smem_base, kh, 0, S, tid);
    load_rows<Cfg, Cfg::kBN>(smem_base + Cfg::kTileBytes, vh, 0, S, tid);
  }
  mma::cp_async_commit();
  mma::cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[kMT][Cfg::kDSteps][4];  // A fragments: rows of this warp x all of D
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int ks = 0; ks < Cfg::kDSteps; ++ks)
      mma::ldmatrix_x4(qf[mt][ks],
                       q_smem + swz<D>(warp * Cfg::kWarpRows + mt * 16 + (lane & 15), 2 * ks + (lane >> 4)));

  float acc[kMT][Cfg::kDTiles][4];  // O, float32: c0,c1 row g; c2,c3 row g + 8 of each m16 tile
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int dt = 0; dt < Cfg::kDTiles; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][dt][e] = 0.f;
  float row_max[kMT][2], row_sum[kMT][2];  // [m tile][row g, row g + 8]; sums: this thread's columns
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      row_max[mt][h] = -INFINITY;
      row_sum[mt][h] = 0.f;
    }

  for (int kt = 0; kt < n_ktiles; ++kt) {
    // Tile kt has landed for every thread, and every warp is done with tile kt - 1 (at kt = 0: with
    // Q's space), so tile kt + 1 may overwrite that stage while tile kt is computed.
    mma::cp_async_wait<0>();
    __syncthreads();
    if (kt + 1 < n_ktiles) {
      const uint32_t next = smem_base + ((kt + 1) & 1) * Cfg::kStageBytes;
      load_rows<Cfg, Cfg::kBN>(next, kh, (kt + 1) * Cfg::kBN, S, tid);
      load_rows<Cfg, Cfg::kBN>(next + Cfg::kTileBytes, vh, (kt + 1) * Cfg::kBN, S, tid);
    }
    mma::cp_async_commit();
    const uint32_t k_smem = smem_base + (kt & 1) * Cfg::kStageBytes;
    const uint32_t v_smem = k_smem + Cfg::kTileBytes;
    const int n0 = kt * Cfg::kBN;

    // ---- S = Q·Kᵀ (unscaled), float32 ------------------------------------------------------
    float sc[kMT][Cfg::kKeyTiles][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < Cfg::kKeyTiles; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[mt][nt][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < Cfg::kDSteps; ++ks) {
#pragma unroll
      for (int p = 0; p < Cfg::kKeyTiles / 2; ++p) {
        // Matrices: keys 16p+0..7 x d chunk 2ks, the same keys x chunk 2ks+1, keys 16p+8..15 x both.
        uint32_t b[4];
        mma::ldmatrix_x4(b, k_smem + swz<D>(16 * p + (lane & 7) + ((lane >> 4) << 3),
                                            2 * ks + ((lane >> 3) & 1)));
        const uint32_t b_lo[2] = {b[0], b[1]}, b_hi[2] = {b[2], b[3]};
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma::mma_16x8<T>(sc[mt][2 * p], qf[mt][ks], b_lo);
          mma::mma_16x8<T>(sc[mt][2 * p + 1], qf[mt][ks], b_hi);
        }
      }
    }

    // ---- masks: keys past S (last partial tile), keys after the query (causal diagonal tiles) ----
    const bool past_s = n0 + Cfg::kBN > S;
    const bool crosses_diagonal = causal && n0 + Cfg::kBN - 1 > q0;
    if (past_s || crosses_diagonal) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < Cfg::kKeyTiles; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = n0 + nt * 8 + 2 * t4 + (e & 1);
#ifdef OPBENCH_FAULT_DROP_CAUSAL
            const bool masked = j >= S;  // test-only fault: no causal mask
#else
            const int i = q0 + warp * Cfg::kWarpRows + mt * 16 + g + ((e >> 1) << 3);
            const bool masked = j >= S || (causal && j > i);
#endif
            if (masked) sc[mt][nt][e] = -INFINITY;
          }
    }

    // ---- online softmax: new row max, rescale O and the sum, P = exp2((s - max)·scale·log2 e) ----
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = row_max[mt][h];
#pragma unroll
        for (int nt = 0; nt < Cfg::kKeyTiles; ++nt)
          mx = fmaxf(mx, fmaxf(sc[mt][nt][2 * h], sc[mt][nt][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // A row with every key so far masked keeps max -inf: subtract 0 then (its P are all 0).
        const float m_scaled = mx == -INFINITY ? 0.f : mx * scale_log2;
        const float alpha = attention::fast_exp2(row_max[mt][h] * scale_log2 - m_scaled);  // 0 the first time
        row_max[mt][h] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < Cfg::kKeyTiles; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = attention::fast_exp2(fmaf(sc[mt][nt][2 * h + e], scale_log2, -m_scaled));
            sc[mt][nt][2 * h + e] = p;
            sum += p;
          }
        row_sum[mt][h] = row_sum[mt][h] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < Cfg::kDTiles; ++dt) {
          acc[mt][dt][2 * h] *= alpha;
          acc[mt][dt][2 * h + 1] *= alpha;
        }
      }

    // ---- O += P·V: P straight from the S accumulators as A fragments ---------------------------
#pragma unroll
    for (int kk = 0; kk < Cfg::kKeySteps; ++kk) {
      uint32_t a[kMT][4];  // keys 16kk..16kk+15: n8 tiles 2kk (cols 0-7) and 2kk+1 (cols 8-15)
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        a[mt][0] = pack_pair<T>(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);          // row g,   cols 2t
        a[mt][1] = pack_pair<T>(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);          // row g+8, cols 2t
        a[mt][2] = pack_pair<T>(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);  // row g,   cols 2t+8
        a[mt][3] = pack_pair<T>(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);  // row g+8, cols 2t+8
      }
#pragma unroll
      for (int p = 0; p < Cfg::kDTiles / 2; ++p) {
        // Transposed matrices: keys 16kk+0..7 x d chunk 2p, keys 16kk+8..15 x chunk 2p, then chunk 2p+1.
        uint32_t b[4];
        mma::ldmatrix_x4_trans(b, v_smem + swz<D>(16 * kk + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                  2 * p + (lane >> 4)));
        const uint32_t b_lo[2] = {b[0], b[1]}, b_hi[2] = {b[2], b[3]};
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          mma::mma_16x8<T>(acc[mt][2 * p], a[mt], b_lo);
          mma::mma_16x8<T>(acc[mt][2 * p + 1], a[mt], b_hi);
        }
      }
    }
  }

  // ---- O / row sum, rounded once, rows < S stored (4 bytes = 2 columns per store) ---------------
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = row_sum[mt][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = 1.f / l;
      const int i = q0 + warp * Cfg::kWarpRows + mt * 16 + g + 8 * h;
      if (i < S) {
        T* row = oh + i * D + 2 * t4;
#pragma unroll
        for (int dt = 0; dt < Cfg::kDTiles; ++dt)
          *reinterpret_cast<uint32_t*>(row + dt * 8) =
              pack_pair<T>(acc[mt][dt][2 * h] * inv, acc[mt][dt][2 * h + 1] * inv);
      }
    }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------
template <int D>
dim3 grid_of(const ConvProblem& prob) {
  const AttentionSizes& a = prob.attn;
  const int64_t n_qtiles = (a.s + Fa2Cfg<D>::kBM - 1) / Fa2Cfg<D>::kBM;
  return dim3(unsigned(int64_t(a.b) * a.heads * n_qtiles));  // <= B*H*S < 2^31
}

template <class T, int D>
void set_smem_limit() {
  CHECK_CUDA(cudaFuncSetAttribute(fa2_forward<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  Fa2Cfg<D>::kSmemBytes));
}

template <class T, int D>
void launch(const ConvProblem& prob, const void* x, const void* w, void* y, cudaStream_t stream) {
  using Cfg = Fa2Cfg<D>;
  const AttentionSizes& a = prob.attn;
  const dim3 grid = grid_of<D>(prob);
  check_grid(grid, "fa2_forward");
  const int n_qtiles = (a.s + Cfg::kBM - 1) / Cfg::kBM;
  const T* q = static_cast<const T*>(x);
  const T* k = static_cast<const T*>(w);  // K, then V right after it (the harness's Wt)
  const T* v = k + a.elems();
  const float scale_log2 = float(1.4426950408889634 / std::sqrt(double(D)));  // log2(e) / √D
  fa2_forward<T, D><<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(
      q, k, v, static_cast<T*>(y), a.s, n_qtiles, a.causal, scale_log2);
  CHECK_LAUNCH();
}

}  // namespace

const char* variant_name() { return "attention_fa2"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::attention, {ElemType::f16, ElemType::bf16}, variant_name());
  attention::dispatch(prob, variant_name(), [](auto kind) {
    using K = decltype(kind);
    set_smem_limit<typename K::Elem, K::kD>();
  });
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  attention::dispatch(prob, variant_name(), [&](auto kind) {
    using K = decltype(kind);
    launch<typename K::Elem, K::kD>(prob, x, w, y, stream);
  });
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  attention::dispatch(prob, variant_name(), [&](auto kind) {
    constexpr int D = decltype(kind)::kD;
    using Cfg = Fa2Cfg<D>;
    detail.add_str("kernel", "fa2_forward")
        .add_int("head_dim", D)
        .add_int("block_queries", Cfg::kBM)
        .add_int("block_keys", Cfg::kBN)
        .add_int("warps", Cfg::kWarps)
        .add_int("rows_per_warp", Cfg::kWarpRows)
        .add_int("stages", Cfg::kStages)
        .add_bool("q_in_registers", true)
        .add_str("fault", attention::fault_name());
    launch_config = launch_json(grid_of<D>(prob), dim3(Cfg::kThreads), Cfg::kSmemBytes);
  });
}
