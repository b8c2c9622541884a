// depthwise_naive.cu -- depthwise variant 1: one thread per output element.
// opbench: op=depthwise_conv2d dtypes=f32,f16,bf16
//
// Idea: the definition of depthwise convolution as a kernel. Thread i computes Y[n,p,q,c] with c
// the fastest index, so a warp reads 32 adjacent channels of one input pixel per tap (coalesced,
// one element per thread) and writes 32 adjacent outputs. Every input element is read by up to
// R*S threads; the caches, not the kernel, turn that into one DRAM read. The correct baseline of
// the depthwise steps (docs/perf-log.md).
#include "depthwise.cuh"

namespace {

constexpr int kThreads = 256;  // threads per block; any multiple of 32 works

template <class T>
__global__ void __launch_bounds__(kThreads)
depthwise_naive_kernel(ConvProblem prob, const T* __restrict__ x, const T* __restrict__ w,
                       T* __restrict__ y) {
  const int total = int(prob.y_elems());  // < 2^31, guaranteed by ConvProblem::finalize()
  const int idx = blockIdx.x * kThreads + threadIdx.x;
  if (idx >= total) return;
  // idx = ((n*P + p)*Q + q)*C + c
  const int c = idx % prob.c;
  int t = idx / prob.c;
  const int q = t % prob.q;
  t /= prob.q;
  const int p = t % prob.p;
  const int n = t / prob.p;

  const int ih0 = p * prob.stride_h - prob.pad_h;
  const int iw0 = q * prob.stride_w - prob.pad_w;
  float acc = 0.f;
  for (int r = 0; r < prob.r; ++r) {
    const int ih = ih0 + r * prob.dil_h;
    if (ih < 0 || ih >= prob.h) continue;  // zero padding
    for (int s = 0; s < prob.s; ++s) {
      const int iw = iw0 + s * prob.dil_w;
      if (iw < 0 || iw >= prob.w) continue;
      acc = fmaf(to_f32(x[((n * prob.h + ih) * prob.w + iw) * prob.c + c]),
                 to_f32(w[(r * prob.s + s) * prob.c + c]), acc);
    }
  }
  y[idx] = from_f32<T>(acc);
}

dim3 grid_for(const ConvProblem& prob) {
  return dim3(unsigned((prob.y_elems() + kThreads - 1) / kThreads));
}

}  // namespace

const char* variant_name() { return "depthwise_naive"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::depthwise_conv2d, {ElemType::f32, ElemType::f16, ElemType::bf16},
                  variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  const dim3 grid = grid_for(prob);
  check_grid(grid, "depthwise_naive_kernel");
  with_elem_type(prob, [&](auto tag) {
    using T = decltype(tag);
    depthwise_naive_kernel<T><<<grid, kThreads, 0, stream>>>(
        prob, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y));
  });
  CHECK_LAUNCH();
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  detail.add_str("mapping", "one thread per output element, c fastest");
  launch_config = launch_json(grid_for(prob), dim3(kThreads), 0);
}
