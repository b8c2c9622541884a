// register_tiled.cu -- variant 3: register micro-tiles, 128-bit loads, double-buffered smem.
//
// Adds over smem_tiled (the kernel itself is in cuda/common/register_tile.cuh, shared with
// split_reduction.cu; its header comment explains the layout in detail):
//   * each thread computes an 8x8 micro-tile from registers (64 FFMA per 4 LDS.128 instead of
//     1 FFMA per 2 LDS.32), block tiles of 128x128 / 128x64 / 64x128 with BK = 8;
//   * both smem tiles stored transposed (kk-major) and padded: conflict-free LDS.128 reads;
//   * 128-bit global loads of X and Wt when C % 4 == 0 (scalar fallback otherwise), float4
//     stores of Y when K % 4 == 0; per-row (n, p, q) decode once per kernel, incremental
//     (r, s, c) cursor instead of divisions in the loop;
//   * register-staged double buffering: the next tile's global loads overlap the FFMAs.
//   * variant_prepare times the three tile shapes on the real problem (outside timing), checks
//     that each reproduces the first one's output (max rel diff <= 1e-5, else rejected and
//     reported) and keeps the fastest: 128x128 has the best FFMA:load ratio, 128x64 avoids wasting half the
//     tile when K = 64, and both 128x64 and 64x128 double the number of blocks when the
//     128x128 grid would not fill the GPU (small spatial sizes).
// Prediction: the inner loop is ~94% FFMA issue slots; like siboehm's SGEMM kernels 9-10 it
// should reach ~60-75% of the FP32 FFMA peak on large layers, i.e. ~30-45 TFLOP/s on an
// H100/H200 for ResNet-50 layers at batch 16 (about cuDNN fp32 without TF32). It stays poor
// when M*K is small (e.g. 7x7 layers at batch 1: few blocks, long reductions) -> variant 4.
// Measured (H200, one run, ResNet-50 layers at batch 16): 21-34 TFLOP/s on layers that fill
// the GPU (56x56 and conv1), at or above cuDNN fp32 (20-30 there) but under the 30-45
// predicted; 7-14 TFLOP/s on 14x14 / 7x7 layers (too few blocks), as expected.
//
// Registers: __launch_bounds__(threads, 512/threads) caps at 128 registers per thread (2
// blocks of 256 threads per SM); ptxas -v must report 0 spill bytes (checked by the tests).
#include "conv2d.cuh"
#include "register_tile.cuh"

#include <string>
#include <vector>

namespace {

const rt::TileCfg kCandidates[] = {rt::TileCfg::k128x128, rt::TileCfg::k128x64,
                                   rt::TileCfg::k64x128};
struct Timed {
  rt::TileCfg cfg;
  float ms;
  double rel_diff;  // max |Y - Y_first| / max |Y_first| against the first candidate
  bool valid;
};
rt::TileCfg g_cfg = rt::TileCfg::k128x128;  // chosen in variant_prepare
bool g_vec_loads = false;                    // recorded for "detail"
std::vector<Timed> g_timed;

}  // namespace

const char* variant_name() { return "register_tiled"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets, void*,
                     cudaStream_t stream) {
  require_elem(prob, {ElemType::f32}, variant_name());
  g_vec_loads = rt::vector_loads_ok(prob, as_f32(sets[0].x), as_f32(sets[0].w));
  CandidateCheck check;
  size_t best = 0;  // index into g_timed; [0] is the reference and always valid
  g_timed.clear();
  for (rt::TileCfg cfg : kCandidates) {
    auto launch = [&](const DeviceSet& s) {
      rt::launch_register_tile(cfg, prob, as_f32(s.x), as_f32(s.w), as_f32(s.y), 1, false, 0,
                               stream);
    };
    // Every candidate must reproduce the first one's output.
    const CandidateCheck::Measured m =
        check.measure(prob, sets, num_sets, launch, /*warmup=*/2, /*reps=*/8, stream);
    Timed t{cfg, m.ms, m.rel_diff, m.valid};
    if (!t.valid)
      std::fprintf(stderr, "warning: tile %s disagrees with tile %s (max rel diff %g); rejected\n",
                   rt::tile_info(cfg).name.c_str(), rt::tile_info(kCandidates[0]).name.c_str(), t.rel_diff);
    g_timed.push_back(t);
    if (t.valid && t.ms < g_timed[best].ms) best = g_timed.size() - 1;
  }
  g_cfg = g_timed[best].cfg;
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  rt::launch_register_tile(g_cfg, prob, as_f32(x), as_f32(w), as_f32(y), 1, false, 0, stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const rt::TileInfo t = rt::tile_info(g_cfg);
  std::string cands = "[";
  for (size_t i = 0; i < g_timed.size(); ++i) {
    Json c;
    c.add_str("tile", rt::tile_info(g_timed[i].cfg).name)
        .add_num("ms", g_timed[i].ms)
        .add_num("max_rel_diff_vs_first", g_timed[i].rel_diff)
        .add_bool("valid", g_timed[i].valid);
    cands += (i ? ", " : "") + c.str();
  }
  cands += "]";
  detail.add_str("tile", t.name)
      .add_int("block_m", t.bm)
      .add_int("block_n", t.bn)
      .add_int("block_k", t.bk)
      .add_str("micro_tile", "8x8")
      .add_bool("vector_loads", g_vec_loads)
      .add_bool("vector_stores", prob.k % 4 == 0)
      .add_raw("candidates", cands);
  launch_config = launch_json(rt::tile_grid(prob, g_cfg, 1), dim3(t.threads), t.smem_bytes);
}
