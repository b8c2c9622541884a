// opbench: op=attention dtypes=f16,bf16 archs=sm_90a
// attention_wgmma.cu -- Hopper attention forward (issue #19, the step after attention_fa2):
// O = softmax(Q·Kᵀ/√D)·V with TMA loads, wgmma and warp specialisation.
//
// Q, K, V, O are [B,H,S,D] (bhsd) in f16 or bf16; scores and softmax in float32, P rounded to the
// element type for P·V (as attention_fa2 and FlashAttention do), O accumulated in float32.
//
// What it adds over attention_fa2 (mma.sync, every warp loading and computing):
//   * Warp specialisation: a block is a producer warpgroup and two consumer warpgroups of 64
//     query rows each (128 queries a block). One producer thread issues every load with TMA
//     (cp.async.bulk.tensor, 3D maps [B*H][S][D], boxes of 64 columns = one 128-byte swizzled
//     row): Q once, then K and V tiles of 128 keys into a ring of 3 slots, each on its own
//     mbarrier (K's and V's: a consumer starts Q·Kᵀ while V is still landing); rows past S are
//     out of the map's bounds and arrive as zeros. setmaxnreg moves registers from the producer
//     (24) to the consumers (240).
//   * wgmma instead of mma.sync: S = Q·Kᵀ is m64n128k16 with both operands read by the tensor
//     cores from shared memory (Q and K K-major, in the layout TMA wrote); O += P·V is m64nDk16
//     with P from registers (the S accumulators rounded to 16 bits ARE wgmma's A fragments: same
//     row/column ownership) and V read N-major (transpose-b), so V is never transposed by hand.
//   * No ldmatrix, no shared-memory fragments in registers: the operands' shared-memory reads are
//     the tensor cores' own, a 64-row warpgroup reading each K/V tile once per 64 rows.
// Online softmax as attention_fa2's (row max and sum per thread's two rows, quad shuffles, exp2
// with log2(e)/√D folded into one FMA, O rescaled when the max grows, divided by the sum once).
// Masks: keys >= S get -inf (the last partial key tile), causal blocks stop at their last query's
// tile and mask the tiles that cross the diagonal; rows >= S are computed on zeros and not stored.
// Grid: one block per (batch*head, 128-query tile), head-major; causal heads start with their
// longest tile. One block per SM (shared memory: 225 KiB at D = 128, 113 KiB at D = 64).
//
// Four schedules of the consumers, timed per problem in variant_prepare (tune_candidates; the
// row's detail lists them all), the same arithmetic in the same order, so the same bits:
//   * "lockstep": tile by tile, Q·Kᵀ, wait, softmax, P·V, wait. The two warpgroups tend to run
//     in step (both wait on the same K tile), both in the softmax while the tensor cores idle.
//   * "pingpong" (FlashAttention-3's inter-warpgroup overlap): a turn passed between the two
//     warpgroups through two named barriers lets one issue a product group only after the other
//     has issued its previous one, so their groups alternate on the tensor cores and one's
//     softmax runs while the other's product does.
//   * "overlap" (FlashAttention-3's intra-warpgroup overlap): tile t's Q·Kᵀ and tile t-1's P·V
//     issued together, tile t's softmax written to run while that P·V does (ptxas lets only the
//     row maxima: docs/perf-log.md); O rescaled between the two issues.
//   * "overlap_pingpong": both.
// K/V ring of 3 slots (the overlap schedules hold tile t's K and tile t-1's V while t+1 loads).
//
// Not yet (the next steps, each measured): a persistent grid, O stored through shared memory
// with TMA.
//
// Test-only faults (tests/test_gpu_attention_cuda.py builds them): -DOPBENCH_FAULT_DROP_CAUSAL
// drops the causal mask, -DOPBENCH_FAULT_DROP_TAIL drops the last partial key tile.
//
// Prediction and measured outcome: docs/perf-log.md, "Attention: attention_wgmma (issue #19)".
#include "attention.cuh"
#include "conv2d.cuh"
#include "hopper_ptx.cuh"
#include "hopper_tensormap.cuh"

