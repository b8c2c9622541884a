// round_output.cuh: 16-bit outputs of split-K kernels. The slices add into a float32 workspace
// (atomics into zeros), then one pass rounds it into Y. Included only by the variants that use
// it, so other binaries do not carry its kernels.
#pragma once

#include "conv2d.cuh"

template <class T>
__global__ void round_output_kernel(const float* __restrict__ src, T* __restrict__ dst,
                                    int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_f32<T>(src[i]);
}

// Y (prob.elem, 16-bit) = round(ws) for the y_elems() float32 values of `ws`.
inline void round_output(const ConvProblem& prob, const float* ws, void* y, cudaStream_t stream) {
  constexpr int kThreadsPerBlock = 256;
  const int blocks = 4 * sm_count();
  if (prob.elem == ElemType::f16)
    round_output_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(ws, static_cast<__half*>(y),
                                                                 prob.y_elems());
  else if (prob.elem == ElemType::bf16)
    round_output_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(
        ws, static_cast<__nv_bfloat16*>(y), prob.y_elems());
  else
    FAIL("round_output: Y is already float32");
  CHECK_LAUNCH();
}
