// depthwise_stream.cu -- depthwise variant 4: depthwise_async's block, walking down a band of
// output rows with its input rows in a ring in shared memory that cp.async fills ahead of the
// arithmetic.
// opbench: op=depthwise_conv2d dtypes=f32,f16,bf16
//
// Adds over depthwise_async: there a block copies its tile, waits for all of it, computes kRows
// output rows and exits, so its loads and its arithmetic never overlap, and each band of kRows
// output rows reads the R - stride input rows it shares with the next band again (from L2). On an
// H100 its 16-bit rows moved bytes at two thirds of its f32 rate (docs/perf-log.md, step 3): the
// time between a tile's arrival and the block's exit holds no loads. Here a block owns a column
// strip of band_steps * kRows output rows; step s computes kRows rows from the ring while the new
// input rows of steps s + 1 and s + 2 are in flight (kStages), and each input row of the band is
// copied once. The ring holds the rows of kStages steps: kSlots = (kStages - 1) * kAdvance +
// kTileRows rows of the tile's width. Shapes outside the fixed-size paths (depthwise_tile's
// generic path) run depthwise_async's kernel.
#include <algorithm>

#include "depthwise_tile.cuh"

namespace {

using depthwise_tile::kMinBlocksPerSm;
using depthwise_tile::kRows;
using depthwise_tile::kThreads;
using depthwise_tile::Path;

constexpr int kStages = 3;  // steps whose input rows are resident or in flight: 1 computed + 2 ahead
// Shared memory a block's ring may take (opt-in above 48 KB): 3 blocks of 72 KB fit an SM's 228 KB.
constexpr size_t kMaxRingBytes = 72 << 10;
constexpr int kBlocksPerSmWanted = 4;  // bands split until the grid has this many blocks per SM
constexpr int kMinBandSteps = 2;       // but a band keeps at least this many steps

template <int kR, int kStride>
struct Ring {
  static constexpr int kAdvance = kRows * kStride;               // new input rows per step
  static constexpr int kTileRows = (kRows - 1) * kStride + kR;   // input rows one step reads
  static constexpr int kSlots = (kStages - 1) * kAdvance + kTileRows;
};

int ring_slots(Path p) {
  switch (p) {
    case Path::k3x3s1: return Ring<3, 1>::kSlots;
    case Path::k3x3s2: return Ring<3, 2>::kSlots;
    case Path::k5x5s1: return Ring<5, 1>::kSlots;
    case Path::k5x5s2: return Ring<5, 2>::kSlots;
    case Path::generic: break;
  }
  return 0;
}

// The block shape: depthwise_tile's, with the ring in place of the tile, and bands of rows.
struct StreamTile {
  depthwise_tile::Tile tile;  // its grid is replaced by `grid`
  int slots;                  // ring rows
  int col_tiles, band_steps;
  dim3 grid;
};

StreamTile make_stream_tile(const ConvProblem& prob) {
  StreamTile t{};
  t.slots = ring_slots(depthwise_tile::choose_path(prob));
  t.tile = depthwise_tile::make_tile(prob, t.slots, kMaxRingBytes);
  const depthwise_tile::Tile& tile = t.tile;
  t.col_tiles = (prob.q + tile.tq - 1) / tile.tq;
  const int chan_tiles = int(tile.grid.x);
  const int steps = (prob.p + kRows - 1) / kRows;
  const long long blocks = (long long)chan_tiles * t.col_tiles * prob.n;
  const long long wanted = (long long)kBlocksPerSmWanted * sm_count();
  const int most_bands = std::max(1, steps / kMinBandSteps);
  const int bands = int(std::min<long long>(most_bands, std::max(1LL, (wanted + blocks - 1) / blocks)));
  t.band_steps = (steps + bands - 1) / bands;
  const int used_bands = (steps + t.band_steps - 1) / t.band_steps;
  t.grid = dim3(unsigned(chan_tiles), unsigned(t.col_tiles * used_bands), unsigned(prob.n));
  return t;
}

// Block (cv, tq) threads; blockIdx = (channel tile, band * col_tiles + column tile, image). Each
// thread owns kVec channels of one output column, as in depthwise_tile_kernel.
template <class T, int kVec, int kR, int kStride>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
depthwise_stream_kernel(ConvProblem prob, int col_tiles, int band_steps, int tile_iw,
                        const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y) {
  using V = Pack<T, kVec>;
  using G = Ring<kR, kStride>;
  constexpr int kS = kR;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  V* ring = reinterpret_cast<V*>(smem_raw);  // [G::kSlots][tile_iw][blockDim.x]

  const int cvs = blockDim.x, tx = threadIdx.x, ty = threadIdx.y;
  const int n = blockIdx.z;
  const int band = blockIdx.y / col_tiles;
  const int p_band = band * band_steps * kRows;
  const int q0 = (blockIdx.y % col_tiles) * blockDim.y;
  const int c_block = blockIdx.x * cvs * kVec;
  const int ih_band = p_band * kStride - prob.pad_h, iw0 = q0 * kStride - prob.pad_w;
  const int steps = min(band_steps, (prob.p - p_band + kRows - 1) / kRows);
  const int band_rows = (steps - 1) * G::kAdvance + G::kTileRows;  // input rows the band reads

  // Input rows [first, last) of the band (0 = row ih_band) into their slots (row % kSlots), zeros
  // outside the image and past C, as one cp.async group (empty past the band's last row).
  const int c_load = c_block + tx * kVec;
  auto load_rows = [&](int first, int last) {
    for (int i = first; i < last; ++i) {
      const int ih = ih_band + i;
      const bool row_inside = c_load < prob.c && ih >= 0 && ih < prob.h;
      const int row_offset = row_inside ? ((n * prob.h + ih) * prob.w) * prob.c + c_load : 0;
      V* slot = ring + (i % G::kSlots) * tile_iw * cvs + tx;
      for (int col = ty; col < tile_iw; col += blockDim.y) {
        const int iw = iw0 + col;
        const bool inside = row_inside && iw >= 0 && iw < prob.w;
        mma::cp_async_ca<sizeof(V)>(mma::smem_addr(slot + col * cvs),
                                    x + (inside ? row_offset + iw * prob.c : 0), inside);
      }
    }
    mma::cp_async_commit();
  };
  // Rows loaded once step s's group has landed: step 0 brings its kTileRows, each later step its
  // kAdvance new ones.
  auto rows_through = [&](int s) { return min(s * G::kAdvance + G::kTileRows, band_rows); };

  load_rows(0, rows_through(0));
#pragma unroll
  for (int s = 1; s < kStages - 1; ++s) load_rows(rows_through(s - 1), rows_through(s));

  const int c = c_block + tx * kVec;
  const int q = q0 + ty;
  const bool active = c < prob.c && q < prob.q;  // idle threads still copy and wait
  float wt[kR][kS][kVec];
  if (active) {
#pragma unroll
    for (int r = 0; r < kR; ++r)
#pragma unroll
      for (int s = 0; s < kS; ++s) load_channels<T, kVec>(w + (r * kS + s) * prob.c + c, wt[r][s]);
  }

  for (int step = 0; step < steps; ++step) {
    // The rows of step + kStages - 1 go in flight; then every group up to step's has landed.
    load_rows(rows_through(step + kStages - 2), rows_through(step + kStages - 1));
    mma::cp_async_wait<kStages - 1>();
    __syncthreads();
    if (active) {
      float acc[kRows][kVec] = {};
      const int first_row = step * G::kAdvance;
#pragma unroll
      for (int row = 0; row < G::kTileRows; ++row) {
        const V* pixel = ring + (((first_row + row) % G::kSlots) * tile_iw + ty * kStride) * cvs + tx;
        depthwise_tile::add_input_row<kR, kS, kStride>(row, pixel, cvs, wt, acc);
      }
#pragma unroll
      for (int out = 0; out < kRows; ++out) {
        const int p = p_band + step * kRows + out;
        if (p < prob.p)
          store_channels<T, kVec>(y + ((n * prob.p + p) * prob.q + q) * prob.c + c, acc[out]);
      }
    }
    __syncthreads();  // step's oldest rows may be overwritten by the next step's copies
  }
}

template <class T, int kVec, int kR, int kStride>
void launch_kernel(const ConvProblem& prob, const StreamTile& t, const void* x, const void* w,
                   void* y, cudaStream_t stream) {
  const auto kernel = depthwise_stream_kernel<T, kVec, kR, kStride>;
  static bool smem_raised = false;  // once per kernel instance (host state, single-threaded)
  if (!smem_raised) {
    CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(kMaxRingBytes)));
    smem_raised = true;
  }
  kernel<<<t.grid, t.tile.block, t.tile.smem_bytes, stream>>>(
      prob, t.col_tiles, t.band_steps, t.tile.iw, static_cast<const T*>(x), static_cast<const T*>(w),
      static_cast<T*>(y));
}

}  // namespace