#include <cmath>
#include <type_traits>
#include <vector>

namespace {

constexpr int kWarpgroupThreads = 128;
constexpr int kConsumerWarpgroups = 2;
constexpr int kThreads = (1 + kConsumerWarpgroups) * kWarpgroupThreads;
constexpr int kWgmmaM = 64;                             // query rows of one consumer warpgroup
constexpr int kBM = kConsumerWarpgroups * kWgmmaM;      // queries per block
constexpr int kBN = 128;                                // keys per K/V tile (S's wgmma N)
constexpr int kBoxCols = hopper::kSwizzleBytes / 2;     // 16-bit columns per TMA box: 64
constexpr int kWgmmaK = 16;                             // k of one 16-bit wgmma
constexpr int kStepsPerBox = kBoxCols / kWgmmaK;        // wgmmas per 128-byte row: 4
// setmaxnreg budgets (per thread). At entry each of the 384 threads has 168 (65536 / 384,
// rounded down to 8); what the producer gives back the consumers take.
constexpr int kEntryRegs = 168, kProducerRegs = 24, kConsumerRegs = 240;
static_assert(kWarpgroupThreads * (kEntryRegs - kProducerRegs) ==
              kConsumerWarpgroups * kWarpgroupThreads * (kConsumerRegs - kEntryRegs));
static_assert(kBM % kBN == 0 || kBN % kBM == 0, "causal tiles line up with query tiles");
// Named barriers of the pingpong schedule (0 is __syncthreads): consumer warpgroup c waits at
// kTurnBarrier + c for its turn, which the other warpgroup passes by arriving there.
constexpr int kTurnBarrier = 1;
constexpr int kTurnThreads = 2 * kWarpgroupThreads;

enum class Schedule { kLockstep, kPingPong, kOverlap, kOverlapPingPong };
constexpr Schedule kSchedules[] = {Schedule::kLockstep, Schedule::kPingPong, Schedule::kOverlap,
                                   Schedule::kOverlapPingPong};
const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kLockstep: return "lockstep";
    case Schedule::kPingPong: return "pingpong";
    case Schedule::kOverlap: return "overlap";
    case Schedule::kOverlapPingPong: return "overlap_pingpong";
  }
  return "?";
}

template <int D>
struct WgmmaAttnCfg {
  static_assert(D == 64 || D == 128, "compiled head dims: 64 and 128");
  static constexpr int kBoxes = D / kBoxCols;                   // 64-column blocks of a row
  static constexpr int kDSteps = D / kWgmmaK;                   // wgmmas over D (Q·Kᵀ)
  static constexpr int kKeySteps = kBN / kWgmmaK;               // wgmmas over a tile's keys (P·V)
  static constexpr int kQBoxBytes = kBM * hopper::kSwizzleBytes;   // one 64-column block of Q
  static constexpr int kKVBoxBytes = kBN * hopper::kSwizzleBytes;  // one of a K or V tile
  static constexpr int kQBytes = kBoxes * kQBoxBytes;
  static constexpr int kKVBytes = kBoxes * kKVBoxBytes;         // one K (or V) tile
  // K/V ring slots: 3, so that under the overlap schedules tile t+1 loads while tile t's K and
  // tile t-1's V are in use (225 KiB at D = 128, within a block's 227).
  static constexpr int kStages = 3;
  static constexpr int kBarriers = 1 + 3 * kStages;             // Q; K full, V full, empty a slot
  // Dynamic shared memory: 1 KiB of slack to align the tiles to the swizzle atom, Q, the ring,
  // the barriers.
  static constexpr int kSmemBytes =
      hopper::kSwizzleAtomBytes + kQBytes + kStages * 2 * kKVBytes + 8 * kBarriers;
  static_assert(kSmemBytes <= 227 * 1024, "one block's shared memory on sm_90");
};

