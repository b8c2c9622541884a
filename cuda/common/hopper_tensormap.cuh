// hopper_tensormap.cuh: host-side creation of TMA tensor maps (CUtensorMap) without linking
// libcuda: the two driver encoders are looked up once through the runtime's
// cudaGetDriverEntryPointByVersion (the build line is fixed: harness.cu + one variant file).
//   * encode_tiled_2d:  a row-major [rows][cols] matrix, box [box_rows][box_cols], 128B swizzle;
//   * encode_tiled_3d:  [planes][rows][cols], a box of one plane, 128B swizzle;
//   * encode_im2col_4d: an NHWC tensor read in im2col mode (pixels x channels boxes), 128B swizzle.
// Each returns false (and the caller falls back or fails) when the driver rejects the parameters.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "conv2d.cuh"

namespace hopper {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                   const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
using EncodeIm2colFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                    const cuuint64_t*, const cuuint64_t*, const int*, const int*,
                                    cuuint32_t, cuuint32_t, const cuuint32_t*,
                                    CUtensorMapInterleave, CUtensorMapSwizzle,
                                    CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The driver ABI version whose signatures the two typedefs above match (CUDA 12.0).
constexpr unsigned kDriverAbiVersion = 12000;

template <class Fn>
Fn driver_entry_point(const char* symbol) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult status;
  CHECK_CUDA(cudaGetDriverEntryPointByVersion(symbol, &fn, kDriverAbiVersion, cudaEnableDefault,
                                              &status));
  if (status != cudaDriverEntryPointSuccess || fn == nullptr)
    FAIL("driver entry point %s not found (status %d)", symbol, int(status));
  return reinterpret_cast<Fn>(fn);
}

// float32 operands are described as TFLOAT32: they feed tf32 wgmma.
inline CUtensorMapDataType tensormap_type(ElemType e) {
  return e == ElemType::bf16  ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
         : e == ElemType::f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                              : CU_TENSOR_MAP_DATA_TYPE_TFLOAT32;
}

// A row-major tensor of `rank` dims (dims[0] innermost, a row of dims[0] elements a multiple of
// 16 bytes; strides: bytes between consecutive indices of dims 1..rank-1), boxes of `box`
// elements (box[0] elements <= 128 bytes), 128B swizzle, zero fill out of bounds.
inline bool encode_tiled(CUtensorMap* map, ElemType elem, const void* base, cuuint32_t rank,
                         const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box) {
  static const EncodeTiledFn encode = driver_entry_point<EncodeTiledFn>("cuTensorMapEncodeTiled");
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  return encode(map, tensormap_type(elem), rank, const_cast<void*>(base), dims, strides, box,
                elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Row-major matrix [rows][cols] of `elem`, boxes of box_rows x box_cols elements.
inline bool encode_tiled_2d(CUtensorMap* map, ElemType elem, const void* base, uint64_t rows,
                            uint64_t cols, uint32_t box_rows, uint32_t box_cols) {
  const cuuint64_t dims[2] = {cols, rows};
  const cuuint64_t strides[1] = {cols * elem_bytes(elem)};
  const cuuint32_t box[2] = {box_cols, box_rows};
  return encode_tiled(map, elem, base, 2, dims, strides, box);
}

// [planes][rows][cols] of `elem` (e.g. one [S][D] matrix per batch x head), boxes of box_rows x
// box_cols elements of one plane: rows past a plane's last are out of bounds (zeros), never the
// next plane's.
inline bool encode_tiled_3d(CUtensorMap* map, ElemType elem, const void* base, uint64_t planes,
                            uint64_t rows, uint64_t cols, uint32_t box_rows, uint32_t box_cols) {
  const cuuint64_t dims[3] = {cols, rows, planes};
  const cuuint64_t strides[2] = {cols * elem_bytes(elem), rows * cols * elem_bytes(elem)};
  const cuuint32_t box[3] = {box_cols, box_rows, 1};
  return encode_tiled(map, elem, base, 3, dims, strides, box);
}

// X (NHWC, prob.elem) in im2col mode for `prob`: a load at window corner (n, h, w) with
// filter offsets (off_w, off_h) returns `pixels` consecutive output pixels (q fastest, then p,
// then n; stepping by the conv stride, wrapping at the output's edges) x `channels` channels,
// zeros where the tap falls into the padding. The traversal box per image spans window corners
// [-pad, (P-1)*stride - pad] along H (likewise W); corners are given innermost (W) first.
inline bool encode_im2col_4d(CUtensorMap* map, const ConvProblem& prob, const void* base,
                             uint32_t pixels, uint32_t channels) {
  static const EncodeIm2colFn encode =
      driver_entry_point<EncodeIm2colFn>("cuTensorMapEncodeIm2col");
  const uint64_t es = elem_bytes(prob.elem);
  const cuuint64_t dims[4] = {cuuint64_t(prob.c), cuuint64_t(prob.w), cuuint64_t(prob.h),
                              cuuint64_t(prob.n)};
  const cuuint64_t strides[3] = {prob.c * es, uint64_t(prob.w) * prob.c * es,
                                 uint64_t(prob.h) * prob.w * prob.c * es};
  const int lower[2] = {-prob.pad_w, -prob.pad_h};
  const int upper[2] = {(prob.q - 1) * prob.stride_w - prob.pad_w - (prob.w - 1),
                        (prob.p - 1) * prob.stride_h - prob.pad_h - (prob.h - 1)};
  const cuuint32_t elem_strides[4] = {1, cuuint32_t(prob.stride_w), cuuint32_t(prob.stride_h), 1};
  return encode(map, tensormap_type(prob.elem), 4, const_cast<void*>(base), dims, strides, lower,
                upper, channels, pixels, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace hopper
