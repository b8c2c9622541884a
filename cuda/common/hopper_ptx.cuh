// hopper_ptx.cuh: the Hopper (sm_90a) device primitives the hopper_wgmma variant is built from,
// each a thin inline-PTX wrapper named after its instruction:
//   * mbarrier: init, arrive, arrive + expect_tx, parity wait (the smem ring's full/empty flags);
//   * an mbarrier arrival when this thread's cp.async copies (mma_ptx.cuh) have landed;
//   * TMA (cp.async.bulk.tensor): 2D and 3D tiled loads and a 4D im2col load into shared memory
//     that complete on an mbarrier, the tensor-map prefetch, and a 2D tiled store from shared memory
//     with its bulk-group commit and waits;
//   * wgmma: fence / commit_group / wait_group, the shared-memory matrix descriptors of the
//     128-byte swizzled K-major and N-major layouts, m64nNk16 / m64nNk8 (N = 64, 128, 256; f16 and
//     bf16 inputs, or f32 inputs as tf32; f32 accumulators) with both operands from shared memory,
//     and m64nNk16 (N = 64, 128; f16, bf16) with A from registers and B N-major;
//   * setmaxnreg, named barriers (sync and arrive), fence.proxy.async, and the 128-byte swizzle
//     address of a 16-byte chunk.
// Only compiled for sm_90a (wgmma and setmaxnreg do not exist on plain sm_90). Users: hopper_wgmma
// (conv2d) and attention_wgmma.
#pragma once

#include <cuda.h>  // CUtensorMap (a type only: nothing here links against libcuda)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace hopper {

// Bytes of one row of a swizzled tile (64 two-byte or 32 four-byte elements), the width of one
// 128B swizzle atom.
constexpr int kSwizzleBytes = 128;
// A swizzle atom is 8 rows x 128 bytes; tiles must start on a 1024-byte boundary.
constexpr int kSwizzleAtomBytes = 8 * kSwizzleBytes;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Byte offset of 16-byte chunk `chunk` (0..7) of row `row` in a 128B-swizzled tile (the pattern
// TMA writes with CU_TENSOR_MAP_SWIZZLE_128B and wgmma reads with layout type 1): the chunk
// index is XORed with the row index modulo 8.
__device__ __forceinline__ uint32_t swizzle128_offset(int row, int chunk) {
  return uint32_t(row * kSwizzleBytes + ((chunk ^ (row & 7)) << 4));
}

// ---- mbarrier ---------------------------------------------------------------------------------
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count));
}
// Makes the inits visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void fence_mbar_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
}
// Spins until the phase with parity `parity` of the barrier has completed. A fresh barrier is
// in phase 0, so waiting for parity 1 returns at once (how the producer's first pass through
// the ring finds every slot free).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}

// ---- cp.async (the copies themselves: mma_ptx.cuh) ----------------------------------------------
// One arrival on `bar` once every cp.async this thread issued so far has landed (.noinc: the
// arrival counts toward the barrier's expected count). The thread goes on at once.
__device__ __forceinline__ void cp_async_mbar_arrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(smem_addr(bar))
               : "memory");
}

// ---- TMA --------------------------------------------------------------------------------------
__device__ __forceinline__ void prefetch_tensormap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
// Box of a 2D tiled tensor map at element coordinates (c0 innermost, c1) -> smem, completing
// its bytes on `bar`. Out-of-bounds elements are written as zeros.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, uint64_t* bar,
                                            int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}
// Box of a 3D tiled tensor map at element coordinates (c0 innermost, c1, c2) -> smem, completing
// its bytes on `bar`. Out-of-bounds elements are written as zeros (and count toward the bytes).
__device__ __forceinline__ void tma_load_3d(void* dst, const CUtensorMap* map, uint64_t* bar,
                                            int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
      : "memory");
}
// im2col load of a 4D NHWC tensor map: pixelsPerColumn pixels x channelsPerPixel channels,
// starting at pixel (n, h, w) (the window corner of the first output pixel), channel c, each
// pixel shifted by (off_h, off_w) (the filter tap). Out-of-bounds pixels are written as zeros.
__device__ __forceinline__ void tma_load_im2col_4d(void* dst, const CUtensorMap* map, uint64_t* bar,
                                                   int c, int w, int h, int n, uint16_t off_w,
                                                   uint16_t off_h) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4, %5}], [%6], {%7, %8};" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c), "r"(w), "r"(h), "r"(n), "r"(smem_addr(bar)),
      "h"(off_w), "h"(off_h)
      : "memory");
}