// ---------------------------------------------------------------------------------------------
// A consumer warpgroup's steps. Accumulators (wgmma layout): element i of a thread is row
// 8 * ((i >> 1) & 1) of its two, column 8 * (i >> 2) + 2 * t4 + (i & 1) (t4 = lane % 4).
// ---------------------------------------------------------------------------------------------
// S = Q·Kᵀ (unscaled, float32) of one K tile, both operands from shared memory, as one commit
// group. desc_q: this warpgroup's Q rows; +2 in a descriptor is +32 bytes = one k16.
template <class T, int D>
__device__ __forceinline__ void issue_qk(float (&s_acc)[kBN / 2], uint64_t desc_q,
                                         const uint8_t* k_tile) {
  using Cfg = WgmmaAttnCfg<D>;
  constexpr uint64_t kQBoxDesc = Cfg::kQBoxBytes >> 4, kKVBoxDesc = Cfg::kKVBoxBytes >> 4;
  const uint64_t desc_k = hopper::wgmma_desc_sw128(k_tile);
  hopper::fence_operands(s_acc);
  hopper::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < Cfg::kDSteps; ++ks) {
    const uint64_t box = ks / kStepsPerBox, step = 2 * (ks % kStepsPerBox);
    hopper::Wgmma<T, kBN>::mma(s_acc, desc_q + box * kQBoxDesc + step,
                               desc_k + box * kKVBoxDesc + step, ks > 0);
  }
  hopper::wgmma_commit();
}

// O += P·V of one V tile (O = P·V where !accumulate), P from registers, V N-major from shared
// memory, as one commit group.
template <class T, int D>
__device__ __forceinline__ void issue_pv(float (&o_acc)[D / 2],
                                         uint32_t (&p_frag)[WgmmaAttnCfg<D>::kKeySteps][4],
                                         const uint8_t* v_tile, bool accumulate) {
  using Cfg = WgmmaAttnCfg<D>;
  constexpr uint64_t kVStepDesc = (kWgmmaK * hopper::kSwizzleBytes) >> 4;  // 16 rows of V
  const uint64_t desc_v = hopper::wgmma_desc_sw128_mn(v_tile, Cfg::kKVBoxBytes);
#pragma unroll
  for (int kk = 0; kk < Cfg::kKeySteps; ++kk) hopper::fence_operands(p_frag[kk]);
  hopper::fence_operands(o_acc);  // the rescale and P's packing, before the wgmma fence
  hopper::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < Cfg::kKeySteps; ++kk)
    hopper::WgmmaRegA<T, D>::mma(o_acc, p_frag[kk], desc_v + kk * kVStepDesc, accumulate || kk > 0);
  hopper::wgmma_commit();
}

// The rows a consumer thread owns and the problem's masks, for softmax_tile.
struct RowInfo {
  int row0;      // this thread's first row (the second is row0 + 8)
  int t4;        // lane % 4: its column pair
  int first_row; // the warpgroup's first row
  int S;
  int causal;
  float scale_log2;  // log2(e) / √D
};

// Whether the tile of keys from n0 needs masks: keys >= S (the last partial tile), or keys after
// a query of this warpgroup (causal). With kBM == kBN, only a block's last tile can.
__device__ __forceinline__ bool needs_mask(int n0, const RowInfo& r) {
  return n0 + kBN > r.S || (r.causal && n0 + kBN - 1 > r.first_row);
}
static_assert(kBM == kBN, "the overlap schedules mask only a block's last key tile");