const char* variant_name() { return "depthwise_stream"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::depthwise_conv2d, {ElemType::f32, ElemType::f16, ElemType::bf16},
                  variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  const Path path = depthwise_tile::choose_path(prob);
  if (path == Path::generic) {
    depthwise_tile::launch<depthwise_tile::TileLoad::cp_async>(prob, x, w, y, stream,
                                                               "depthwise_stream (generic path)");
    return;
  }
  const StreamTile t = make_stream_tile(prob);
  check_grid(t.grid, "depthwise_stream");
  with_elem_type(prob, [&](auto tag) {
    using T = decltype(tag);
    switch (path) {
      case Path::k3x3s1: return launch_kernel<T, depthwise_tile::kVec3x3, 3, 1>(prob, t, x, w, y, stream);
      case Path::k3x3s2: return launch_kernel<T, depthwise_tile::kVec3x3, 3, 2>(prob, t, x, w, y, stream);
      case Path::k5x5s1: return launch_kernel<T, depthwise_tile::kVec5x5, 5, 1>(prob, t, x, w, y, stream);
      case Path::k5x5s2: return launch_kernel<T, depthwise_tile::kVec5x5, 5, 2>(prob, t, x, w, y, stream);
      case Path::generic: return;
    }
  });
  CHECK_LAUNCH();
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const Path path = depthwise_tile::choose_path(prob);
  if (path == Path::generic) {
    depthwise_tile::describe(prob, detail, launch_config);
    detail.add_str("tile_load", "depthwise_async's kernel: cp.async, the whole tile in flight");
    return;
  }
  const StreamTile t = make_stream_tile(prob);
  detail.add_str("path", depthwise_tile::path_name(path))
      .add_int("rows_per_step", kRows)
      .add_int("band_steps", t.band_steps)
      .add_int("channels_per_thread", t.tile.vec)
      .add_int("tile_columns", t.tile.tq)
      .add_int("tile_channels", t.tile.cv * t.tile.vec)
      .add_int("ring_rows", t.slots)
      .add_int("stages", kStages)
      .add_str("tile_load", "cp.async ring of input rows, 2 steps ahead of the arithmetic");
  launch_config = launch_json(t.grid, t.tile.block, t.tile.smem_bytes);
}
