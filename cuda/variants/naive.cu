// naive.cu -- variant 1: one thread per output element.
//
// Idea: the definition of conv2d, written as a kernel. Thread i computes Y[n,p,q,k] with k the
// fastest index (so the 32 threads of a warp write 32 consecutive floats of Y and read the same
// X pixel), looping over r, s, c and reading X and Wt straight from global memory.
// The correct baseline: each FMA needs two global loads, and the Wt reads of a warp are strided
// by R*S*C floats. Prediction and measured outcome: docs/perf-log.md, section 1.
#include "conv2d.cuh"

namespace {

constexpr int kThreads = 256;  // threads per block; any multiple of 32 works

__global__ void __launch_bounds__(kThreads)
conv2d_naive_kernel(ConvProblem prob, const float* __restrict__ x, const float* __restrict__ w,
                    float* __restrict__ y) {
  const int total = int(prob.y_elems());  // < 2^31, guaranteed by ConvProblem::finalize()
  const int idx = blockIdx.x * kThreads + threadIdx.x;
  if (idx >= total) return;
  // idx = ((n*P + p)*Q + q)*K + k
  const int k = idx % prob.k;
  int t = idx / prob.k;
  const int q = t % prob.q;
  t /= prob.q;
  const int p = t % prob.p;
  const int n = t / prob.p;

  const int ih0 = p * prob.stride_h - prob.pad_h;
  const int iw0 = q * prob.stride_w - prob.pad_w;
  const float* wk = w + k * prob.r * prob.s * prob.c;  // filter k, [R,S,C]
  float acc = 0.f;
  for (int r = 0; r < prob.r; ++r) {
    const int ih = ih0 + r * prob.dil_h;
    if (ih < 0 || ih >= prob.h) continue;  // zero padding
    for (int s = 0; s < prob.s; ++s) {
      const int iw = iw0 + s * prob.dil_w;
      if (iw < 0 || iw >= prob.w) continue;
      const float* xp = x + ((n * prob.h + ih) * prob.w + iw) * prob.c;
      const float* wp = wk + (r * prob.s + s) * prob.c;
      for (int c = 0; c < prob.c; ++c) acc = fmaf(xp[c], wp[c], acc);
    }
  }
  y[idx] = acc;
}

dim3 grid_for(const ConvProblem& prob) {
  return dim3(unsigned((prob.y_elems() + kThreads - 1) / kThreads));
}

}  // namespace

const char* variant_name() { return "naive"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::conv2d, {ElemType::f32}, variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  const dim3 grid = grid_for(prob);
  check_grid(grid, "conv2d_naive_kernel");
  conv2d_naive_kernel<<<grid, kThreads, 0, stream>>>(prob, as_f32(x), as_f32(w), as_f32(y));
  CHECK_LAUNCH();
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  detail.add_str("mapping", "one thread per output element, k fastest");
  launch_config = launch_json(grid_for(prob), dim3(kThreads), 0);
}
