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
//   * variant_prepare times the three tile shapes on the real problem (outside timing) through
//     tune_candidates() (cuda/common/conv2d.cuh: each must reproduce the first one's output
//     within candidate_tolerance(), else it is rejected and reported) and keeps the fastest:
//     128x128 has the best FFMA:load ratio, 128x64 avoids wasting half the tile when K = 64,
//     and both 128x64 and 64x128 double the number of blocks when the 128x128 grid would not
//     fill the GPU (small spatial sizes).
// Prediction and measured outcome: docs/perf-log.md, section 3.
//
// Registers: __launch_bounds__(threads, 512/threads) caps at 128 registers per thread (2
// blocks of 256 threads per SM); ptxas -v must report 0 spill bytes (checked by the tests).
#include "conv2d.cuh"
#include "register_tile.cuh"

#include <string>
#include <vector>

namespace {

const std::vector<rt::TileCfg> kCandidates = {rt::TileCfg::k128x128, rt::TileCfg::k128x64,
                                              rt::TileCfg::k64x128};
Tuning<rt::TileCfg> g_tuning;  // filled in variant_prepare; g_tuning.choice() runs
bool g_vec_loads = false;      // recorded for "detail"

}  // namespace

const char* variant_name() { return "register_tiled"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets, void*,
                     cudaStream_t stream) {
  require_problem(prob, OpKind::conv2d, {ElemType::f32}, variant_name());
  g_vec_loads = rt::vector_loads_ok(prob, as_f32(sets[0].x), as_f32(sets[0].w));
  g_tuning = tune_candidates(
      prob, sets, num_sets, kCandidates,
      [&](rt::TileCfg cfg, const DeviceSet& s) {
        rt::launch_register_tile(cfg, prob, as_f32(s.x), as_f32(s.w), as_f32(s.y), 1, false, 0,
                                 stream);
      },
      [](rt::TileCfg cfg) { return "tile " + rt::tile_info(cfg).name; }, /*warmup=*/2,
      /*reps=*/8, stream);
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  rt::launch_register_tile(g_tuning.choice(), prob, as_f32(x), as_f32(w), as_f32(y), 1, false, 0,
                           stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const rt::TileCfg cfg = g_tuning.choice();
  const rt::TileInfo t = rt::tile_info(cfg);
  detail.add_str("tile", t.name)
      .add_int("block_m", t.bm)
      .add_int("block_n", t.bn)
      .add_int("block_k", t.bk)
      .add_str("micro_tile", "8x8")
      .add_bool("vector_loads", g_vec_loads)
      .add_bool("vector_stores", prob.k % 4 == 0)
      .add_raw("candidates", g_tuning.candidates_json([](Json& c, rt::TileCfg cfg) {
        c.add_str("tile", rt::tile_info(cfg).name);
      }));
  launch_config = launch_json(rt::tile_grid(prob, cfg, 1), dim3(t.threads), t.smem_bytes);
}
