// smem_tiled.cu -- variant 2: shared-memory tiling of the implicit GEMM.
//
// Adds over naive: the implicit-GEMM view (M = N*P*Q rows, K columns, KG = R*S*C reduction,
// kk = (r*S + s)*C + c). A 16x16 block computes a 16x16 tile of Y; per step of TILE reduction
// indices it cooperatively loads a TILE x TILE slice of A (gathered from X, im2col on the fly,
// zeros for padding) and of Wt into shared memory, then each thread does TILE FMAs from smem.
// Both global loads are coalesced along kk (contiguous in NHWC X and KRSC Wt); Wt is stored
// transposed so the inner loop reads sB[kk][tx] conflict-free.
// Each global element is reused TILE times from shared memory instead of once; still one output
// per thread and 2 shared loads per FMA. Prediction and measured outcome: docs/perf-log.md,
// section 2.
#include "conv2d.cuh"

namespace {

constexpr int TILE = 16;  // block tile is TILE x TILE outputs, reduction step TILE
static_assert(TILE * TILE <= 1024, "one thread per output of the tile: at most 1024 threads");
static_assert(TILE * TILE % 32 == 0, "whole warps");

__global__ void __launch_bounds__(TILE * TILE)
conv2d_smem_tiled_kernel(ConvProblem prob, const float* __restrict__ x,
                         const float* __restrict__ w, float* __restrict__ y) {
  // +1 column of padding: the transposed store sB[tx][ty] hits distinct banks.
  __shared__ float sA[TILE][TILE + 1];  // [m][kk]
  __shared__ float sB[TILE][TILE + 1];  // [kk][k]

  const int tx = threadIdx.x, ty = threadIdx.y;
  const int M = prob.gemm_m(), KG = prob.gemm_k(), K = prob.k;
  const int PQ = prob.p * prob.q;

  // The A row this thread loads is also the output row it computes: m = m0 + ty.
  const int m = blockIdx.x * TILE + ty;
  const bool m_ok = m < M;
  const int mm = m_ok ? m : 0;
  const int img = mm / PQ;
  const int pq = mm - img * PQ;
  const int p = pq / prob.q;
  const int q = pq - p * prob.q;
  const int x_img = img * prob.h * prob.w * prob.c;
  const int ih0 = p * prob.stride_h - prob.pad_h;
  const int iw0 = q * prob.stride_w - prob.pad_w;

  const int k_out = blockIdx.y * TILE + tx;   // output column this thread computes
  const int k_load = blockIdx.y * TILE + ty;  // filter row this thread loads

  float acc = 0.f;
  for (int k0 = 0; k0 < KG; k0 += TILE) {
    const int kk = k0 + tx;  // this thread's reduction index for both loads
    // A[m][kk]: decode kk -> (r, s, c), gather from X with zero padding.
    float a = 0.f;
    if (m_ok && kk < KG) {
      const int c = kk % prob.c;
      const int rs = kk / prob.c;
      const int s = rs % prob.s;
      const int r = rs / prob.s;
      const int ih = ih0 + r * prob.dil_h;
      const int iw = iw0 + s * prob.dil_w;
      if (ih >= 0 && ih < prob.h && iw >= 0 && iw < prob.w)
        a = x[x_img + (ih * prob.w + iw) * prob.c + c];
    }
    sA[ty][tx] = a;
    // Wt[k_load][kk], coalesced along kk, stored transposed.
    sB[tx][ty] = (k_load < K && kk < KG) ? w[k_load * KG + kk] : 0.f;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < TILE; ++i) acc = fmaf(sA[ty][i], sB[i][tx], acc);
    __syncthreads();
  }
  if (m_ok && k_out < K) y[m * K + k_out] = acc;
}

dim3 grid_for(const ConvProblem& prob) {
  return dim3(unsigned((prob.gemm_m() + TILE - 1) / TILE), unsigned((prob.k + TILE - 1) / TILE));
}

}  // namespace

const char* variant_name() { return "smem_tiled"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::conv2d, {ElemType::f32}, variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  const dim3 grid = grid_for(prob);
  check_grid(grid, "conv2d_smem_tiled_kernel");
  conv2d_smem_tiled_kernel<<<grid, dim3(TILE, TILE), 0, stream>>>(prob, as_f32(x), as_f32(w), as_f32(y));
  CHECK_LAUNCH();
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  detail.add_int("tile_m", TILE).add_int("tile_n", TILE).add_int("tile_k", TILE);
  launch_config = launch_json(grid_for(prob), dim3(TILE, TILE), 2 * TILE * (TILE + 1) * sizeof(float));
}
