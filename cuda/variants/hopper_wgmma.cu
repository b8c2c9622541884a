// opbench: dtypes=f16,bf16 archs=sm_90a
// hopper_wgmma.cu -- variant 5: Hopper implicit GEMM on wgmma + TMA, warp-specialised.
//
// Adds over mma.sync kernels (one warp, 16x8x16 per instruction, operands staged through
// registers with ldmatrix, addresses computed by every thread): a warpgroup (128 threads) issues
// wgmma.m64nNk16 reading both operands straight from shared memory (128-byte swizzled, K-major),
// asynchronously, so the tensor cores run while the next tile lands. The tiles are moved by the
// tensor memory accelerator: the filter tile by a 2D tiled TMA load over Wt viewed as
// [K][R*S*C], the activation tile (128 output pixels x 64 channels of one filter tap) by one TMA
// im2col load whose hardware walks the pixels (stride, padding = zero fill, image edges) itself.
// One producer warp (setmaxnreg down to 40) feeds a ring of kStages smem slots guarded by full
// (TMA transaction bytes) and empty (8 consumer-warp arrivals) mbarriers; two consumer
// warpgroups (setmaxnreg up to 232) each own 64 rows of the 128 x BN block tile and keep one
// wgmma group in flight (wait_group 1) before releasing a slot. Epilogue: f32 accumulators
// straight to Y with M/N guards (float2 stores), or atomics into a zeroed Y when split-K.
// Persistent grid (one block per SM walks work units), the ring running on across units.
// Paths (detail "path"):
//   "tma_im2col": C % 64 == 0 and the im2col box fits TMA's limits (every ResNet-50 layer but
//                 the stem): one k-step = one (r, s) tap x 64 channels.
//   "gather":     anything else (C = 3, odd C or K, ...): the same consumers, but the producer is
//                 a whole warpgroup that gathers the 64-wide reduction slice with guarded global
//                 loads (16-byte when C % 8 == 0) into the same swizzled layout, then
//                 fence.proxy.async + mbarrier arrive.
// variant_prepare times block-tile widths BN in {64, 128, 256} and split-K counts (for grids too
// small for the GPU) on the real problem, cross-checks each candidate against the first and
// keeps the fastest; "detail" lists them all.
// Prediction: the big 3x3 layers (C, K >= 128, M large) are tensor-core bound: ~60-75% of the
// ~790 TFLOP/s dense fp16 peak, i.e. at or above cuDNN fp16 (~300-600 TFLOP/s); the 56x56
// C=K=64 layers are bound by writing f32 Y (2x the bytes of cuDNN's fp16 output), so below
// cuDNN there; small 7x7/14x14 layers depend on split-K filling the 132 SMs.
// Measured (H200, one run each, batch 16, vs cuDNN fp16 in the same call; docs/perf-log.md,
// "Tensor cores: hopper_wgmma"): correct on all ResNet-50 layers and edge shapes (f16, bf16), SASS
// has HGMMA and UTMALDG, no spills. Prediction missed: geometric mean 0.68x cuDNN fp16 (0.65x at
// batch 32); 3x3 layers 0.75-0.93x at batch 16 (230-280 TFLOP/s), 0.75-1.05x at batch 32 (up to
// 405); 1x1 layers 0.5-0.8x; stem (gather) 0.46x. The persistent grid (2nd step) gained 12-25% on
// 56x56 layers only; split-K through memset + atomics rarely pays. Next: 2-CTA clusters with TMA
// multicast, stream-K for small grids, a TMA-store epilogue overlapped with the next unit's MMA.
#include "conv2d.cuh"
#include "hopper_ptx.cuh"
#include "hopper_tensormap.cuh"

#include <algorithm>
#include <string>
#include <vector>

