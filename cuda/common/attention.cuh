// attention.cuh: what the attention variants (attention_fa2, attention_wgmma) share outside their
// kernels' main loops: the exp2 of the online softmax, the name of a test-only fault build, and
// the dispatch of a problem to the kernel instantiated for its element type and head dim.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "conv2d.cuh"

namespace attention {

// 2^x on the SFU; ex2.approx(-inf) = +0, which masked scores rely on.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// The test-only faults a variant file was built with (tests/test_gpu_attention_cuda.py):
// -DOPBENCH_FAULT_DROP_CAUSAL (no causal mask), -DOPBENCH_FAULT_DROP_TAIL (the last partial key
// tile dropped). Recorded in the row's detail.
inline const char* fault_name() {
#if defined(OPBENCH_FAULT_DROP_CAUSAL) && defined(OPBENCH_FAULT_DROP_TAIL)
  return "drop_causal+drop_tail";
#elif defined(OPBENCH_FAULT_DROP_CAUSAL)
  return "drop_causal";
#elif defined(OPBENCH_FAULT_DROP_TAIL)
  return "drop_tail";
#else
  return "none";
#endif
}

// The element type and head dim of one kernel instantiation, for dispatch().
template <class T, int D>
struct Kind {
  using Elem = T;
  static constexpr int kD = D;
};

// Calls fn(Kind<T, D>{}) for the problem's element type (f16 or bf16: require_problem has
// checked) and head dim (64 or 128, the dims the variants compile); any other head dim stops
// with an error naming `variant`.
template <class Fn>
void dispatch(const ConvProblem& prob, const char* variant, Fn&& fn) {
  const bool f16 = prob.elem == ElemType::f16;
  switch (prob.attn.d) {
    case 64:
      if (f16) fn(Kind<__half, 64>{});
      else fn(Kind<__nv_bfloat16, 64>{});
      return;
    case 128:
      if (f16) fn(Kind<__half, 128>{});
      else fn(Kind<__nv_bfloat16, 128>{});
      return;
    default:
      FAIL("variant %s compiles head dims 64 and 128 only, not --d %d", variant, prob.attn.d);
  }
}

}  // namespace attention
