// opbench: dtypes=f16,bf16,f32 f32_math=tf32 archs=sm_90a
// hopper_wgmma.cu -- variant 5: Hopper implicit GEMM on wgmma + TMA, warp-specialised.
//
// Adds over mma.sync kernels: a warpgroup issues wgmma.m64nNk16 (f16, bf16) or m64nNk8 tf32 (f32
// inputs) on operands read straight from 128B-swizzled shared memory, and the tensor memory
// accelerator fills them: X by one TMA im2col load per filter tap, Wt by 2D TMA loads, into a
// ring of shared-memory slots on mbarriers, fed by one producer warp for two consumer
// warpgroups; persistent grid, data-parallel or stream-K schedule, a TMA-store or direct epilogue.
// The device code and its design notes (tile constants, ring, epilogues, schedules, the gather
// producer, the stream-K fixup) are in cuda/common/hopper_wgmma_kernels.cuh; this file is the
// host side: the candidates, their tensor maps, workspace and launches, and the variant interface.
// Paths (detail "path"):
//   "tma_im2col": C a multiple of the 128-byte k-step and the im2col box within TMA's limits
//                 (every ResNet-50 layer but the stem): one k-step = one (r, s) tap.
//   "gather":     anything else (C = 3, odd C or K, ...): a producer warpgroup gathers the
//                 reduction slice (cp.async per 16-byte chunk when C is a multiple of 16 bytes,
//                 else guarded element-wise loads).
//   "gather_padded_c": C not a multiple of 16 bytes (the C = 3 stem): X and Wt copied into the
//                 workspace with C padded to the next 16 bytes (zeros), then the cp.async gather.
//                 The padding pass runs on every launch and is part of the timed work.
//   "tma_row_windows": S x C values of a filter row fit in half a k-step or less (the stem:
//                 7 x 3 of 64): a pass copies, per output pixel, the input windows of Q filter
//                 rows side by side into one 128-byte row of the workspace (the filter likewise),
//                 and the convolution runs on the TMA path as a ceil(R / Q)-tap, S = 1 problem
//                 (the stem: 4 k-steps instead of 7 padded ones, TMA instead of a gather
//                 producer). The pass runs on every launch and is part of the timed work.
// variant_prepare times block-tile widths BN in {64, 128, 256}, both schedules, both blocks (128-
// and 64-row tiles, the latter with one or two blocks per SM), both epilogues on the gather path
// and the padded and row-window candidates on the real problem through tune_candidates()
// (cuda/common/conv2d.cuh: each candidate cross-checked against the first) and keeps the fastest;
// "detail" lists them all.
// Prediction, measured outcome of each step and what is next: docs/perf-log.md, "Tensor cores:
// hopper_wgmma".
#include "conv2d.cuh"
#include "hopper_ptx.cuh"
#include "hopper_tensormap.cuh"
#include "hopper_wgmma_kernels.cuh"

#include <algorithm>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

// ---- host side ----------------------------------------------------------------------------------
const char* path_name(Path p) { return p == Path::kTmaIm2col ? "tma_im2col" : "gather"; }

struct Candidate {
  int bn;
  bool stream_k = false;  // the stream-K schedule (else data-parallel)
  bool staged = false;    // the TMA-store epilogue (16-bit Y, K % 8 == 0)
  bool pad_c = false;     // gather path on X and Wt padded to whole 16-byte channel chunks
  bool windows = false;   // TMA path on the row windows of X and Wt (tma_row_windows)
  int wg = kConsumerWarpgroups;  // consumer warpgroups: the tile has 64 * wg rows
  int occ = 1;            // blocks per SM (the persistent grid is occ blocks per SM)
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
// Stream-K: >= 4 k-steps per block, else the ring's fill/drain and the fixup dominate.
constexpr int kMinStepsPerBlock = 4;
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
  Tuning<Candidate> tuning;  // filled in variant_prepare; tuning.choice() runs
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
  require_problem(prob, OpKind::conv2d, {ElemType::f16, ElemType::bf16, ElemType::f32},
                  variant_name());
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

  g.tuning = tune_candidates(
      prob, sets, num_sets, all_candidates(prob, g.path),
      [&](const Candidate& c, const DeviceSet& s) {
        launch_candidate(c, prob, s.x, s.w, s.y, workspace, stream);
      },
      [](const Candidate& c) {
        return "BN=" + std::to_string(c.bn) + " stream_k=" + std::to_string(int(c.stream_k)) +
               " staged=" + std::to_string(int(c.staged)) + " pad_c=" +
               std::to_string(int(c.pad_c)) + " windows=" + std::to_string(int(c.windows)) +
               " bm=" + std::to_string(kWgmmaM * c.wg) + " blocks_per_sm=" + std::to_string(c.occ);
      },
      /*warmup=*/3, /*reps=*/10, stream);
  CHECK_CUDA(cudaStreamSynchronize(stream));
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y,
                    void* workspace, cudaStream_t stream) {
  launch_candidate(g.tuning.choice(), prob, x, w, y, workspace, stream);
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
  const std::string cands = g.tuning.candidates_json([](Json& j, const Candidate& c) {
    j.add_int("bn", c.bn)
        .add_bool("stream_k", c.stream_k)
        .add_bool("staged", c.staged)
        .add_bool("pad_c", c.pad_c)
        .add_bool("windows", c.windows)
        .add_int("bm", kWgmmaM * c.wg)
        .add_int("blocks_per_sm", c.occ);
  });
  const Candidate& c = g.tuning.choice();
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
