// depthwise_tile.cuh: the tiled depthwise_conv2d kernel that depthwise_smem.cu and
// depthwise_async.cu share; they differ only in how a block copies its input tile into shared
// memory (TileLoad). A block computes kRows output rows x tile.tq output columns x tile.cv * V
// channels of one image: it copies the input pixels those outputs read (the tile plus its halo,
// zeros where the window hangs over the padding) into shared memory, V adjacent channels per
// access, so each input element of the tile comes from DRAM or L2 once, not R*S times; only the
// halo rows and columns shared with the neighbouring blocks are read twice (from L2). Each thread
// then owns V channels of one output column: its filter taps sit in registers, and it walks the
// tile's rows once, adding each row's S pixels into every output row whose window covers it (the
// sliding window), so it reads (kRows-1)*stride + R rows instead of kRows*R. The common shapes
// (3x3 and 5x5, stride 1 or 2, no dilation, C a multiple of V) are compiled with the filter size
// and stride as constants; any other shape runs the same tiling with runtime sizes, one channel
// per thread.
#pragma once

#include <string>

#include "depthwise.cuh"
#include "mma_ptx.cuh"  // cp.async

namespace depthwise_tile {

// How a block's threads copy the input tile into shared memory.
enum class TileLoad {
  registers,  // load a vector into registers, store it to shared memory: one load in flight
  cp_async,   // cp.async (zero fill for the padding): every vector of the tile in flight at once
};


constexpr int kRows = 4;             // output rows per thread (and per block)
constexpr int kThreads = 256;        // most threads per block
// Blocks per SM the register budget is sized for: 65536 / (3 * 256) = 85 registers a thread, enough
// for a 3x3 tile's 36 filter and 16 accumulator floats without spills (ptxas otherwise aims at 64).
constexpr int kMinBlocksPerSm = 3;
constexpr int kMaxChanVecs = 32;     // most channel vectors per block (blockDim.x)
constexpr size_t kMaxSmem = 48 << 10;  // shared memory per block, without the opt-in

// Channels per thread: 4 for 3x3 (its 36 filter floats stay in registers), 2 for 5x5 (50).
constexpr int kVec3x3 = 4;
constexpr int kVec5x5 = 2;

// What variant_launch runs for a problem: a fixed-size kernel or the runtime-size one.
enum class Path { k3x3s1, k3x3s2, k5x5s1, k5x5s2, generic };

inline const char* path_name(Path p) {
  switch (p) {
    case Path::k3x3s1: return "3x3 stride 1";
    case Path::k3x3s2: return "3x3 stride 2";
    case Path::k5x5s1: return "5x5 stride 1";
    case Path::k5x5s2: return "5x5 stride 2";
    case Path::generic: return "runtime sizes, 1 channel per thread";
  }
  return "?";
}

inline int path_vec(Path p) {
  return p == Path::k3x3s1 || p == Path::k3x3s2 ? kVec3x3
         : p == Path::generic                  ? 1
                                               : kVec5x5;
}

inline Path choose_path(const ConvProblem& prob) {
  const bool square = prob.r == prob.s && prob.stride_h == prob.stride_w;
  const bool plain = square && prob.dil_h == 1 && prob.dil_w == 1 && prob.stride_h <= 2;
  if (plain && prob.r == 3 && prob.c % kVec3x3 == 0)
    return prob.stride_h == 1 ? Path::k3x3s1 : Path::k3x3s2;
  if (plain && prob.r == 5 && prob.c % kVec5x5 == 0)
    return prob.stride_h == 1 ? Path::k5x5s1 : Path::k5x5s2;
  return Path::generic;
}

// The block shape of a problem.
struct Tile {
  Path path;
  int vec;     // channels per thread and per access
  int cv;      // channel vectors per block (blockDim.x)
  int tq;      // output columns per block (blockDim.y)
  int ih, iw;  // rows and columns of the input tile, halo included
  size_t smem_bytes;
  dim3 grid, block;
};

inline int next_pow2(int v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

// `smem_rows`: the input rows (of the tile's width) a block keeps in shared memory, 0 for the tile's
// own ih; `max_smem`: the bytes they may take. The column tile halves until they fit.
inline Tile make_tile(const ConvProblem& prob, int smem_rows = 0, size_t max_smem = kMaxSmem) {
  Tile t{};
  t.path = choose_path(prob);
  t.vec = path_vec(t.path);
  const int chan_vecs = prob.c / t.vec;  // C % vec == 0 by choose_path
  t.cv = std::min(chan_vecs, kMaxChanVecs);
  t.tq = std::min(std::max(1, kThreads / t.cv), next_pow2(prob.q));
  t.ih = (kRows - 1) * prob.stride_h + (prob.r - 1) * prob.dil_h + 1;
  const int rows = smem_rows > 0 ? smem_rows : t.ih;
  auto size = [&]() {
    t.iw = (t.tq - 1) * prob.stride_w + (prob.s - 1) * prob.dil_w + 1;
    t.smem_bytes = size_t(rows) * t.iw * t.cv * t.vec * elem_bytes(prob.elem);
  };
  size();
  while (t.smem_bytes > max_smem && t.tq > 1) {
    t.tq /= 2;
    size();
  }
  if (t.smem_bytes > max_smem)
    FAIL("depthwise tile: %d input rows of one output column (%d pixels wide) need %zu bytes of "
         "shared memory, more than %zu", rows, t.iw, t.smem_bytes, max_smem);
  const int col_tiles = (prob.q + t.tq - 1) / t.tq;
  const int row_tiles = (prob.p + kRows - 1) / kRows;
  t.block = dim3(unsigned(t.cv), unsigned(t.tq));
  t.grid = dim3(unsigned((chan_vecs + t.cv - 1) / t.cv), unsigned(col_tiles * row_tiles),
                unsigned(prob.n));
  return t;
}

// The sliding window's step for input row `row` of a tile (a constant once the caller's loop over
// the tile's rows is unrolled): its S pixels (`pixel`, the first tap's, then cvs vectors apart)
// into every one of the kRows output rows whose window covers it.
template <int kR, int kS, int kStride, class V, int kVec>
__device__ __forceinline__ void add_input_row(int row, const V* pixel, int cvs,
                                              const float (&wt)[kR][kS][kVec],
                                              float (&acc)[kRows][kVec]) {
  float xs[kS][kVec];
#pragma unroll
  for (int s = 0; s < kS; ++s) unpack(pixel + s * cvs, xs[s]);
#pragma unroll
  for (int out = 0; out < kRows; ++out) {
    const int r = row - out * kStride;
    if (r < 0 || r >= kR) continue;
#pragma unroll
    for (int s = 0; s < kS; ++s)
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[out][e] = fmaf(xs[s][e], wt[r][s][e], acc[out][e]);
  }
}

// kR, kS, kStride: the filter size and stride as constants (0: the problem's, at run time, with
// its dilation; then kVec is 1). Block (cv, tq) threads; blockIdx = (channel tile, row tile *
// column tiles + column tile, image). kLoad: how the input tile gets into shared memory (a vector
// of 2 bytes, the 16-bit runtime-size path, is too small for cp.async and goes through registers).
template <TileLoad kLoad, class T, int kVec, int kR, int kS, int kStride>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
depthwise_tile_kernel(ConvProblem prob, int col_tiles, int tile_ih, int tile_iw,
                      const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y) {
  using V = Pack<T, kVec>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  V* tile = reinterpret_cast<V*>(smem_raw);  // [tile_ih][tile_iw][blockDim.x]

  constexpr bool kFixed = kR > 0;
  const int R = kFixed ? kR : prob.r, S = kFixed ? kS : prob.s;
  const int stride_h = kFixed ? kStride : prob.stride_h;
  const int stride_w = kFixed ? kStride : prob.stride_w;
  const int dil_h = kFixed ? 1 : prob.dil_h, dil_w = kFixed ? 1 : prob.dil_w;

  const int cvs = blockDim.x, tx = threadIdx.x, ty = threadIdx.y;  // channel vector, output column
  const int n = blockIdx.z;
  const int p0 = (blockIdx.y / col_tiles) * kRows;
  const int q0 = (blockIdx.y % col_tiles) * blockDim.y;
  const int c_block = blockIdx.x * cvs * kVec;
  const int ih0 = p0 * stride_h - prob.pad_h, iw0 = q0 * stride_w - prob.pad_w;

  // 1. The input tile: pixel (ih0 + row, iw0 + col), channels c_block + cv * kVec + [0, kVec);
  //    zeros outside the image (the padding) and past C. Thread (cv, ty) loads channel vector cv of
  //    columns ty, ty + blockDim.y, ... of every row: no division in the loop.
  const int c_load = c_block + tx * kVec;
  constexpr bool kAsync = kLoad == TileLoad::cp_async && sizeof(V) >= 4;
  for (int row = 0; row < tile_ih; ++row) {
    const int ih = ih0 + row;
    const bool row_inside = ih >= 0 && ih < prob.h && c_load < prob.c;
    const int row_offset = row_inside ? ((n * prob.h + ih) * prob.w) * prob.c + c_load : 0;
    for (int col = ty; col < tile_iw; col += blockDim.y) {
      const int iw = iw0 + col;
      const bool inside = row_inside && iw >= 0 && iw < prob.w;
      V* dst = tile + (row * tile_iw + col) * cvs + tx;
      if constexpr (kAsync) {
        mma::cp_async_ca<sizeof(V)>(mma::smem_addr(dst), x + (inside ? row_offset + iw * prob.c : 0),
                                    inside);
      } else {
        V v;
        if (inside) {
          v = load_pack(reinterpret_cast<const V*>(x + row_offset + iw * prob.c));
        } else {
#pragma unroll
          for (int e = 0; e < kVec; ++e) v.v[e] = from_f32<T>(0.f);
        }
        store_pack(dst, v);
      }
    }
  }
  if constexpr (kAsync) {
    mma::cp_async_commit();
    mma::cp_async_wait<0>();
  }
  __syncthreads();

  const int c = c_block + tx * kVec;
  const int q = q0 + ty;
  if (c >= prob.c || q >= prob.q) return;
  float acc[kRows][kVec] = {};
  const V* column = tile + (ty * stride_w) * cvs + tx;  // tile pixel (row 0, first tap's column)
  if constexpr (kFixed) {
    // 2. Filter taps in registers; walk the tile's rows once (the sliding window).
    float wt[kR][kS][kVec];
#pragma unroll
    for (int r = 0; r < kR; ++r)
#pragma unroll
      for (int s = 0; s < kS; ++s) load_channels<T, kVec>(w + (r * kS + s) * prob.c + c, wt[r][s]);
    constexpr int kTileRows = (kRows - 1) * kStride + kR;
#pragma unroll
    for (int row = 0; row < kTileRows; ++row)
      add_input_row<kR, kS, kStride>(row, column + row * tile_iw * cvs, cvs, wt, acc);
  } else {
    // 2'. Runtime sizes: every tap of every output row from shared memory, the filter from L1.
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s) {
        float wv[kVec];
        load_channels<T, kVec>(w + (r * S + s) * prob.c + c, wv);
#pragma unroll
        for (int out = 0; out < kRows; ++out) {
          float xv[kVec];
          unpack(column + ((out * stride_h + r * dil_h) * tile_iw + s * dil_w) * cvs, xv);
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[out][e] = fmaf(xv[e], wv[e], acc[out][e]);
        }
      }
  }
  // 3. kVec channels of kRows outputs, one store each.
#pragma unroll
  for (int out = 0; out < kRows; ++out) {
    const int p = p0 + out;
    if (p < prob.p) store_channels<T, kVec>(y + ((n * prob.p + p) * prob.q + q) * prob.c + c, acc[out]);
  }
}

template <TileLoad kLoad, class T>
inline void launch_typed(const ConvProblem& prob, const Tile& t, const void* x, const void* w, void* y,
                  cudaStream_t stream) {
  const int col_tiles = (prob.q + t.tq - 1) / t.tq;
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  T* yt = static_cast<T*>(y);
  auto go = [&](auto kernel) {
    kernel<<<t.grid, t.block, t.smem_bytes, stream>>>(prob, col_tiles, t.ih, t.iw, xt, wt, yt);
  };
  switch (t.path) {
    case Path::k3x3s1: return go(depthwise_tile_kernel<kLoad, T, kVec3x3, 3, 3, 1>);
    case Path::k3x3s2: return go(depthwise_tile_kernel<kLoad, T, kVec3x3, 3, 3, 2>);
    case Path::k5x5s1: return go(depthwise_tile_kernel<kLoad, T, kVec5x5, 5, 5, 1>);
    case Path::k5x5s2: return go(depthwise_tile_kernel<kLoad, T, kVec5x5, 5, 5, 2>);
    case Path::generic: return go(depthwise_tile_kernel<kLoad, T, 1, 0, 0, 0>);
  }
}

// variant_launch and variant_describe of a variant that runs this kernel with kLoad.
template <TileLoad kLoad>
void launch(const ConvProblem& prob, const void* x, const void* w, void* y, cudaStream_t stream,
            const char* name) {
  const Tile t = make_tile(prob);
  check_grid(t.grid, name);
  with_elem_type(prob, [&](auto tag) { launch_typed<kLoad, decltype(tag)>(prob, t, x, w, y, stream); });
  CHECK_LAUNCH();
}

inline void describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const Tile t = make_tile(prob);
  detail.add_str("path", path_name(t.path))
      .add_int("rows_per_thread", kRows)
      .add_int("channels_per_thread", t.vec)
      .add_int("tile_columns", t.tq)
      .add_int("tile_channels", t.cv * t.vec)
      .add_str("input_tile", std::to_string(t.ih) + "x" + std::to_string(t.iw));
  launch_config = launch_json(t.grid, t.block, t.smem_bytes);
}

}  // namespace depthwise_tile