// kMask: masks one tile of scores starting at key n0 (keys >= S; keys after the query where
// causal), without branches. Then the online softmax: the new row max, alpha = the factor on O
// and the sum, s_acc turned into P = exp2((s - max)·log2(e)/√D) in place, the row sums updated.
template <bool kMask>
__device__ __forceinline__ void softmax_tile(float (&s_acc)[kBN / 2], float (&row_max)[2],
                                             float (&row_sum)[2], float (&alpha)[2], int n0,
                                             const RowInfo& r) {
  if constexpr (kMask) {
#pragma unroll
    for (int i = 0; i < kBN / 2; ++i) {
      const int j = n0 + 8 * (i >> 2) + 2 * r.t4 + (i & 1);
#ifdef OPBENCH_FAULT_DROP_CAUSAL
      const bool masked = j >= r.S;  // test-only fault: no causal mask
#else
      const int row = r.row0 + 8 * ((i >> 1) & 1);
      const bool masked = j >= r.S || (r.causal && j > row);
#endif
      if (masked) s_acc[i] = -INFINITY;
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = row_max[h];
#pragma unroll
    for (int c = 0; c < kBN / 8; ++c)
      mx = fmaxf(mx, fmaxf(s_acc[4 * c + 2 * h], s_acc[4 * c + 2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // A row with every key so far masked keeps max -inf: subtract 0 then (its P are all 0).
    const float m_scaled = mx == -INFINITY ? 0.f : mx * r.scale_log2;
    alpha[h] = attention::fast_exp2(row_max[h] * r.scale_log2 - m_scaled);  // 0 the first time
    row_max[h] = mx;
    float sum = 0.f;
#pragma unroll
    for (int c = 0; c < kBN / 8; ++c)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& s_ij = s_acc[4 * c + 2 * h + e];
        s_ij = attention::fast_exp2(fmaf(s_ij, r.scale_log2, -m_scaled));
        sum += s_ij;
      }
    row_sum[h] = row_sum[h] * alpha[h] + sum;
  }
}

// softmax_tile with the masks where the tile needs them (a branch: for code with no product in
// flight; ptxas waits for all wgmma groups where the two paths join).
__device__ __forceinline__ void softmax_any(float (&s_acc)[kBN / 2], float (&row_max)[2],
                                            float (&row_sum)[2], float (&alpha)[2], int n0,
                                            const RowInfo& r) {
  if (needs_mask(n0, r)) softmax_tile<true>(s_acc, row_max, row_sum, alpha, n0, r);
  else softmax_tile<false>(s_acc, row_max, row_sum, alpha, n0, r);
}

// P as P·V's A fragments: keys 16kk..16kk+15 are accumulator elements 8kk..8kk+7, pairs
// (row g, cols 2t), (row g+8, cols 2t), (row g, cols 2t+8), (row g+8, cols 2t+8).
template <class T, int kKeySteps>
__device__ __forceinline__ void pack_p(uint32_t (&p_frag)[kKeySteps][4],
                                       const float (&s_acc)[kBN / 2]) {
#pragma unroll
  for (int kk = 0; kk < kKeySteps; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r)
      p_frag[kk][r] = pack_pair<T>(s_acc[8 * kk + 2 * r], s_acc[8 * kk + 2 * r + 1]);
}

template <int kN>
__device__ __forceinline__ void rescale(float (&o_acc)[kN], const float (&alpha)[2]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) o_acc[i] *= alpha[(i >> 1) & 1];
}

template <class T, int D, Schedule kSchedule>
__global__ void __launch_bounds__(kThreads, 1)
    attention_wgmma_kernel(const __grid_constant__ CUtensorMap map_q,
                           const __grid_constant__ CUtensorMap map_kv, T* __restrict__ o, int S,
                           int heads_total, int n_qtiles, int causal, float scale_log2) {
  using Cfg = WgmmaAttnCfg<D>;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + hopper::kSwizzleAtomBytes - 1) &
      ~uintptr_t(hopper::kSwizzleAtomBytes - 1));
  uint8_t* smem_q = smem;                           // [box][kBM rows][128 B]
  uint8_t* smem_kv = smem + Cfg::kQBytes;           // [stage][K, V][box][kBN rows][128 B]
  uint64_t* q_full = reinterpret_cast<uint64_t*>(smem_kv + Cfg::kStages * 2 * Cfg::kKVBytes);
  uint64_t* k_full = q_full + 1;
  uint64_t* v_full = k_full + Cfg::kStages;
  uint64_t* empty = v_full + Cfg::kStages;

  const int bh = blockIdx.x / n_qtiles;
  const int qt_in_head = blockIdx.x - bh * n_qtiles;
  const int qt = causal ? n_qtiles - 1 - qt_in_head : qt_in_head;  // causal: longest tiles first
  const int q0 = qt * kBM;
  // Key tiles this block visits: all of them, or (causal) up to the one holding its last query.
  const int key_end = causal ? min(q0 + kBM, S) : S;
#ifdef OPBENCH_FAULT_DROP_TAIL
  const int n_ktiles = key_end / kBN;  // test-only fault: the last partial key tile is dropped
#else
  const int n_ktiles = (key_end + kBN - 1) / kBN;
#endif

  if (threadIdx.x == 0) {
    hopper::mbar_init(q_full, 1);
    for (int s = 0; s < Cfg::kStages; ++s) {
      hopper::mbar_init(&k_full[s], 1);
      hopper::mbar_init(&v_full[s], 1);
      hopper::mbar_init(&empty[s], kConsumerWarpgroups * kWarpgroupThreads / 32);  // a warp each
    }
    hopper::fence_mbar_init();
    hopper::prefetch_tensormap(&map_q);
    hopper::prefetch_tensormap(&map_kv);
  }
  __syncthreads();

  const int warpgroup = threadIdx.x / kWarpgroupThreads;
  const int t = threadIdx.x % kWarpgroupThreads;
  if (warpgroup == 0) {
    // ---------------- producer: one thread issues every TMA load ----------------
    hopper::setmaxnreg_dec<kProducerRegs>();
    if (t != 0) return;
    hopper::mbar_arrive_expect_tx(q_full, Cfg::kQBytes);
    for (int box = 0; box < Cfg::kBoxes; ++box)
      hopper::tma_load_3d(smem_q + box * Cfg::kQBoxBytes, &map_q, q_full, box * kBoxCols, q0, bh);
    int stage = 0;
    uint32_t phase = 0;
    for (int kt = 0; kt < n_ktiles; ++kt) {
      hopper::mbar_wait(&empty[stage], phase ^ 1);  // a fresh slot passes at once
      uint8_t* sk = smem_kv + stage * 2 * Cfg::kKVBytes;
      uint8_t* sv = sk + Cfg::kKVBytes;
      hopper::mbar_arrive_expect_tx(&k_full[stage], Cfg::kKVBytes);
      for (int box = 0; box < Cfg::kBoxes; ++box)
        hopper::tma_load_3d(sk + box * Cfg::kKVBoxBytes, &map_kv, &k_full[stage], box * kBoxCols,
                            kt * kBN, bh);
      hopper::mbar_arrive_expect_tx(&v_full[stage], Cfg::kKVBytes);
      for (int box = 0; box < Cfg::kBoxes; ++box)  // V's planes follow K's in the same map
        hopper::tma_load_3d(sv + box * Cfg::kKVBoxBytes, &map_kv, &v_full[stage], box * kBoxCols,
                            kt * kBN, heads_total + bh);
      if (++stage == Cfg::kStages) { stage = 0; phase ^= 1; }
    }
    return;
  }

  // ---------------- consumers: 64 query rows each ----------------
  hopper::setmaxnreg_inc<kConsumerRegs>();
  const int cw = warpgroup - 1;
  const int warp = t / 32, lane = t % 32;
  const int g = lane >> 2, t4 = lane & 3;  // accumulator row group and column pair
  const int row0 = q0 + cw * kWgmmaM + warp * 16 + g;  // this thread's rows: row0 and row0 + 8

  // No zero fill of the accumulators: each product's first wgmma has scale-d = 0.
  float s_acc[kBN / 2];
  float o_acc[D / 2];
  uint32_t p_frag[Cfg::kKeySteps][4];
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};  // this thread's columns only; the quad's are added at the end
  float alpha[2];
  const RowInfo rows{row0, t4, q0 + cw * kWgmmaM, S, causal, scale_log2};

  // pingpong: before issuing product groups a warpgroup takes its turn; once they are issued it
  // passes the turn to the other (both warpgroups issue at the same points, so the turns stay
  // paired; warpgroup 1's last pass would have no taker and is skipped). Warpgroup 0 starts.
  constexpr bool kPingPong =
      kSchedule == Schedule::kPingPong || kSchedule == Schedule::kOverlapPingPong;
  constexpr bool kOverlap =
      kSchedule == Schedule::kOverlap || kSchedule == Schedule::kOverlapPingPong;
  const auto take_turn = [&] {
    if constexpr (kPingPong) hopper::named_barrier_sync(kTurnBarrier + cw, kTurnThreads);
  };
  const auto pass_turn = [&](bool last) {
    if constexpr (kPingPong)
      if (!(last && cw == 1)) hopper::named_barrier_arrive(kTurnBarrier + (cw ^ 1), kTurnThreads);
  };
  if (kPingPong && cw == 1 && n_ktiles > 0) hopper::named_barrier_arrive(kTurnBarrier, kTurnThreads);

  hopper::mbar_wait(q_full, 0);
  const uint64_t desc_q = hopper::wgmma_desc_sw128(smem_q + cw * kWgmmaM * hopper::kSwizzleBytes);
  const auto k_tile = [&](int st) { return smem_kv + st * 2 * Cfg::kKVBytes; };
  const auto v_tile = [&](int st) { return smem_kv + st * 2 * Cfg::kKVBytes + Cfg::kKVBytes; };
  const auto release = [&](int st) {  // this warp is done with the slot
    if (lane == 0) hopper::mbar_arrive(&empty[st]);
  };
  int stage = 0;
  uint32_t phase = 0;
  // Tile kt's scores on their own (no product in flight): Q·Kᵀ, its wait, the softmax, P packed.
  const auto score_tile = [&](int kt) {
    hopper::mbar_wait(&k_full[stage], phase);
    take_turn();
    issue_qk<T, D>(s_acc, desc_q, k_tile(stage));
    pass_turn(false);
    hopper::wgmma_wait<0>();
    hopper::fence_operands(s_acc);
    softmax_any(s_acc, row_max, row_sum, alpha, kt * kBN, rows);
    pack_p<T>(p_frag, s_acc);
  };

  if constexpr (!kOverlap) {
    // Tile by tile: Q·Kᵀ, wait, softmax, P·V, wait.
    for (int kt = 0; kt < n_ktiles; ++kt) {
      score_tile(kt);
      if (kt > 0) rescale(o_acc, alpha);
      hopper::mbar_wait(&v_full[stage], phase);
      take_turn();
      issue_pv<T, D>(o_acc, p_frag, v_tile(stage), kt > 0);
      pass_turn(kt == n_ktiles - 1);
      hopper::wgmma_wait<0>();
      hopper::fence_operands(o_acc);
      release(stage);
      if (++stage == Cfg::kStages) { stage = 0; phase ^= 1; }
    }
  } else if (n_ktiles > 0) {
    // Intra-warpgroup overlap (FlashAttention-3's order): tile t's Q·Kᵀ and tile t-1's P·V are
    // issued together, then the softmax of tile t, then the wait for that P·V. O is rescaled by
    // tile t-1's alpha between the two issues (tile t-2's P·V has landed by then), so only P's
    // packing and the slot's release follow the wait in the source. (ptxas places the wait
    // early, after the row maxima, before the exp2s, to overwrite P's registers sooner; a second
    // P buffer that would spare it does not fit 240 registers at D = 128: docs/perf-log.md.)
    score_tile(0);
    int prev = stage;
    uint32_t prev_phase = phase;
    if (++stage == Cfg::kStages) { stage = 0; phase ^= 1; }
    // One step: tile kt's Q·Kᵀ with tile kt-1's P·V. Between the two waits no branch (ptxas
    // waits for both groups where paths join): the masked step, a block's last, is a copy of
    // its own.
    const auto step = [&](int kt, auto masked) {
      hopper::mbar_wait(&k_full[stage], phase);
      take_turn();
      issue_qk<T, D>(s_acc, desc_q, k_tile(stage));
      if (kt > 1) rescale(o_acc, alpha);  // by tile kt-1's alpha; at kt = 1, P·V starts O
      hopper::mbar_wait(&v_full[prev], prev_phase);
      issue_pv<T, D>(o_acc, p_frag, v_tile(prev), kt > 1);
      pass_turn(false);
      hopper::wgmma_wait<1>();  // Q·Kᵀ (the older group) has landed; P·V may still run
      hopper::fence_operands(s_acc);
      softmax_tile<decltype(masked)::value>(s_acc, row_max, row_sum, alpha, kt * kBN, rows);
      hopper::fence_operands(s_acc);  // the softmax before the wait (the compiler may sink it)
      hopper::wgmma_wait<0>();
      hopper::fence_operands(o_acc);
      release(prev);
      pack_p<T>(p_frag, s_acc);
      prev = stage;
      prev_phase = phase;
      if (++stage == Cfg::kStages) { stage = 0; phase ^= 1; }
    };
    for (int kt = 1; kt < n_ktiles - 1; ++kt) step(kt, std::false_type{});
    if (n_ktiles > 1) {
      step(n_ktiles - 1, std::true_type{});
      rescale(o_acc, alpha);
    }
    hopper::mbar_wait(&v_full[prev], prev_phase);
    take_turn();
    issue_pv<T, D>(o_acc, p_frag, v_tile(prev), n_ktiles > 1);
    pass_turn(true);
    hopper::wgmma_wait<0>();
    hopper::fence_operands(o_acc);
    release(prev);
  }

  // ---- O / row sum, rounded once, rows < S stored (4 bytes = 2 columns per store) ----
  T* oh = o + size_t(bh) * S * D;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float l = row_sum[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = 1.f / l;
    const int row = row0 + 8 * h;
    if (row < S) {
      T* dst = oh + size_t(row) * D + 2 * t4;
#pragma unroll
      for (int c = 0; c < D / 8; ++c)
        *reinterpret_cast<uint32_t*>(dst + 8 * c) =
            pack_pair<T>(o_acc[4 * c + 2 * h] * inv, o_acc[4 * c + 2 * h + 1] * inv);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------
// The tensor maps of one buffer set: Q as [B*H][S][D], K and V (the harness's Wt: K, then V right
// after it) as one [2*B*H][S][D] map, V's planes after K's.
struct Maps {
  const void* q = nullptr;
  const void* kv = nullptr;
  CUtensorMap map_q{}, map_kv{};
};
std::vector<Maps> g_maps;

Maps encode_maps(const ConvProblem& prob, const void* q, const void* kv) {
  const AttentionSizes& a = prob.attn;
  const uint64_t planes = uint64_t(a.b) * a.heads;
  Maps m;
  m.q = q;
  m.kv = kv;
  if (!hopper::encode_tiled_3d(&m.map_q, prob.elem, q, planes, a.s, a.d, kBM, kBoxCols) ||
      !hopper::encode_tiled_3d(&m.map_kv, prob.elem, kv, 2 * planes, a.s, a.d, kBN, kBoxCols))
    FAIL("attention_wgmma: TMA tensor-map encoding refused for [B*H=%llu][S=%d][D=%d]",
         (unsigned long long)planes, a.s, a.d);
  return m;
}

const Maps& maps_for(const ConvProblem& prob, const void* q, const void* kv) {
  for (const Maps& m : g_maps)
    if (m.q == q && m.kv == kv) return m;
  g_maps.push_back(encode_maps(prob, q, kv));
  return g_maps.back();
}

dim3 grid_of(const ConvProblem& prob) {
  const AttentionSizes& a = prob.attn;
  const int64_t n_qtiles = (a.s + kBM - 1) / kBM;
  return dim3(unsigned(int64_t(a.b) * a.heads * n_qtiles));  // <= B*H*S < 2^31
}

template <class T, int D, Schedule kSchedule>
void launch_kernel(const ConvProblem& prob, const void* x, const void* w, void* y,
                   cudaStream_t stream) {
  const auto kernel = attention_wgmma_kernel<T, D, kSchedule>;
  static bool configured = false;
  if (!configured) {
    CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    WgmmaAttnCfg<D>::kSmemBytes));
    configured = true;
  }
  const AttentionSizes& a = prob.attn;
  const dim3 grid = grid_of(prob);
  check_grid(grid, "attention_wgmma_kernel");
  const Maps& m = maps_for(prob, x, w);
  const int n_qtiles = (a.s + kBM - 1) / kBM;
  const float scale_log2 = float(1.4426950408889634 / std::sqrt(double(D)));  // log2(e) / √D
  kernel<<<grid, kThreads, WgmmaAttnCfg<D>::kSmemBytes, stream>>>(
      m.map_q, m.map_kv, static_cast<T*>(y), a.s, a.b * a.heads, n_qtiles, a.causal, scale_log2);
  CHECK_LAUNCH();
}