namespace {

constexpr int kBlockM = 128;                 // output pixels per block tile
constexpr int kBlockK = 64;                  // reduction elements per k-step (one 128 B row)
constexpr int kWarpgroupThreads = 128;
constexpr int kConsumerWarpgroups = 2;       // each owns kBlockM / 2 = 64 rows (one wgmma M)
constexpr int kThreads = kWarpgroupThreads * (1 + kConsumerWarpgroups);
constexpr int kWgmmaM = 64;
constexpr int kWgmmaK = 16;
constexpr int kSmemLimit = 227 * 1024;       // opt-in dynamic shared memory per block (sm_90)
constexpr int kMaxStages = 8;
// setmaxnreg budgets (per thread). At entry every thread has 168 (65536 / 384, rounded down to
// 8); what the producer gives back the consumers take: 128*(168-P) == 256*(C-168).
constexpr int kEntryRegs = 168;
constexpr int kTmaProducerRegs = 40, kTmaConsumerRegs = 232;
constexpr int kGatherProducerRegs = 120, kGatherConsumerRegs = 192;
static_assert(kWarpgroupThreads * (kEntryRegs - kTmaProducerRegs) ==
              kConsumerWarpgroups * kWarpgroupThreads * (kTmaConsumerRegs - kEntryRegs));
static_assert(kWarpgroupThreads * (kEntryRegs - kGatherProducerRegs) ==
              kConsumerWarpgroups * kWarpgroupThreads * (kGatherConsumerRegs - kEntryRegs));
static_assert(kBlockM == kConsumerWarpgroups * kWgmmaM, "each consumer warpgroup owns one M=64");
static_assert(kBlockK * 2 == hopper::kSwizzleBytes, "a k-step row is one 128-byte swizzle row");

// Split-K candidates and their limits.
constexpr int kSplitCounts[] = {2, 3, 4, 6, 8, 12, 16};
constexpr int kMinStepsPerSplit = 4;   // >= 4 k-steps per slice, else the fill/drain dominates
constexpr int kMaxWavesForSplit = 2;   // split only while blocks * splits <= 2 * SMs

enum class Path { kTmaIm2col, kGather };

const char* path_name(Path p) { return p == Path::kTmaIm2col ? "tma_im2col" : "gather"; }

// Shared-memory layout of one configuration: kStages x (A tile, B tile), then the barriers.
template <int BN>
struct Layout {
  static constexpr int kABytes = kBlockM * hopper::kSwizzleBytes;  // 16 KiB
  static constexpr int kBBytes = BN * hopper::kSwizzleBytes;
  static constexpr int kStageBytes = kABytes + kBBytes;
  static constexpr int kStages =
      std::min(kMaxStages, (kSmemLimit - hopper::kSwizzleAtomBytes - 256) / kStageBytes);
  // + 1024 slack to align the dynamic base to a swizzle atom, + barriers
  static constexpr int kSmemBytes =
      hopper::kSwizzleAtomBytes + kStages * kStageBytes + 2 * kStages * 8;
  static_assert(BN % 64 == 0 && BN <= 256, "wgmma N and the TMA box (<= 256 rows)");
  static_assert(kStages >= 2, "a ring needs two slots");
  static_assert(kSmemBytes <= kSmemLimit);
};

struct Args {
  ConvProblem prob;
  const uint16_t* x;  // gather path: X and Wt as raw 2-byte elements (f16 and bf16 alike)
  const uint16_t* w;
  float* y;
  int k_steps;        // total k-steps: ceil(R*S*C / 64)
  int m_tiles, n_tiles, splits;
};

// ---- gather producer: one 64-wide reduction slice of A and B into swizzled smem ----------------
// Thread t of the producer warpgroup fills 16-byte chunk t % 8 of rows t / 8 + 16 u. kVec: the
// 8 elements of a chunk are 8 consecutive channels of one tap (C % 8 == 0): one 16-byte load.
template <int BN, bool kVec>
__device__ __forceinline__ void gather_stage(const Args& a, int step, int m0, int n0, uint8_t* sa,
                                             uint8_t* sb, int t) {
  const ConvProblem& p = a.prob;
  const int chunk = t % 8;
  const int kg = p.gemm_k();
  const int kk0 = step * kBlockK + chunk * 8;
  // Per-element filter tap (dr, ds) and channel for this thread's 8 reduction indices.
  int dr[8], ds[8], ch[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const int kk = kVec ? kk0 : kk0 + e;
    const int c = kk % p.c, rs = kk / p.c;
    ch[e] = kk < kg ? c + (kVec ? e : 0) : -1;
    dr[e] = (rs / p.s) * p.dil_h;
    ds[e] = (rs % p.s) * p.dil_w;
  }
  const int m_count = p.gemm_m();
#pragma unroll 4  // 4 rows x 8 loads in flight per thread
  for (int row = t / 8; row < kBlockM; row += kWarpgroupThreads / 8) {
    const int m = m0 + row;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (m < m_count) {
      const int q = m % p.q, pq = m / p.q;
      const int ih0 = (pq % p.p) * p.stride_h - p.pad_h, iw0 = q * p.stride_w - p.pad_w;
      const uint16_t* xn = a.x + size_t(pq / p.p) * p.h * p.w * p.c;
      if (kVec) {
        const int ih = ih0 + dr[0], iw = iw0 + ds[0];
        if (ch[0] >= 0 && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w)
          v = __ldg(reinterpret_cast<const uint4*>(xn + (size_t(ih) * p.w + iw) * p.c + ch[0]));
      } else {
        uint16_t e16[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const int ih = ih0 + dr[e], iw = iw0 + ds[e];
          e16[e] = (ch[e] >= 0 && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w)
                       ? __ldg(xn + (size_t(ih) * p.w + iw) * p.c + ch[e])
                       : uint16_t(0);
        }
        v = make_uint4(e16[0] | (uint32_t(e16[1]) << 16), e16[2] | (uint32_t(e16[3]) << 16),
                       e16[4] | (uint32_t(e16[5]) << 16), e16[6] | (uint32_t(e16[7]) << 16));
      }
    }
    *reinterpret_cast<uint4*>(sa + hopper::swizzle128_offset(row, chunk)) = v;
  }
  for (int row = t / 8; row < BN; row += kWarpgroupThreads / 8) {
    const int k = n0 + row;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (k < p.k) {
      const uint16_t* wk = a.w + size_t(k) * kg;
      if (kVec) {  // C % 8 == 0: kg % 8 == 0, so the chunk is all in or all out
        if (kk0 < kg) v = __ldg(reinterpret_cast<const uint4*>(wk + kk0));
      } else {
        uint16_t e16[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) e16[e] = kk0 + e < kg ? __ldg(wk + kk0 + e) : uint16_t(0);
        v = make_uint4(e16[0] | (uint32_t(e16[1]) << 16), e16[2] | (uint32_t(e16[3]) << 16),
                       e16[4] | (uint32_t(e16[5]) << 16), e16[6] | (uint32_t(e16[7]) << 16));
      }
    }
    *reinterpret_cast<uint4*>(sb + hopper::swizzle128_offset(row, chunk)) = v;
  }
}

// ---- the kernel ---------------------------------------------------------------------------------
// One work unit = (M tile, N tile, split-K slice); unit u has m tile u % m_tiles (M fastest, so
// the blocks running at the same time share one filter tile). Persistent: block b takes units
// b, b + gridDim.x, ... The ring's stage/phase run on across units, so the producer loads the
// next unit's tiles while the consumers are still storing the previous one.
struct Unit {
  int m0, n0, step_begin, step_end;
};

__device__ __forceinline__ Unit unit_at(const Args& a, int u, int bn) {
  const int rest = u / a.m_tiles;
  const int split = rest / a.n_tiles;
  // This slice's k-steps [step_begin, step_end): balanced, never empty (splits <= k_steps).
  return Unit{(u % a.m_tiles) * kBlockM, (rest % a.n_tiles) * bn,
              int((long long)a.k_steps * split / a.splits),
              int((long long)a.k_steps * (split + 1) / a.splits)};
}

template <class T, int BN, Path kPath, bool kVec>
__global__ void __launch_bounds__(kThreads, 1)
hopper_conv_kernel(const __grid_constant__ CUtensorMap map_x,
                   const __grid_constant__ CUtensorMap map_w, const Args args) {
  using L = Layout<BN>;
  constexpr bool kTma = kPath == Path::kTmaIm2col;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + hopper::kSwizzleAtomBytes - 1) &
      ~uintptr_t(hopper::kSwizzleAtomBytes - 1));
  uint8_t* smem_a = smem;                                  // [kStages][kABytes]
  uint8_t* smem_b = smem + L::kStages * L::kABytes;        // [kStages][kBBytes]
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + L::kStages * L::kStageBytes);
  uint64_t* empty = full + L::kStages;

  const ConvProblem& p = args.prob;
  const int warpgroup = threadIdx.x / kWarpgroupThreads;
  const int t = threadIdx.x % kWarpgroupThreads;
  const int units = args.m_tiles * args.n_tiles * args.splits;

  if (threadIdx.x == 0) {
    for (int s = 0; s < L::kStages; ++s) {
      hopper::mbar_init(&full[s], kTma ? 1 : kWarpgroupThreads);
      hopper::mbar_init(&empty[s], kConsumerWarpgroups * kWarpgroupThreads / 32);
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
      hopper::setmaxnreg_dec<kTmaProducerRegs>();
      if (t != 0) return;
      const int c_steps = p.c / kBlockK;
      for (int u = blockIdx.x; u < units; u += gridDim.x) {
        const Unit w = unit_at(args, u, BN);
        // Window corner of the tile's first output pixel; TMA walks the next 127 itself.
        const int q0 = w.m0 % p.q, pq0 = w.m0 / p.q;
        const int w0 = q0 * p.stride_w - p.pad_w, h0 = (pq0 % p.p) * p.stride_h - p.pad_h;
        const int img0 = pq0 / p.p;
        for (int step = w.step_begin; step < w.step_end; ++step) {
          hopper::mbar_wait(&empty[stage], phase ^ 1);
          hopper::mbar_arrive_expect_tx(&full[stage], L::kStageBytes);
          const int tap = step / c_steps, c = (step % c_steps) * kBlockK;
          hopper::tma_load_im2col_4d(smem_a + stage * L::kABytes, &map_x, &full[stage], c, w0,
                                     h0, img0, uint16_t((tap % p.s) * p.dil_w),
                                     uint16_t((tap / p.s) * p.dil_h));
          hopper::tma_load_2d(smem_b + stage * L::kBBytes, &map_w, &full[stage],
                              step * kBlockK, w.n0);
          if (++stage == L::kStages) { stage = 0; phase ^= 1; }
        }
      }
    } else {
      hopper::setmaxnreg_dec<kGatherProducerRegs>();
      for (int u = blockIdx.x; u < units; u += gridDim.x) {
        const Unit w = unit_at(args, u, BN);
        for (int step = w.step_begin; step < w.step_end; ++step) {
          hopper::mbar_wait(&empty[stage], phase ^ 1);
          gather_stage<BN, kVec>(args, step, w.m0, w.n0, smem_a + stage * L::kABytes,
                                 smem_b + stage * L::kBBytes, t);
          hopper::fence_proxy_async_smem();
          hopper::mbar_arrive(&full[stage]);
          if (++stage == L::kStages) { stage = 0; phase ^= 1; }
        }
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  if constexpr (kTma) hopper::setmaxnreg_inc<kTmaConsumerRegs>();
  else hopper::setmaxnreg_inc<kGatherConsumerRegs>();
  const int cw = warpgroup - 1;  // rows [64 cw, 64 cw + 64) of the block tile
  const int warp = t / 32, lane = t % 32;
  const bool atomic = args.splits > 1;
  const bool pairs = p.k % 2 == 0;  // float2 at an even column stays inside the row
  const int m_count = p.gemm_m();
  for (int u = blockIdx.x; u < units; u += gridDim.x) {
    const Unit w = unit_at(args, u, BN);
    // No zero fill: the unit's first wgmma runs with scale-d = 0 (a zero fill would be a
    // non-wgmma definition of the accumulators, which makes ptxas serialise the wgmma pipeline).
    float acc[BN / 2];
    int prev_stage = stage;
    for (int step = w.step_begin; step < w.step_end; ++step) {
      hopper::mbar_wait(&full[stage], phase);
      const uint64_t da = hopper::wgmma_desc_sw128(smem_a + stage * L::kABytes +
                                                   cw * kWgmmaM * hopper::kSwizzleBytes);
      const uint64_t db = hopper::wgmma_desc_sw128(smem_b + stage * L::kBBytes);
      hopper::wgmma_fence();
#pragma unroll
      for (int k = 0; k < kBlockK / kWgmmaK; ++k)  // +32 bytes of K = +2 in the descriptor
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

    // ---------------- epilogue: acc -> Y (f32), guarded ----------------
    const int row0 = w.m0 + cw * kWgmmaM + warp * 16 + lane / 4;
    const int col0 = w.n0 + 2 * (lane % 4);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = row0 + 8 * half;
      if (m >= m_count) continue;
      float* yrow = args.y + size_t(m) * p.k;
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int col = col0 + 8 * j;
        const float v0 = acc[4 * j + 2 * half], v1 = acc[4 * j + 2 * half + 1];
        if (col >= p.k) continue;
        if (pairs) {
          if (atomic) atomicAdd(reinterpret_cast<float2*>(yrow + col), make_float2(v0, v1));
          else *reinterpret_cast<float2*>(yrow + col) = make_float2(v0, v1);
        } else {
          if (atomic) atomicAdd(yrow + col, v0);
          else yrow[col] = v0;
          if (col + 1 < p.k) {
            if (atomic) atomicAdd(yrow + col + 1, v1);
            else yrow[col + 1] = v1;
          }
        }
      }
    }
  }
}

// ---- host side ----------------------------------------------------------------------------------
struct Candidate {
  int bn;
  int splits;
  float ms = 0.f;
  double rel_diff = 0.0;  // max |Y - Y_first| / max |Y_first|
  bool valid = true;
};

// Tensor maps of one (X, Wt) buffer pair; the B map's box depends on BN.
struct Maps {
  const void* x;
  const void* w;
  CUtensorMap a;
  CUtensorMap b[3];  // BN = 64, 128, 256
};

constexpr int kBlockNs[] = {64, 128, 256};

int bn_index(int bn) { return bn == 64 ? 0 : bn == 128 ? 1 : 2; }

struct State {
  Path path = Path::kGather;
  Candidate choice{64, 1};
  std::vector<Candidate> timed;
  std::vector<Maps> maps;  // one per buffer set seen in prepare
};
State g;

int k_steps(const ConvProblem& p) { return (p.gemm_k() + kBlockK - 1) / kBlockK; }

int m_tiles(const ConvProblem& p) { return (p.gemm_m() + kBlockM - 1) / kBlockM; }
int n_tiles(const ConvProblem& p, int bn) { return (p.k + bn - 1) / bn; }

// Persistent grid: one block per SM (the ring takes most of the shared memory), or fewer when
// there are fewer work units.
dim3 grid_for(const ConvProblem& p, int bn, int splits) {
  const long long units = (long long)m_tiles(p) * n_tiles(p, bn) * splits;
  return dim3(unsigned(std::min<long long>(units, sm_count())));
}

// TMA im2col needs: C a multiple of the 64-channel k-step (so a k-step is one tap), 16-byte
// strides, window corners in [-128, 127] (rank-4 limit), tap offsets that fit comfortably in
// the 16-bit offset operands, and traversal strides <= 8.
bool tma_shape_ok(const ConvProblem& p) {
  const int upper_w = (p.q - 1) * p.stride_w - p.pad_w - (p.w - 1);
  const int upper_h = (p.p - 1) * p.stride_h - p.pad_h - (p.h - 1);
  auto corner_ok = [](int v) { return v >= -128 && v <= 127; };
  return p.c % kBlockK == 0 && corner_ok(-p.pad_w) && corner_ok(-p.pad_h) && corner_ok(upper_w) &&
         corner_ok(upper_h) && (p.r - 1) * p.dil_h < 128 && (p.s - 1) * p.dil_w < 128 &&
         p.stride_h <= 8 && p.stride_w <= 8;
}

bool encode_maps(const ConvProblem& p, const void* x, const void* w, Maps& m) {
  m.x = x;
  m.w = w;
  if (!hopper::encode_im2col_4d(&m.a, p, x, kBlockM, kBlockK)) return false;
  for (int bn : kBlockNs)
    if (!hopper::encode_tiled_2d(&m.b[bn_index(bn)], p.elem, w, uint64_t(p.k),
                                 uint64_t(p.gemm_k()), uint32_t(bn), kBlockK))
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

template <class T, int BN, Path kPath, bool kVec>
void launch_kernel(const ConvProblem& p, const void* x, const void* w, float* y, int splits,
                   cudaStream_t stream) {
  using L = Layout<BN>;
  auto kernel = hopper_conv_kernel<T, BN, kPath, kVec>;
  static bool configured = false;
  if (!configured) {
    CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    L::kSmemBytes));
    configured = true;
  }
  Args args{p,          static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(w), y,
            k_steps(p), m_tiles(p), n_tiles(p, BN), splits};
  if ((long long)args.m_tiles * args.n_tiles * splits >= (1LL << 31))
    FAIL("too many work units for int32 indexing");
  CUtensorMap a{}, b{};
  if constexpr (kPath == Path::kTmaIm2col) {
    const Maps& m = maps_for(p, x, w);
    a = m.a;
    b = m.b[bn_index(BN)];
  }
  const dim3 grid = grid_for(p, BN, splits);
  check_grid(grid, "hopper_conv_kernel");
  if (splits > 1) CHECK_CUDA(cudaMemsetAsync(y, 0, size_t(p.y_elems()) * sizeof(float), stream));
  kernel<<<grid, kThreads, L::kSmemBytes, stream>>>(a, b, args);
  CHECK_LAUNCH();
}

