// conv2d.cuh: what the harness and every variant share.
//
//   * CHECK_CUDA / CHECK_LAUNCH: the one error-check macro (file + line, exit 1).
//   * ConvProblem: the problem, its derived output size P x Q and the implicit-GEMM view.
//   * Json: a tiny builder for the variant-specific "detail" and "launch_config" objects.
//   * time_launches_ms(), CandidateCheck, tune_candidates(): the candidate-tuning loop of the
//     variants that tune in variant_prepare(), and the "candidates" list of their "detail".
//   * The variant interface: five functions that exactly one variant file defines.
//
// Ops (ConvProblem::op, the harness's --op): conv2d, depthwise_conv2d (one R x S filter
// per channel, K = C), separable_conv2d, and attention (ConvProblem::attn: the one non-convolution
// op; its sizes and buffers are described in the attention section below, the rest of this comment
// is about the convolutions). Layouts (fixed by the contract): X is NHWC [N,H,W,C], Wt is KRSC
// [K,R,S,C] (depthwise: RSC [R,S,C]), Y is NHWC [N,P,Q,K]; cross-correlation with zero padding,
// like torch conv2d (groups = C for depthwise). X, Wt and Y are stored as
// ConvProblem::elem (float32, float16 or bfloat16, chosen by the harness's --dtype): 16-bit
// inputs give a 16-bit Y, like cuDNN and torch, with float32 accumulation inside the kernel.
// Implicit GEMM view: Y[m][k] = sum_kk A[m][kk] * Wt[k][kk] with
//   m  = (n*P + p)*Q + q          in [0, M = N*P*Q)     (a row of Y, contiguous K floats)
//   kk = (r*S + s)*C + c          in [0, KG = R*S*C)    (contiguous in both X and Wt)
//   A[m][kk] = X[n, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w, c] (0 outside)
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