void launch(Schedule schedule, const ConvProblem& prob, const void* x, const void* w, void* y,
            cudaStream_t stream) {
  attention::dispatch(prob, variant_name(), [&](auto kind) {
    using K = decltype(kind);
    using E = typename K::Elem;
    switch (schedule) {
      case Schedule::kLockstep:
        return launch_kernel<E, K::kD, Schedule::kLockstep>(prob, x, w, y, stream);
      case Schedule::kPingPong:
        return launch_kernel<E, K::kD, Schedule::kPingPong>(prob, x, w, y, stream);
      case Schedule::kOverlap:
        return launch_kernel<E, K::kD, Schedule::kOverlap>(prob, x, w, y, stream);
      case Schedule::kOverlapPingPong:
        return launch_kernel<E, K::kD, Schedule::kOverlapPingPong>(prob, x, w, y, stream);
    }
  });
}

Tuning<Schedule> g_tuning;  // filled in variant_prepare; g_tuning.choice() runs

}  // namespace

const char* variant_name() { return "attention_wgmma"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets, void*,
                     cudaStream_t stream) {
  require_problem(prob, OpKind::attention, {ElemType::f16, ElemType::bf16}, variant_name());
  // An uncompiled head dim fails here, naming the variant, before the device is asked anything.
  attention::dispatch(prob, variant_name(), [](auto) {});
  int dev = 0, major = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  if (major != 9)
    FAIL("attention_wgmma needs a compute capability 9.x GPU (sm_90a), found %d.x", major);
  g_maps.clear();
  for (int i = 0; i < num_sets; ++i) g_maps.push_back(encode_maps(prob, sets[i].x, sets[i].w));
  g_tuning = tune_candidates(
      prob, sets, num_sets, std::vector<Schedule>(std::begin(kSchedules), std::end(kSchedules)),
      [&](Schedule schedule, const DeviceSet& set) {
        launch(schedule, prob, set.x, set.w, set.y, stream);
      },
      [](Schedule schedule) { return std::string(schedule_name(schedule)); },
      /*warmup=*/3, /*reps=*/10, stream);
  CHECK_CUDA(cudaStreamSynchronize(stream));
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  launch(g_tuning.choice(), prob, x, w, y, stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  attention::dispatch(prob, variant_name(), [&](auto kind) {
    constexpr int D = decltype(kind)::kD;
    using Cfg = WgmmaAttnCfg<D>;
    detail.add_str("kernel", "attention_wgmma_kernel")
        .add_int("head_dim", D)
        .add_int("block_queries", kBM)
        .add_int("block_keys", kBN)
        .add_int("consumer_warpgroups", kConsumerWarpgroups)
        .add_int("rows_per_warpgroup", kWgmmaM)
        .add_int("stages", Cfg::kStages)
        .add_str("loads", "tma")
        .add_str("p_operand", "registers")
        .add_str("schedule", schedule_name(g_tuning.choice()))
        .add_raw("candidates", g_tuning.candidates_json([](Json& j, Schedule schedule) {
          j.add_str("schedule", schedule_name(schedule));
        }))
        .add_str("fault", attention::fault_name());
    launch_config = launch_json(grid_of(prob), dim3(kThreads), Cfg::kSmemBytes);
  });
}
