// split_reduction.cu -- variant 4: split-K (the C*R*S reduction split across blocks).
//
// Adds over register_tiled: for layers whose output is small (7x7 or 14x14 spatial, batch 1)
// the 128x128 grid has far fewer blocks than the GPU has SMs while each block walks a long
// reduction (KG = 9*512 = 4608), so most of the GPU idles. Here blockIdx.z takes one slice of
// the k-tiles of the same register-tiled tile loop (cuda/common/register_tile.cuh) and the
// slices are combined by one of two strategies:
//   (a) "atomic":    zero Y (cudaMemsetAsync inside every launch), every slice atomicAdds its
//                    8x8 micro-tiles into Y (RED.E.ADD.F32). Cheap, not bitwise reproducible.
//   (b) "workspace": slice z stores its partial tile to workspace[z][M][K]; a second kernel
//                    sums the slices in a fixed order (deterministic) with float4 loads.
// variant_prepare times, on the real problem and outside the timed region, split = 1 (no
// split) and both strategies for split counts 2..16 (for each tile shape; counts that would
// leave < 4 k-tiles per slice, give > 8 blocks per SM, or need > 1 GiB of workspace are
// skipped: kMinTilesPerSplit, kMaxBlocksPerSm, kMaxWorkspaceBytes) through tune_candidates()
// (cuda/common/conv2d.cuh: each candidate's output is checked against the unsplit one's, else
// rejected and reported) and keeps the fastest. "detail" lists every candidate.
// Prediction and measured outcome: docs/perf-log.md, section 4.
#include "conv2d.cuh"
#include "register_tile.cuh"

#include <algorithm>
#include <string>
#include <vector>

namespace {

enum class Strategy { kNone, kAtomic, kWorkspace };

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kNone: return "none";
    case Strategy::kAtomic: return "atomic";
    case Strategy::kWorkspace: return "workspace";
  }
  return "?";
}

struct Candidate {
  rt::TileCfg cfg;
  Strategy strategy;
  int splits;  // effective: every slice has >= 1 k-tile
};

constexpr int kMinTilesPerSplit = 4;                     // >= 4*BK = 32 kk per slice
constexpr int kMaxBlocksPerSm = 8;                       // beyond that a split cannot help
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;  // 1 GiB
const rt::TileCfg kTileCfgs[] = {rt::TileCfg::k128x128, rt::TileCfg::k128x64,
                                 rt::TileCfg::k64x128};

constexpr int kReduceThreads = 256;

// y[i] = sum_z ws[z*stride + i] for i < count, slices summed in order z = 0, 1, ...
template <bool VEC>
__global__ void __launch_bounds__(kReduceThreads)
reduce_splits_kernel(const float* __restrict__ ws, float* __restrict__ y, int count, int splits,
                     long long stride) {
  // count = N*P*Q*K < 2^31; slice offsets z*stride may not be, so they advance a pointer.
  const int step = gridDim.x * kReduceThreads;
  if constexpr (VEC) {  // count % 4 == 0, stride % 4 == 0, 16-byte aligned pointers
    const int count4 = count / 4;
    for (int i = blockIdx.x * kReduceThreads + threadIdx.x; i < count4; i += step) {
      const float4* src = reinterpret_cast<const float4*>(ws) + i;
      float4 acc = __ldg(src);
      for (int z = 1; z < splits; ++z) {
        src += stride / 4;
        const float4 v = __ldg(src);
        acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
      }
      reinterpret_cast<float4*>(y)[i] = acc;
    }
  } else {
    for (int i = blockIdx.x * kReduceThreads + threadIdx.x; i < count; i += step) {
      const float* src = ws + i;
      float acc = __ldg(src);
      for (int z = 1; z < splits; ++z) {
        src += stride;
        acc += __ldg(src);
      }
      y[i] = acc;
    }
  }
}

bool reduce_vec_ok(const ConvProblem& prob, const float* ws, const float* y) {
  return prob.y_elems() % 4 == 0 && (reinterpret_cast<uintptr_t>(ws) & 15) == 0 &&
         (reinterpret_cast<uintptr_t>(y) & 15) == 0;
}

dim3 reduce_grid(const ConvProblem& prob) {
  const long long work = (prob.y_elems() + 3) / 4;  // float4 groups (scalar path: 4x the loop)
  return dim3(unsigned(std::max<long long>(1, std::min<long long>((work + kReduceThreads - 1) /
                                                                       kReduceThreads, 65535))));
}

size_t workspace_need(const ConvProblem& prob, int splits) {
  return size_t(splits) * size_t(prob.y_elems()) * sizeof(float);
}