// ---------------------------------------------------------------------------------------------
// Error checking. Every CUDA runtime call goes through CHECK_CUDA; every kernel launch is
// followed by CHECK_LAUNCH() (launch-configuration errors surface through cudaGetLastError).
// ---------------------------------------------------------------------------------------------
#define CHECK_CUDA(call)                                                                       \
  do {                                                                                         \
    cudaError_t check_cuda_err_ = (call);                                                      \
    if (check_cuda_err_ != cudaSuccess) {                                                      \
      std::fprintf(stderr, "CUDA error %s (%s) at %s:%d in: %s\n",                             \
                   cudaGetErrorName(check_cuda_err_), cudaGetErrorString(check_cuda_err_),     \
                   __FILE__, __LINE__, #call);                                                 \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

#define CHECK_LAUNCH() CHECK_CUDA(cudaGetLastError())

// A fatal non-CUDA error (bad launch geometry, impossible configuration): message + exit 1.
#define FAIL(...)                                                                              \
  do {                                                                                         \
    std::fprintf(stderr, "error at %s:%d: ", __FILE__, __LINE__);                              \
    std::fprintf(stderr, __VA_ARGS__);                                                         \
    std::fprintf(stderr, "\n");                                                                \
    std::exit(1);                                                                              \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Element type of X and Wt in device memory: float, __half or __nv_bfloat16.
// ---------------------------------------------------------------------------------------------
enum class ElemType : int { f32, f16, bf16 };

inline const char* elem_name(ElemType e) {
  return e == ElemType::f16 ? "f16" : e == ElemType::bf16 ? "bf16" : "f32";
}
inline size_t elem_bytes(ElemType e) { return e == ElemType::f32 ? 4 : 2; }

// ---------------------------------------------------------------------------------------------
// The op a problem is an instance of (--op): its filter's shape and its work differ.
// ---------------------------------------------------------------------------------------------
// separable_conv2d is a depthwise R x S convolution of the C channels then a pointwise 1x1 one from
// C to K channels; its Wt is the two filters back to back: the depthwise [R,S,C], then [K,C].
// attention: softmax(Q·Kᵀ/√D)·V per (batch, head); see AttentionSizes.
enum class OpKind : int { conv2d, depthwise_conv2d, separable_conv2d, attention };

inline const char* op_name(OpKind o) {
  switch (o) {
    case OpKind::depthwise_conv2d: return "depthwise_conv2d";
    case OpKind::separable_conv2d: return "separable_conv2d";
    case OpKind::attention: return "attention";
    case OpKind::conv2d: break;
  }
  return "conv2d";
}

// ---------------------------------------------------------------------------------------------
// attention's sizes (--op attention): Q, K, V and O all [B,H,S,D] (layout bhsd), S queries attend
// to S keys; `causal`: query i sees keys 0..i only. The harness hands a variant Q as `x`, K and V
// back to back in `w` (K first, V at w + B*H*S*D elements) and O as `y`, all ConvProblem::elem.
// ---------------------------------------------------------------------------------------------
struct AttentionSizes {
  int b = 0, heads = 0, s = 0, d = 0;  // --b --heads --s --d
  int causal = 0;                       // --causal 0|1

  __host__ __device__ int64_t elems() const { return int64_t(b) * heads * s * d; }  // one of Q/K/V/O
};

// ---------------------------------------------------------------------------------------------
// The problem. Plain ints so it can be passed by value to kernels. The harness guarantees,
// before any variant sees it, that every size is >= 1, P,Q >= 1, and that X, Wt and Y each
// have fewer than 2^31 elements, so all in-kernel element offsets fit in int32.
// ---------------------------------------------------------------------------------------------
struct ConvProblem {
  int n = 0, h = 0, w = 0, c = 0;     // input  [N,H,W,C]
  int k = 0, r = 0, s = 0;            // filter [K,R,S,C]; depthwise: [R,S,C] and k = c;
                                      // separable: [R,S,C] then [K,C]
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dil_h = 1, dil_w = 1;
  int p = 0, q = 0;                   // derived output size, set by finalize()
  ElemType elem = ElemType::f32;      // storage type of X and Wt (--dtype)
  OpKind op = OpKind::conv2d;         // --op
  AttentionSizes attn;                // op == attention only (the convolution fields stay 0)

  // Output extent along one axis; may be <= 0 for an invalid problem (never divides a
  // negative numerator, which would round toward zero and yield a bogus 1).
  static int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t ksize, int64_t stride) {
    const int64_t span = in + 2 * pad - dil * (ksize - 1) - 1;
    if (span < 0 || stride < 1) return 0;
    return span / stride + 1;
  }

  // Validates every field and sets p, q. Returns "" or an error message that names the flag.
  std::string finalize() {
    if (op == OpKind::attention) return finalize_attention();
    struct Field { const char* flag; int value; int min; };
    const Field fields[] = {
        {"--n", n, 1},           {"--h", h, 1},           {"--w", w, 1},
        {"--c", c, 1},           {"--k", k, 1},           {"--r", r, 1},
        {"--s", s, 1},           {"--stride-h", stride_h, 1}, {"--stride-w", stride_w, 1},
        {"--pad-h", pad_h, 0},   {"--pad-w", pad_w, 0},   {"--dil-h", dil_h, 1},
        {"--dil-w", dil_w, 1}};
    for (const Field& f : fields) {
      if (f.value < f.min)
        return std::string(f.flag) + " must be >= " + std::to_string(f.min) + " (got " +
               std::to_string(f.value) + ")";
    }
    const int64_t P = out_size(h, pad_h, dil_h, r, stride_h);
    const int64_t Q = out_size(w, pad_w, dil_w, s, stride_w);
    if (P < 1)
      return "output height P < 1: the dilated filter (--r " + std::to_string(r) +
             ", --dil-h " + std::to_string(dil_h) + ") is taller than the padded input (--h " +
             std::to_string(h) + " + 2 * --pad-h " + std::to_string(pad_h) + ")";
    if (Q < 1)
      return "output width Q < 1: the dilated filter (--s " + std::to_string(s) +
             ", --dil-w " + std::to_string(dil_w) + ") is wider than the padded input (--w " +
             std::to_string(w) + " + 2 * --pad-w " + std::to_string(pad_w) + ")";
    const int64_t kLimit = int64_t(1) << 31;
    if (op == OpKind::depthwise_conv2d && k != c)
      return "--k must equal --c for depthwise_conv2d (one filter per channel), got --k " +
             std::to_string(k) + " and --c " + std::to_string(c);
    const int64_t x_count = int64_t(n) * h * w * c;
    const int64_t w_count = w_elems();
    const int64_t y_count = int64_t(n) * P * Q * k;
    if (x_count >= kLimit) return "input N*H*W*C = " + std::to_string(x_count) + " >= 2^31 elements (32-bit indexing limit)";
    if (w_count >= kLimit) return "filter elements = " + std::to_string(w_count) + " >= 2^31 (32-bit indexing limit)";
    if (y_count >= kLimit) return "output N*P*Q*K = " + std::to_string(y_count) + " >= 2^31 elements (32-bit indexing limit)";
    // Padding larger than the input is legal (just zeros). Kernels form ih = p*stride_h -
    // pad_h + r*dil_h in int32, with r up to R + 16 when a cursor runs past the reduction's
    // end: keep every such value far from overflow.
    const int64_t kCoordLimit = int64_t(1) << 30;
    if (int64_t(h) + 2 * int64_t(pad_h) + int64_t(dil_h) * (int64_t(r) + 16) >= kCoordLimit)
      return "--h + 2 * --pad-h + --dil-h * (--r + 16) must be < 2^30 (32-bit index arithmetic)";
    if (int64_t(w) + 2 * int64_t(pad_w) + int64_t(dil_w) * (int64_t(s) + 16) >= kCoordLimit)
      return "--w + 2 * --pad-w + --dil-w * (--s + 16) must be < 2^30 (32-bit index arithmetic)";
    p = int(P);
    q = int(Q);
    return "";
  }

  // attention: every size >= 1 and each of Q, K, V, O under 2^31 elements (int32 offsets). Which
  // head dims a kernel takes is the variant's business (it stops in variant_prepare), not a usage rule.
  std::string finalize_attention() {
    struct Field { const char* flag; int value; };
    const Field fields[] = {{"--b", attn.b}, {"--heads", attn.heads}, {"--s", attn.s}, {"--d", attn.d}};
    for (const Field& f : fields) {
      if (f.value < 1)
        return std::string(f.flag) + " must be >= 1 (got " + std::to_string(f.value) + ")";
    }
    if (attn.causal != 0 && attn.causal != 1)
      return "--causal must be 0 or 1 (got " + std::to_string(attn.causal) + ")";
    if (attn.elems() >= (int64_t(1) << 31))
      return "Q, K, V and O B*H*S*D = " + std::to_string(attn.elems()) +
             " >= 2^31 elements each (32-bit indexing limit)";
    return "";
  }

  __host__ __device__ int64_t x_elems() const {
    return op == OpKind::attention ? attn.elems() : int64_t(n) * h * w * c;
  }
  __host__ __device__ int64_t w_elems() const {
    switch (op) {
      case OpKind::attention: return 2 * attn.elems();  // K then V
      case OpKind::depthwise_conv2d: return int64_t(r) * s * c;
      case OpKind::separable_conv2d: return int64_t(r) * s * c + int64_t(k) * c;
      case OpKind::conv2d: break;
    }
    return int64_t(k) * r * s * c;
  }
  __host__ __device__ int64_t y_elems() const {
    return op == OpKind::attention ? attn.elems() : int64_t(n) * p * q * k;
  }
  size_t y_bytes() const { return size_t(y_elems()) * elem_bytes(elem); }
  // Implicit-GEMM sizes: M rows (output pixels), N columns (output channels), KG reduction.
  __host__ __device__ int gemm_m() const { return n * p * q; }
  __host__ __device__ int gemm_n() const { return k; }
  __host__ __device__ int gemm_k() const { return r * s * c; }
  double flops() const {
    if (op == OpKind::attention)  // Q·Kᵀ and P·V, 2·S·S·D each; half where causal (opbench's count)
      return 4.0 * double(attn.b) * attn.heads * double(attn.s) * attn.s * attn.d *
             (attn.causal ? 0.5 : 1.0);
    if (op == OpKind::depthwise_conv2d) return 2.0 * double(gemm_m()) * double(c) * double(r * s);
    return 2.0 * double(gemm_m()) * double(gemm_n()) * double(gemm_k());
  }
};

// ---------------------------------------------------------------------------------------------
// JSON building for "detail" / "launch_config". Keys are added in order; values are encoded
// here (strings escaped, non-finite numbers as null). Nested objects/arrays via add_raw().
// ---------------------------------------------------------------------------------------------
std::string json_escape(const std::string& s);     // defined in harness.cu
std::string json_number(double v);                 // "%.9g", or "null" if not finite

class Json {
 public:
  Json& add_int(const char* key, long long v) { return add_raw(key, std::to_string(v)); }
  Json& add_num(const char* key, double v) { return add_raw(key, json_number(v)); }
  Json& add_bool(const char* key, bool v) { return add_raw(key, v ? "true" : "false"); }
  Json& add_str(const char* key, const std::string& v) {
    return add_raw(key, "\"" + json_escape(v) + "\"");
  }
  Json& add_dim3(const char* key, dim3 d) {
    return add_raw(key, "[" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " +
                            std::to_string(d.z) + "]");
  }
  // value must already be valid JSON text (an object, array, number, ...)
  Json& add_raw(const char* key, const std::string& value) {
    body_ += (body_.empty() ? "\"" : ", \"") + json_escape(key) + "\": " + value;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

// The usual launch description: grid, block, dynamic + static shared memory bytes.
inline Json launch_json(dim3 grid, dim3 block, size_t smem_bytes) {
  Json j;
  j.add_dim3("grid", grid).add_dim3("block", block).add_int("smem_bytes", (long long)smem_bytes);
  return j;
}

// Fails clearly (instead of a cryptic "invalid configuration") when a grid exceeds limits.
inline void check_grid(dim3 grid, const char* kernel) {
  if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.x > 2147483647u || grid.y > 65535u ||
      grid.z > 65535u)
    FAIL("grid (%u, %u, %u) of kernel %s exceeds CUDA limits for this problem", grid.x, grid.y,
         grid.z, kernel);
}

// ---------------------------------------------------------------------------------------------
// The buffers of one problem instance on the device. The harness owns several copies (to
// rotate through in bench mode so data is not L2-resident) and passes them all to prepare.
// ---------------------------------------------------------------------------------------------
struct DeviceSet {  // all three hold ConvProblem::elem values
  const void* x;
  const void* w;
  void* y;
};

// Mean per-launch time in ms of `launch(i)` (i = running launch index, use it to rotate sets):
// `warmup` untimed launches, then `reps` launches between two events. For tuning only.
template <class LaunchFn>
float time_launches_ms(LaunchFn&& launch, int warmup, int reps, cudaStream_t stream) {
  int i = 0;
  for (int w = 0; w < warmup; ++w) launch(i++);
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  CHECK_CUDA(cudaEventRecord(start, stream));
  for (int r = 0; r < reps; ++r) launch(i++);
  CHECK_CUDA(cudaEventRecord(stop, stream));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0.f;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return ms / float(reps);
}

// max |got - ref| / max |ref| over all elements (inf if any element is non-finite in one and
// not bitwise equal in the other). Used by tuning variants to cross-check their candidates.
inline double max_rel_diff(const std::vector<float>& ref, const std::vector<float>& got) {
  double ref_max = 0.0, diff_max = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isfinite(ref[i])) ref_max = std::max(ref_max, double(std::fabs(ref[i])));
    if (std::memcmp(&ref[i], &got[i], sizeof(float)) == 0) continue;
    if (!std::isfinite(ref[i]) || !std::isfinite(got[i])) return INFINITY;
    diff_max = std::max(diff_max, std::fabs(double(ref[i]) - double(got[i])));
  }
  return ref_max > 0 ? diff_max / ref_max : diff_max;
}

// Multiprocessor count of the current device (queried once): grid sizing of split-K and persistent kernels.
inline int sm_count() {
  static int sms = 0;
  if (sms == 0) {
    int dev = 0;
    CHECK_CUDA(cudaGetDevice(&dev));
    CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  }
  return sms;
}

// The split-K slice counts the tuning variants try.
constexpr int kSplitCounts[] = {2, 3, 4, 6, 8, 12, 16};

// Split-K slice counts for a reduction of `k_tiles` tiles on a grid of `blocks` blocks: each of
// kSplitCounts, rounded to the count whose slices are as even as possible with none empty,
// kept if its slices hold >= min_tiles_per_split tiles and the split grid stays within
// max_blocks; increasing, no repeats.
inline std::vector<int> balanced_split_counts(int k_tiles, long long blocks,
                                              int min_tiles_per_split, long long max_blocks) {
  std::vector<int> out;
  int last = 1;
  for (int want : kSplitCounts) {
    const int per = (k_tiles + want - 1) / want;
    const int splits = (k_tiles + per - 1) / per;  // no empty slices
    if (splits <= last || per < min_tiles_per_split) continue;
    if (blocks * splits > max_blocks) continue;
    last = splits;
    out.push_back(splits);
  }
  return out;
}

// The float32 view of an X, Wt or Y pointer, for variants that implement ElemType::f32 only.
inline const float* as_f32(const void* p) { return static_cast<const float*>(p); }
inline float* as_f32(void* p) { return static_cast<float*>(p); }

// Stops (exit 1, naming the variant, the op and the type) unless prob.op is `op` and prob.elem is
// one of `supported`. Every variant calls it first thing in variant_prepare; the Python side reads
// the same from the variant file's "// opbench: op=... dtypes=..." line, so a mismatch shows up as
// this message.
inline void require_problem(const ConvProblem& prob, OpKind op,
                            std::initializer_list<ElemType> supported, const char* variant) {
  if (prob.op != op)
    FAIL("variant %s implements %s, not %s", variant, op_name(op), op_name(prob.op));
  for (ElemType e : supported)
    if (e == prob.elem) return;
  FAIL("variant %s does not implement element type %s", variant, elem_name(prob.elem));
}

// Copies a device output of `prob` (prob.elem values) to the host as float32.
inline std::vector<float> copy_output(const ConvProblem& prob, const void* y) {
  std::vector<float> h(size_t(prob.y_elems()));
  if (prob.elem == ElemType::f32) {
    CHECK_CUDA(cudaMemcpy(h.data(), y, prob.y_bytes(), cudaMemcpyDeviceToHost));
    return h;
  }
  std::vector<uint16_t> raw(h.size());
  CHECK_CUDA(cudaMemcpy(raw.data(), y, prob.y_bytes(), cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < h.size(); ++i) {
    if (prob.elem == ElemType::f16) {
      __half v;
      std::memcpy(&v, &raw[i], 2);
      h[i] = __half2float(v);
    } else {
      __nv_bfloat16 v;
      std::memcpy(&v, &raw[i], 2);
      h[i] = __bfloat162float(v);
    }
  }
  return h;
}

// Unit roundoff of Y's storage type (half an ulp at 1.0).
inline double y_unit_roundoff(const ConvProblem& prob) {
  return prob.elem == ElemType::f16 ? 0x1p-11 : prob.elem == ElemType::bf16 ? 0x1p-8 : 0x1p-24;
}

// Candidates of a tuning variant whose output differs from the first candidate's by more than
// this (relative to max |Y|) are rejected. Candidates differ only in float32 summation order
// (split-K partial sums, MMA accumulation order): far below 1e-4 of max |Y| on float32 Y, at
// most a rounding step of a 16-bit Y (two unit roundoffs). Wrong indexing gives differences of
// order 1.
inline double candidate_tolerance(const ConvProblem& prob) {
  return prob.elem == ElemType::f32 ? 1e-4 : 2.0 * y_unit_roundoff(prob);
}

// Measures the candidates of a tuning variant: each is cross-checked against the first candidate
// measured (Y poisoned with NaN, so an unwritten element is caught; one launch on sets[0]), then
// timed over the rotating buffer sets.
class CandidateCheck {
 public:
  struct Measured {
    float ms;         // mean per-launch time
    double rel_diff;  // max |Y - Y_first| / max |Y_first| (0 for the first candidate)
    bool valid;       // rel_diff <= candidate_tolerance(prob)
  };

  // `launch_on(set)` launches the candidate on one DeviceSet.
  template <class LaunchOn>
  Measured measure(const ConvProblem& prob, const DeviceSet* sets, int num_sets,
                   LaunchOn&& launch_on, int warmup, int reps, cudaStream_t stream) {
    Measured m{};
    m.rel_diff = rel_diff(prob, sets[0], launch_on, stream);
    m.valid = m.rel_diff <= candidate_tolerance(prob);
    m.ms = time_launches_ms([&](int i) { launch_on(sets[i % num_sets]); }, warmup, reps, stream);
    return m;
  }

 private:
  template <class LaunchOn>
  double rel_diff(const ConvProblem& prob, const DeviceSet& set, LaunchOn& launch_on,
                  cudaStream_t stream) {
    CHECK_CUDA(cudaMemsetAsync(set.y, 0xFF, prob.y_bytes(), stream));
    launch_on(set);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    std::vector<float> out = copy_output(prob, set.y);
    if (first_.empty()) {
      first_ = std::move(out);
      return 0.0;
    }
    return max_rel_diff(first_, out);
  }

  std::vector<float> first_;
};

// What tune_candidates() measured: every candidate in the order tried (timed[0] is the reference
// the others were checked against) and the one chosen.
template <class Cand>
struct Tuning {
  struct Timed {
    Cand cand;
    CandidateCheck::Measured m;
  };
  std::vector<Timed> timed;
  size_t best = 0;  // index into timed of the chosen candidate

  const Cand& choice() const { return timed[best].cand; }

  // detail.candidates: one object per candidate, in order: what `fields(json, cand)` adds (what
  // identifies the candidate), then "ms", `diff_key` (max rel diff against the first) and "valid".
  template <class Fields>
  std::string candidates_json(Fields&& fields,
                              const char* diff_key = "max_rel_diff_vs_first") const {
    std::string out = "[";
    for (size_t i = 0; i < timed.size(); ++i) {
      Json c;
      fields(c, timed[i].cand);
      c.add_num("ms", timed[i].m.ms)
          .add_num(diff_key, timed[i].m.rel_diff)
          .add_bool("valid", timed[i].m.valid);
      out += (i ? ", " : "") + c.str();
    }
    return out + "]";
  }
};

// The tuning loop of the variants that tune in variant_prepare(): measures every candidate in
// order with one CandidateCheck (its output checked against the first candidate's, then `warmup`
// untimed and `reps` timed launches over the rotating sets), warns about and rejects any whose
// output disagrees, and chooses the fastest valid one; on a tie the earlier candidate stays, and
// the first is chosen unless a valid one is strictly faster. `launch_on(cand, set)` launches one
// candidate on one DeviceSet; `name(cand)` (a std::string) names it in the warning.
template <class Cand, class LaunchOn, class Name>
Tuning<Cand> tune_candidates(const ConvProblem& prob, const DeviceSet* sets, int num_sets,
                             const std::vector<Cand>& candidates, LaunchOn&& launch_on,
                             Name&& name, int warmup, int reps, cudaStream_t stream) {
  if (candidates.empty()) FAIL("no tuning candidates for this problem");
  Tuning<Cand> t;
  CandidateCheck check;
  for (const Cand& cand : candidates) {
    const CandidateCheck::Measured m = check.measure(
        prob, sets, num_sets, [&](const DeviceSet& s) { launch_on(cand, s); }, warmup, reps,
        stream);
    if (!m.valid)
      std::fprintf(stderr,
                   "warning: candidate %s disagrees with the first candidate, %s (max rel diff "
                   "%g); rejected\n",
                   name(cand).c_str(), name(candidates[0]).c_str(), m.rel_diff);
    t.timed.push_back({cand, m});
    if (m.valid && m.ms < t.timed[t.best].m.ms) t.best = t.timed.size() - 1;
  }
  return t;
}

// float32 -> the element type, round-to-nearest-even (device code of 16-bit epilogues).
template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Two outputs rounded to a 16-bit T (f16 or bf16), packed low-first into one 32-bit word: one
// 4-byte store of an adjacent pair.
template <class T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  uint32_t bits;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&bits, &v, 4);
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "16-bit outputs are f16 or bf16");
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&bits, &v, 4);
  }
  return bits;
}