template <class T, int BN>
void launch_bn(Path path, const ConvProblem& p, const void* x, const void* w, float* y,
               int splits, cudaStream_t stream) {
  if (path == Path::kTmaIm2col) launch_kernel<T, BN, Path::kTmaIm2col, true>(p, x, w, y, splits, stream);
  else if (p.c % 8 == 0) launch_kernel<T, BN, Path::kGather, true>(p, x, w, y, splits, stream);
  else launch_kernel<T, BN, Path::kGather, false>(p, x, w, y, splits, stream);
}

template <class T>
void launch_typed(const Candidate& c, Path path, const ConvProblem& p, const void* x,
                  const void* w, float* y, cudaStream_t stream) {
  switch (c.bn) {
    case 64: launch_bn<T, 64>(path, p, x, w, y, c.splits, stream); return;
    case 128: launch_bn<T, 128>(path, p, x, w, y, c.splits, stream); return;
    case 256:
      // The gather producer's register budget is sized for BN <= 128 (see candidate_list).
      if (path == Path::kTmaIm2col) {
        launch_kernel<T, 256, Path::kTmaIm2col, true>(p, x, w, y, c.splits, stream);
        return;
      }
      break;
  }
  FAIL("no kernel for BN=%d on path %s", c.bn, path_name(path));
}