// Deterministic candidate list for a problem (the same in workspace_bytes and prepare).
std::vector<Candidate> candidate_list(const ConvProblem& prob) {
  std::vector<Candidate> out;
  for (rt::TileCfg cfg : kTileCfgs) {
    out.push_back({cfg, Strategy::kNone, 1});
    const dim3 g = rt::tile_grid(prob, cfg, 1);
    for (int splits : balanced_split_counts(rt::k_tiles(prob, cfg), (long long)g.x * g.y,
                                            kMinTilesPerSplit,
                                            (long long)kMaxBlocksPerSm * sm_count())) {
      out.push_back({cfg, Strategy::kAtomic, splits});
      if (workspace_need(prob, splits) <= kMaxWorkspaceBytes)
        out.push_back({cfg, Strategy::kWorkspace, splits});
    }
  }
  return out;
}

void launch_candidate(const Candidate& cand, const ConvProblem& prob, const float* x,
                      const float* w, float* y, void* workspace, cudaStream_t stream) {
  switch (cand.strategy) {
    case Strategy::kNone:
      rt::launch_register_tile(cand.cfg, prob, x, w, y, 1, false, 0, stream);
      return;
    case Strategy::kAtomic:
      CHECK_CUDA(cudaMemsetAsync(y, 0, size_t(prob.y_elems()) * sizeof(float), stream));
      rt::launch_register_tile(cand.cfg, prob, x, w, y, cand.splits, true, 0, stream);
      return;
    case Strategy::kWorkspace: {
      if (workspace == nullptr) FAIL("workspace strategy chosen without a workspace");
      float* ws = static_cast<float*>(workspace);
      rt::launch_register_tile(cand.cfg, prob, x, w, ws, cand.splits, false, prob.y_elems(),
                               stream);
      const dim3 grid = reduce_grid(prob);
      check_grid(grid, "reduce_splits_kernel");
      if (reduce_vec_ok(prob, ws, y))
        reduce_splits_kernel<true><<<grid, kReduceThreads, 0, stream>>>(
            ws, y, int(prob.y_elems()), cand.splits, prob.y_elems());
      else
        reduce_splits_kernel<false><<<grid, kReduceThreads, 0, stream>>>(
            ws, y, int(prob.y_elems()), cand.splits, prob.y_elems());
      CHECK_LAUNCH();
      return;
    }
  }
  FAIL("unknown strategy");
}

Tuning<Candidate> g_tuning;  // filled in variant_prepare; g_tuning.choice() runs

}  // namespace

const char* variant_name() { return "split_reduction"; }

size_t variant_workspace_bytes(const ConvProblem& prob) {
  size_t bytes = 0;
  for (const Candidate& c : candidate_list(prob))
    if (c.strategy == Strategy::kWorkspace) bytes = std::max(bytes, workspace_need(prob, c.splits));
  return bytes;
}

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets,
                     void* workspace, cudaStream_t stream) {
  require_problem(prob, OpKind::conv2d, {ElemType::f32}, variant_name());
  // candidate_list()[0] is (128x128, none, 1): every candidate is checked against the unsplit
  // result.
  g_tuning = tune_candidates(
      prob, sets, num_sets, candidate_list(prob),
      [&](const Candidate& c, const DeviceSet& s) {
        launch_candidate(c, prob, as_f32(s.x), as_f32(s.w), as_f32(s.y), workspace, stream);
      },
      [](const Candidate& c) {
        return rt::tile_info(c.cfg).name + "/" + strategy_name(c.strategy) + "/" +
               std::to_string(c.splits);
      },
      /*warmup=*/2, /*reps=*/6, stream);
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y,
                    void* workspace, cudaStream_t stream) {
  launch_candidate(g_tuning.choice(), prob, as_f32(x), as_f32(w), as_f32(y), workspace, stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const Candidate& choice = g_tuning.choice();
  const rt::TileInfo t = rt::tile_info(choice.cfg);
  const std::string cands = g_tuning.candidates_json(
      [](Json& c, const Candidate& cand) {
        c.add_str("tile", rt::tile_info(cand.cfg).name)
            .add_str("strategy", strategy_name(cand.strategy))
            .add_int("splits", cand.splits);
      },
      "max_rel_diff_vs_unsplit");
  detail.add_str("strategy", strategy_name(choice.strategy))
      .add_int("splits", choice.splits)
      .add_str("tile", t.name)
      .add_int("k_tiles", rt::k_tiles(prob, choice.cfg))
      .add_bool("vector_loads", prob.c % 4 == 0)
      .add_raw("candidates", cands);
  launch_config = launch_json(rt::tile_grid(prob, choice.cfg, choice.splits),
                              dim3(t.threads), t.smem_bytes);
  if (choice.strategy == Strategy::kAtomic)
    launch_config.add_int("memset_bytes", (long long)(prob.y_elems() * sizeof(float)));
  if (choice.strategy == Strategy::kWorkspace)
    launch_config.add_dim3("reduce_grid", reduce_grid(prob))
        .add_dim3("reduce_block", dim3(kReduceThreads))
        .add_int("workspace_bytes", (long long)workspace_need(prob, choice.splits));
}
