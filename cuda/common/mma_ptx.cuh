// mma_ptx.cuh: thin wrappers over the Ampere-style (sm_80+) PTX that mma_implicit_gemm.cu uses:
//   * cp.async global -> shared copies with zero fill (16 bytes .cg, or 4, 8 or 16 bytes .ca through
//     L1), commit / wait_group (also used by hopper_wgmma's gather producer and the depthwise tile);
//   * ldmatrix.x4 (four 8x8 b16 matrices = four 8-row x 16-byte blocks) shared -> registers, and
//     its .trans form (attention_fa2's V operand);
//   * mma.sync m16n8k16 (f16 / bf16 inputs) and m16n8k8 (tf32 inputs), f32 accumulate;
//   * cvt.rna.tf32.f32 (round a float to tf32 for the tf32 MMA).
// Elem<T> gives, per storage type, the elements in one 16-byte chunk and the MMA's name. Both
// MMAs reduce over 32 bytes of each A and B row per instruction (16 halves or 8 floats: two
// chunks, kChunksPerKStep), so the tile code works in chunks and stays type-agnostic.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace mma {

constexpr int kChunkBytes = 16;         // one cp.async / one ldmatrix row
constexpr int kChunksPerKStep = 2;      // 32 bytes of reduction per MMA for every element type

template <class T>
struct Elem;
template <>
struct Elem<__half> {
  static constexpr int kPerChunk = 8;
  static constexpr const char* kMma = "mma.sync.m16n8k16.f32.f16.f16.f32";
};
template <>
struct Elem<__nv_bfloat16> {
  static constexpr int kPerChunk = 8;
  static constexpr const char* kMma = "mma.sync.m16n8k16.f32.bf16.bf16.f32";
};
template <>
struct Elem<float> {
  static constexpr int kPerChunk = 4;
  static constexpr const char* kMma = "mma.sync.m16n8k8.f32.tf32.tf32.f32";
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Copies kBytes (4, 8 or 16: the sizes .ca takes) from global `src` to shared `dst` through L1, or
// writes kBytes zeros when !valid (src-size 0: nothing is read, but `src` must still be a valid
// address, so callers pass the tensor base).
template <int kBytes>
__device__ __forceinline__ void cp_async_ca(uint32_t dst, const void* src, bool valid) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(src), "n"(kBytes),
               "r"(valid ? kBytes : 0));
}

// 16 bytes, the same contract. kL1: keep the line in L1 (.ca: inputs that neighbouring rows read
// again), else L2 only (.cg, which takes 16 bytes only).
template <bool kL1 = false>
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  if constexpr (kL1)
    cp_async_ca<kChunkBytes>(dst, src, valid);
  else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(valid ? kChunkBytes : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// The same with .trans: each 8x8 matrix transposed on the way (a thread gets two elements of one
// column instead of one row): the B operand of an MMA from a k-major (row-major [k][n]) tile, e.g.
// attention's V [key][d] in P·V (attention_fa2).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Fragments come out of ldmatrix as raw bits; for float (tf32 MMA) round each to tf32 (rna)
// once here, right after the load, not at every MMA that reuses the fragment.
template <class T, int kRegs>
__device__ __forceinline__ void to_mma_operand(uint32_t (&r)[kRegs]) {
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int i = 0; i < kRegs; ++i)
      asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r[i]) : "f"(__uint_as_float(r[i])));
  }
}

// d += a * b for one 16x8 tile; a: 4 registers (16 x 32 bytes), b: 2 registers (32 bytes x 8).
// Not volatile: the compiler may interleave MMAs with the (volatile) ldmatrix of the next step.
template <class T>
__device__ __forceinline__ void mma_16x8(float (&d)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma_16x8<__half>(float (&d)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2]) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma_16x8<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                        const uint32_t (&b)[2]) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// tf32: a and b already went through to_mma_operand<float>.
template <>
__device__ __forceinline__ void mma_16x8<float>(float (&d)[4], const uint32_t (&a)[4],
                                                const uint32_t (&b)[2]) {
  asm(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

}  // namespace mma
