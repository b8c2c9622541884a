// depthwise_direct.cu -- depthwise variant 5: no shared memory; each thread reads its window
// straight from global memory (through L1) in 16-byte vectors.
// opbench: op=depthwise_conv2d dtypes=f32,f16,bf16
//
// Adds over depthwise_stream (and drops): steps 3 and 4 copied a tile into shared memory, waited at
// a barrier and computed from it; on an H200 depthwise_stream moved the same bytes per second as on
// an H100 (dw03 f16: 1397 and 1418 GB/s) while cuDNN's kernel rose to 2217, and that kernel
// (Nsight Compute, conv2d_c1_k1_nhwc_specialized) uses no shared memory at all: 128-thread blocks
// reading their windows through L1 (docs/perf-log.md, step 4 on the H200). Here consecutive threads
// own consecutive (output column, channel vector) pairs of one image's band of kRows output rows,
// so a warp's load of one tap is ~512 contiguous bytes and the taps that neighbouring columns share
// hit L1; no tile, no barrier, no cp.async, nothing between a thread's loads and its arithmetic but
// its own registers. Each vector is 16 bytes: 8 channels in 16 bits (twice steps 3-4's 8-byte
// vectors), 4 in f32. Filter taps and accumulators stay in float32 registers, as before. The 3x3
// layers only (a 5x5 filter of 8 channels is 200 registers); any other shape, or C not a multiple
// of the vector, runs depthwise_async's kernel.
#include "depthwise_tile.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kVecBytes = 16;  // one access per thread and tap
constexpr int kR = 3, kS = 3;

template <class T>
struct Shape {
  static constexpr int kVec = kVecBytes / int(sizeof(T));  // channels per thread
  // Output rows per thread: in 16 bits the 72 filter floats and 2 rows of 8 accumulators stay under
  // the 128 registers of 2 blocks per SM; f32 (36 taps, 4 channels) keeps depthwise_tile's 4 rows
  // at 3 blocks per SM.
  static constexpr int kRows = sizeof(T) == 4 ? 4 : 2;
  static constexpr int kMinBlocksPerSm = sizeof(T) == 4 ? 3 : 2;
};

template <class T>
bool direct_path(const ConvProblem& prob) {
  const depthwise_tile::Path p = depthwise_tile::choose_path(prob);
  return (p == depthwise_tile::Path::k3x3s1 || p == depthwise_tile::Path::k3x3s2) &&
         prob.c % Shape<T>::kVec == 0;
}

// blockIdx = (column-and-channel tile, row band, image); thread i of the grid's x extent owns
// channel vector i % (C / kVec) of output column i / (C / kVec), rows p0 .. p0 + kRows - 1.
template <class T, int kStride>
__global__ void __launch_bounds__(kThreads, Shape<T>::kMinBlocksPerSm)
depthwise_direct_kernel(ConvProblem prob, const T* __restrict__ x, const T* __restrict__ w,
                        T* __restrict__ y) {
  constexpr int kVec = Shape<T>::kVec, kRows = Shape<T>::kRows;
  constexpr int kTileRows = (kRows - 1) * kStride + kR;  // input rows a thread reads
  using V = Pack<T, kVec>;
  const int cvs = prob.c / kVec;
  const int i = blockIdx.x * kThreads + threadIdx.x;
  if (i >= prob.q * cvs) return;
  const int c = (i % cvs) * kVec, q = i / cvs;
  const int n = blockIdx.z, p0 = blockIdx.y * kRows;

  float wt[kR][kS][kVec];
#pragma unroll
  for (int r = 0; r < kR; ++r)
#pragma unroll
    for (int s = 0; s < kS; ++s) load_channels<T, kVec>(w + (r * kS + s) * prob.c + c, wt[r][s]);

  // The sliding window: each input row's taps go into every output row whose window covers it.
  float acc[kRows][kVec] = {};
  const int ih0 = p0 * kStride - prob.pad_h, iw0 = q * kStride - prob.pad_w;
#pragma unroll
  for (int row = 0; row < kTileRows; ++row) {
    const int ih = ih0 + row;
    if (ih < 0 || ih >= prob.h) continue;  // the padding: no contribution
    const T* pixel_row = x + (size_t(n * prob.h + ih) * prob.w) * prob.c + c;
#pragma unroll
    for (int s = 0; s < kS; ++s) {
      const int iw = iw0 + s;
      if (iw < 0 || iw >= prob.w) continue;
      float xs[kVec];
      unpack(reinterpret_cast<const V*>(pixel_row + size_t(iw) * prob.c), xs);
#pragma unroll
      for (int out = 0; out < kRows; ++out) {
        const int r = row - out * kStride;
        if (r < 0 || r >= kR) continue;
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[out][e] = fmaf(xs[e], wt[r][s][e], acc[out][e]);
      }
    }
  }
#pragma unroll
  for (int out = 0; out < kRows; ++out) {
    const int p = p0 + out;
    if (p < prob.p)
      store_channels<T, kVec>(y + (size_t(n * prob.p + p) * prob.q + q) * prob.c + c, acc[out]);
  }
}

template <class T>
dim3 grid_of(const ConvProblem& prob) {
  const int threads = prob.q * (prob.c / Shape<T>::kVec);
  return dim3(unsigned((threads + kThreads - 1) / kThreads),
              unsigned((prob.p + Shape<T>::kRows - 1) / Shape<T>::kRows), unsigned(prob.n));
}

}  // namespace

const char* variant_name() { return "depthwise_direct"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::depthwise_conv2d, {ElemType::f32, ElemType::f16, ElemType::bf16},
                  variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  with_elem_type(prob, [&](auto tag) {
    using T = decltype(tag);
    if (!direct_path<T>(prob)) {
      depthwise_tile::launch<depthwise_tile::TileLoad::cp_async>(prob, x, w, y, stream,
                                                                 "depthwise_direct (other shapes)");
      return;
    }
    const dim3 grid = grid_of<T>(prob);
    check_grid(grid, "depthwise_direct");
    const auto kernel = prob.stride_h == 1 ? depthwise_direct_kernel<T, 1> : depthwise_direct_kernel<T, 2>;
    kernel<<<grid, kThreads, 0, stream>>>(prob, static_cast<const T*>(x), static_cast<const T*>(w),
                                          static_cast<T*>(y));
    CHECK_LAUNCH();
  });
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  with_elem_type(prob, [&](auto tag) {
    using T = decltype(tag);
    if (!direct_path<T>(prob)) {
      depthwise_tile::describe(prob, detail, launch_config);
      detail.add_str("tile_load", "depthwise_async's kernel: cp.async, the whole tile in flight");
      return;
    }
    detail.add_str("path", depthwise_tile::path_name(depthwise_tile::choose_path(prob)))
        .add_int("rows_per_thread", Shape<T>::kRows)
        .add_int("channels_per_thread", Shape<T>::kVec)
        .add_str("tile_load", "none: each thread's window from global memory through L1, 16-byte loads");
    launch_config = launch_json(grid_of<T>(prob), dim3(kThreads), 0);
  });
}
