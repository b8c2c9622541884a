// depthwise.cuh: what the depthwise_conv2d variants share. X is NHWC [N,H,W,C], Wt is RSC
// [R,S,C], Y is NHWC [N,P,Q,C] (conv2d.cuh's contract with K = C), all stored as prob.elem and
// accumulated in float32. Channels are innermost everywhere, so the kVec adjacent channels of a
// pixel are one aligned access (Pack) wherever C is a multiple of kVec.
#pragma once

#include "conv2d.cuh"

// kVec adjacent elements of T as one aligned load or store (8 or 16 bytes for kVec = 4).
template <class T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

template <class T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

// The unsigned integer type of 2, 4, 8 or 16 bytes: a Pack moves through it, so that a Pack of
// 16-bit values is one load or store, not kVec of them.
template <int kBytes>
struct Bits;
template <>
struct Bits<2> { using type = uint16_t; };
template <>
struct Bits<4> { using type = uint32_t; };
template <>
struct Bits<8> { using type = uint2; };
template <>
struct Bits<16> { using type = uint4; };

// The Pack at `p` (global or shared memory), in one access.
template <class T, int kVec>
__device__ __forceinline__ Pack<T, kVec> load_pack(const Pack<T, kVec>* p) {
  using B = typename Bits<sizeof(Pack<T, kVec>)>::type;
  const B bits = *reinterpret_cast<const B*>(p);
  Pack<T, kVec> out;
  memcpy(&out, &bits, sizeof(out));
  return out;
}

template <class T, int kVec>
__device__ __forceinline__ void store_pack(Pack<T, kVec>* p, const Pack<T, kVec>& v) {
  using B = typename Bits<sizeof(Pack<T, kVec>)>::type;
  B bits;
  memcpy(&bits, &v, sizeof(bits));
  *reinterpret_cast<B*>(p) = bits;
}

// The Pack at `p` as float32.
template <class T, int kVec>
__device__ __forceinline__ void unpack(const Pack<T, kVec>* p, float (&out)[kVec]) {
  const Pack<T, kVec> v = load_pack(p);
#pragma unroll
  for (int i = 0; i < kVec; ++i) out[i] = to_f32(v.v[i]);
}

// kVec channels starting at `p` (aligned to the Pack), as float32.
template <class T, int kVec>
__device__ __forceinline__ void load_channels(const T* p, float (&out)[kVec]) {
  unpack(reinterpret_cast<const Pack<T, kVec>*>(p), out);
}

// kVec float32 values rounded to T (nearest even) and stored as one access at `p`.
template <class T, int kVec>
__device__ __forceinline__ void store_channels(T* p, const float (&in)[kVec]) {
  Pack<T, kVec> out;
#pragma unroll
  for (int i = 0; i < kVec; ++i) out.v[i] = from_f32<T>(in[i]);
  store_pack(reinterpret_cast<Pack<T, kVec>*>(p), out);
}

// Runs `body(T{})` with T the C++ type of prob.elem (float, __half or __nv_bfloat16).
template <class Body>
void with_elem_type(const ConvProblem& prob, Body&& body) {
  switch (prob.elem) {
    case ElemType::f32: return body(float{});
    case ElemType::f16: return body(__half{});
    case ElemType::bf16: return body(__nv_bfloat16{});
  }
  FAIL("unknown element type");
}