void launch_candidate(const Candidate& c, const ConvProblem& p, const void* x, const void* w,
                      float* y, cudaStream_t stream) {
  if (p.elem == ElemType::bf16) launch_typed<__nv_bfloat16>(c, g.path, p, x, w, y, stream);
  else launch_typed<__half>(c, g.path, p, x, w, y, stream);
}

// BN no wider than K rounded up to 64 (a wider tile only multiplies zeros); 256 only on the TMA
// path. Split counts only while the unsplit grid leaves SMs idle.
std::vector<Candidate> candidate_list(const ConvProblem& p, Path path) {
  std::vector<Candidate> out;
  const int k_round = (p.k + 63) / 64 * 64;
  for (int bn : kBlockNs) {
    if (bn > std::max(64, k_round) || (bn == 256 && path != Path::kTmaIm2col)) continue;
    out.push_back({bn, 1});
    const long long blocks = (long long)m_tiles(p) * n_tiles(p, bn);
    for (int s : kSplitCounts) {
      if (k_steps(p) / s < kMinStepsPerSplit) break;
      if (blocks * s > (long long)kMaxWavesForSplit * sm_count()) break;
      out.push_back({bn, s});
    }
  }
  return out;
}

}  // namespace

const char* variant_name() { return "hopper_wgmma"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets, void*,
                     cudaStream_t stream) {
  require_elem(prob, {ElemType::f16, ElemType::bf16}, variant_name());
  int dev = 0, major = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  if (major != 9) FAIL("hopper_wgmma needs a compute capability 9.x GPU (sm_90a), found %d.x", major);

  g.path = Path::kGather;
  g.maps.clear();
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

  g.timed = candidate_list(prob, g.path);
  std::vector<float> reference;
  for (size_t i = 0; i < g.timed.size(); ++i) {
    Candidate& c = g.timed[i];
    // Output check first (NaN-poisoned, so an unwritten element is caught), then timing.
    CHECK_CUDA(cudaMemsetAsync(sets[0].y, 0xFF, size_t(prob.y_elems()) * sizeof(float), stream));
    launch_candidate(c, prob, sets[0].x, sets[0].w, sets[0].y, stream);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    std::vector<float> out = copy_output(prob, sets[0].y);
    if (i == 0) reference = std::move(out);
    else c.rel_diff = max_rel_diff(reference, out);
    c.valid = c.rel_diff <= kCandidateTolerance;
    if (!c.valid)
      std::fprintf(stderr, "warning: candidate BN=%d splits=%d disagrees with the first (max rel "
                   "diff %g); rejected\n", c.bn, c.splits, c.rel_diff);
    c.ms = time_launches_ms(
        [&](int j) {
          const DeviceSet& s = sets[j % num_sets];
          launch_candidate(c, prob, s.x, s.w, s.y, stream);
        },
        /*warmup=*/3, /*reps=*/10, stream);
    if (i == 0 || (c.valid && c.ms < g.choice.ms)) g.choice = c;
  }
  CHECK_CUDA(cudaStreamSynchronize(stream));
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, float* y, void*,
                    cudaStream_t stream) {
  launch_candidate(g.choice, prob, x, w, y, stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  std::string cands = "[";
  for (size_t i = 0; i < g.timed.size(); ++i) {
    Json c;
    c.add_int("bn", g.timed[i].bn)
        .add_int("splits", g.timed[i].splits)
        .add_num("ms", g.timed[i].ms)
        .add_num("max_rel_diff_vs_first", g.timed[i].rel_diff)
        .add_bool("valid", g.timed[i].valid);
    cands += (i ? ", " : "") + c.str();
  }
  cands += "]";
  const int bn = g.choice.bn;
  const int stages = bn == 64 ? Layout<64>::kStages : bn == 128 ? Layout<128>::kStages
                                                                : Layout<256>::kStages;
  const int smem = bn == 64 ? Layout<64>::kSmemBytes : bn == 128 ? Layout<128>::kSmemBytes
                                                                 : Layout<256>::kSmemBytes;
  detail.add_str("path", path_name(g.path))
      .add_str("tile", std::to_string(kBlockM) + "x" + std::to_string(bn) + "x" +
                           std::to_string(kBlockK))
      .add_int("stages", stages)
      .add_int("splits", g.choice.splits)
      .add_int("k_steps", k_steps(prob))
      .add_int("consumer_warpgroups", kConsumerWarpgroups)
      .add_raw("candidates", cands);
  launch_config = launch_json(grid_for(prob, bn, g.choice.splits), dim3(kThreads), size_t(smem));
}