// Shared memory -> a box of a 2D tiled tensor map at element coordinates (c0 innermost, c1), as
// one bulk async-group of this thread; elements outside the tensor are not written.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, const void* src, int c0,
                                             int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"(
          reinterpret_cast<uint64_t>(map)),
      "r"(c0), "r"(c1), "r"(smem_addr(src))
      : "memory");
}
__device__ __forceinline__ void bulk_commit_group() {
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}
// Waits until at most kPending of this thread's bulk groups still read their shared memory.
template <int kPending>
__device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kPending) : "memory");
}
// Waits until at most kPending of this thread's bulk groups are incomplete (writes visible).
template <int kPending>
__device__ __forceinline__ void bulk_wait_group() {
  asm volatile("cp.async.bulk.wait_group %0;" ::"n"(kPending) : "memory");
}

// ---- ordering and registers -------------------------------------------------------------------
// Barrier `id` (1..15; 0 is __syncthreads) over `threads` threads (a multiple of 32).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// Arrives at barrier `id` without waiting: counts toward the `threads` that its bar.sync waits for.
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// Orders this thread's ordinary shared-memory stores before later async-proxy (wgmma/TMA) reads.
__device__ __forceinline__ void fence_proxy_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegs));
}

// ---- wgmma ------------------------------------------------------------------------------------
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accumulator reads/writes (or the writes of register A
// fragments) across a wgmma fence or wait.
template <int kN>
__device__ __forceinline__ void fence_operands(float (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int kN>
__device__ __forceinline__ void fence_operands(uint32_t (&a)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+r"(a[i])::"memory");
}

// Shared-memory matrix descriptor of a K-major operand tile stored as rows of 128 bytes with the
// 128B swizzle (what TMA writes): start address >> 4 in bits 0-13, leading-dimension byte
// offset (unused for this layout, 1 by convention) in 16-29, stride byte offset between 8-row
// groups (1024 B) >> 4 in 32-45, base offset 0 (tiles 1024-aligned), layout type 1 (128B swizzle)
// in bits 62-63. Adding 2 to the descriptor advances the start by 32 bytes (one wgmma's K).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(const void* tile) {
  return uint64_t((smem_addr(tile) & 0x3FFFF) >> 4) | (uint64_t(1) << 16) |
         (uint64_t(kSwizzleAtomBytes >> 4) << 32) | (uint64_t(1) << 62);
}

// Descriptor of an N-major (MN-major) operand: k rows of N values, stored as N / 64 (16-bit)
// column blocks of 128-byte swizzled rows (TMA boxes of 64 columns), block j at tile + j *
// block_bytes. Leading-dimension byte offset: block_bytes (from one 64-column block to the next
// along N); stride byte offset: 1024 (from one 8-row group of k to the next); layout type 1.
// Adding 128 to the descriptor advances the start by 16 rows (2048 bytes: one wgmma's k16).
__device__ __forceinline__ uint64_t wgmma_desc_sw128_mn(const void* tile, uint32_t block_bytes) {
  return uint64_t((smem_addr(tile) & 0x3FFFF) >> 4) | (uint64_t((block_bytes & 0x3FFFF) >> 4) << 16) |
         (uint64_t(kSwizzleAtomBytes >> 4) << 32) | (uint64_t(1) << 62);
}

// D[64 x N] (f32, registers of the warpgroup) += A[64 x k] * B[N x k]^T, k = 16 (f16, bf16) or 8
// (float: tf32 math, the low 13 mantissa bits of each operand ignored), both K-major in shared
// memory (descriptors above); scale_d == 0 ignores the old D (D = A * B^T). d[i] of
// thread t (warp w = t/32 of the warpgroup, lane l): row 16*w + l/4 + 8*((i/2)%2), column
// 8*(i/4) + 2*(l%4) + i%2.
template <class T, int kN>
struct Wgmma;

// One specialization per N, written once for the three input types: KIND is the instruction's
// K and types (k16 for f16/bf16, k8 for tf32: 32 bytes of K per instruction either way), IMM its
// trailing immediates (scale-a, scale-b, and for 16-bit types transpose-a/b = 0: K-major).
#define OPBENCH_WGMMA_IMM_16BIT "1, 1, 0, 0"
#define OPBENCH_WGMMA_IMM_TF32 "1, 1"
#define OPBENCH_WGMMA_M64N64(TYPE, KIND, IMM) \
template <> \
struct Wgmma<TYPE, 64> { \
  __device__ static void mma(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n64" KIND " {" \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
        "}, %32, %33, p, " IMM ";\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
        : "l"(desc_a), "l"(desc_b), "r"(scale_d)); \
  } \
};

OPBENCH_WGMMA_M64N64(__half, "k16.f32.f16.f16", OPBENCH_WGMMA_IMM_16BIT)
OPBENCH_WGMMA_M64N64(__nv_bfloat16, "k16.f32.bf16.bf16", OPBENCH_WGMMA_IMM_16BIT)
OPBENCH_WGMMA_M64N64(float, "k8.f32.tf32.tf32", OPBENCH_WGMMA_IMM_TF32)
#undef OPBENCH_WGMMA_M64N64

#define OPBENCH_WGMMA_M64N128(TYPE, KIND, IMM) \
template <> \
struct Wgmma<TYPE, 128> { \
  __device__ static void mma(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n128" KIND " {" \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
        "}, %64, %65, p, " IMM ";\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
        : "l"(desc_a), "l"(desc_b), "r"(scale_d)); \
  } \
};

OPBENCH_WGMMA_M64N128(__half, "k16.f32.f16.f16", OPBENCH_WGMMA_IMM_16BIT)
OPBENCH_WGMMA_M64N128(__nv_bfloat16, "k16.f32.bf16.bf16", OPBENCH_WGMMA_IMM_16BIT)
OPBENCH_WGMMA_M64N128(float, "k8.f32.tf32.tf32", OPBENCH_WGMMA_IMM_TF32)
#undef OPBENCH_WGMMA_M64N128

#define OPBENCH_WGMMA_M64N256(TYPE, KIND, IMM) \
template <> \
struct Wgmma<TYPE, 256> { \
  __device__ static void mma(float (&d)[128], uint64_t desc_a, uint64_t desc_b, int scale_d) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n256" KIND " {" \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
        "}, %128, %129, p, " IMM ";\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127]) \
        : "l"(desc_a), "l"(desc_b), "r"(scale_d)); \
  } \
};

OPBENCH_WGMMA_M64N256(__half, "k16.f32.f16.f16", OPBENCH_WGMMA_IMM_16BIT)
OPBENCH_WGMMA_M64N256(__nv_bfloat16, "k16.f32.bf16.bf16", OPBENCH_WGMMA_IMM_16BIT)
OPBENCH_WGMMA_M64N256(float, "k8.f32.tf32.tf32", OPBENCH_WGMMA_IMM_TF32)
#undef OPBENCH_WGMMA_M64N256
#undef OPBENCH_WGMMA_IMM_16BIT
#undef OPBENCH_WGMMA_IMM_TF32

// D[64 x N] (f32) += A[64 x 16] * B[16 x N], A from registers (four 32-bit registers of two 16-bit
// values per thread, mma.sync's m16n8k16 A layout per warp: a[0] row g cols 2t..2t+1, a[1] row
// g + 8, a[2] row g cols 2t + 8.., a[3] row g + 8 cols 2t + 8..; warp w holds rows 16w..16w+15),
// B N-major in shared memory (transpose-b = 1: rows of N contiguous values, one per k, described
// by wgmma_desc_sw128_mn). f16 and bf16 only (wgmma transposes 16-bit operands only). The
// accumulator layout is Wgmma's; scale_d == 0 ignores the old D.
template <class T, int kN>
struct WgmmaRegA;

#define OPBENCH_WGMMA_REGA_M64N64(TYPE, KIND) \
template <> \
struct WgmmaRegA<TYPE, 64> { \
  __device__ static void mma(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n64" KIND " {" \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d)); \
  } \
};

OPBENCH_WGMMA_REGA_M64N64(__half, "k16.f32.f16.f16")
OPBENCH_WGMMA_REGA_M64N64(__nv_bfloat16, "k16.f32.bf16.bf16")
#undef OPBENCH_WGMMA_REGA_M64N64

#define OPBENCH_WGMMA_REGA_M64N128(TYPE, KIND) \
template <> \
struct WgmmaRegA<TYPE, 128> { \
  __device__ static void mma(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) { \
    asm volatile( \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" \
        "wgmma.mma_async.sync.aligned.m64n128" KIND " {" \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n" \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d)); \
  } \
};

OPBENCH_WGMMA_REGA_M64N128(__half, "k16.f32.f16.f16")
OPBENCH_WGMMA_REGA_M64N128(__nv_bfloat16, "k16.f32.bf16.bf16")
#undef OPBENCH_WGMMA_REGA_M64N128
}  // namespace hopper