// ---------------------------------------------------------------------------------------------
// The variant interface. Exactly one file under cuda/variants/ defines these; the harness
// (cuda/common/harness.cu) owns everything else: arguments, .npy I/O, buffers, poisoning,
// timing and the JSON record. The call order is:
//   variant_workspace_bytes -> variant_prepare (once, untimed) -> variant_describe
//   -> variant_launch (many times; must be stream-ordered and self-contained: any zeroing it
//      relies on, e.g. for atomics, happens inside it).
// A serving harness (--serve) goes through that order once per request, for many problems in
// one process: variant_workspace_bytes and variant_prepare start afresh from the problem and
// keep nothing of an earlier one (buffers of a new request may reuse an old request's
// addresses).
// All may assume the problem passed ConvProblem::finalize() and that pointers are
// cudaMalloc'ed (256-byte aligned). Any error: CHECK_CUDA / FAIL (exit 1).
// ---------------------------------------------------------------------------------------------
const char* variant_name();
// Bytes of device scratch the launch needs (0 if none); allocated once by the harness.
size_t variant_workspace_bytes(const ConvProblem& prob);
// One-time selection/tuning outside timing. May launch and time on any of the sets (their
// outputs may be overwritten); must leave the device idle (synchronized) on return.
void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets,
                     void* workspace, cudaStream_t stream);
// Compute Y = conv2d(X, Wt) asynchronously on `stream`. Every launch followed by CHECK_LAUNCH.
// x, w and y point to prob.elem values; a variant given an element type it does not implement
// stops in variant_prepare through require_problem() below.
void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y,
                    void* workspace, cudaStream_t stream);
// Fill the "detail" (variant-specific choices) and "launch_config" (grid/block/smem of what
// variant_launch runs) JSON objects.
void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config);

// ---------------------------------------------------------------------------------------------
// .npy I/O (host only; defined in harness.cu). read_npy_f32 checks magic, version (1.x-3.x),
// dtype '<f4', C order, the exact shape and the data length; on any mismatch it returns false
// and sets `error` to a message naming the file and what is wrong.
// ---------------------------------------------------------------------------------------------
bool read_npy_f32(const std::string& path, const std::vector<int64_t>& expected_shape,
                  std::vector<float>& data, std::string& error);
bool write_npy_f32(const std::string& path, const std::vector<int64_t>& shape,
                   const float* data, std::string& error);
