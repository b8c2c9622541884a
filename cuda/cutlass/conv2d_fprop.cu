// cutlass/conv2d_fprop.cu -- conv2d forward from the CUTLASS headers (backend `cutlass`).
//
// What it adds: the library's own implicit-GEMM tensor-core kernels as rows beside cuDNN and our
// kernels, built from the headers of the `nvidia-cutlass` wheel. One source, many variants: the
// kernel family, tile shape, warp shape and stages are -D macros that opbench/backends/cutlass.py
// passes from the config (backends.cutlass.variants), so a tile sweep is a set of variants.
//   OPBENCH_CUTLASS_SM=80  CUTLASS 2.x ImplicitGemmConvolution<DefaultConv2dFprop>: mma.sync,
//                          cp.async multistage, optimized iterators, 128-bit loads of X and Wt
//                          (C % 8 == 0 for f16/bf16, C % 4 == 0 for f32) and 128-bit stores of Y
//                          (K % 8 == 0 for a 16-bit Y, K % 4 == 0 for f32); config tile, warps
//                          and stages (TF32: tile K at most 32). Built for sm_90 and sm_80.
//   OPBENCH_CUTLASS_SM=90  CUTLASS 3.x ConvUniversal with the sm90 collective: TMA im2col loads,
//                          wgmma, KernelImplicitTmaWarpSpecializedSm90, TMA epilogue; config tile
//                          and stages (0 = as many as fit), cluster 1x1x1. Built for sm_90a. TMA
//                          needs the same 16-byte rows (C % 8 or C % 4, K % 8 or K % 4).
// Problems the main kernel cannot run (can_implement() fails: C = 3 stems, K not a multiple of
// the 16-byte Y row, ...) run the fallback, in both builds: analytic iterators, 1-element
// accesses of X, Wt and Y (for f16/bf16 the 2-stage pipelined kernel, since cp.async cannot move
// 2 bytes), a fixed 64x64x32 tile. The JSON detail names the kernel that ran and why the main
// one was passed over, and the backend puts the kernel's name in the record's timing method.
// Element types: X and Wt f16, bf16, or f32 computed as TF32 (judged with the tf32 tolerance);
// Y stored as the input type (f16, bf16 or f32, like cuDNN), the accumulator f32: the epilogue
// rounds alpha * accumulator to Y's type (to nearest); alpha = 1, beta = 0 (it never reads Y).
// Prediction and measured outcome: docs/perf-log.md, section "CUTLASS".
//
// opbench: dtypes=f16,bf16,f32 f32_math=tf32
#include "conv2d.cuh"

#include <memory>
#include <type_traits>

#include "cutlass/cutlass.h"
#include "cutlass/version.h"
// CUTLASS 2.x (both builds: the sm80 kernels and everyone's fallback)
#include "cutlass/conv/conv2d_problem_size.h"  // before the device header, which uses it
#include "cutlass/conv/device/implicit_gemm_convolution.h"
#include "cutlass/conv/kernel/default_conv2d_fprop.h"
#include "cutlass/epilogue/thread/linear_combination.h"
#include "cutlass/gemm/threadblock/threadblock_swizzle.h"

#if !defined(OPBENCH_CUTLASS_SM) || !defined(OPBENCH_VARIANT) || !defined(OPBENCH_TILE_M) ||   \
    !defined(OPBENCH_TILE_N) || !defined(OPBENCH_TILE_K) || !defined(OPBENCH_STAGES)
#error "build through opbench/backends/cutlass.py: it passes OPBENCH_CUTLASS_SM, OPBENCH_VARIANT, OPBENCH_TILE_{M,N,K} and OPBENCH_STAGES from the config"
#endif

namespace {

constexpr int kTileM = OPBENCH_TILE_M;   // CTA tile of the main kernel: output pixels,
constexpr int kTileN = OPBENCH_TILE_N;   //   output channels,
constexpr int kTileK = OPBENCH_TILE_K;   //   reduction elements (r, s, c) per main-loop step
constexpr int kStages = OPBENCH_STAGES;  // shared-memory pipeline depth (sm90: 0 = as many as fit)
static_assert(kTileM > 0 && kTileN > 0 && kTileK > 0, "tile sizes must be positive");

// The fallback for problems the main kernel cannot run: small tile, 1-element accesses.
constexpr int kFallbackTileM = 64, kFallbackTileN = 64, kFallbackTileK = 32;
constexpr int kFallbackWarpM = 32, kFallbackWarpN = 32, kFallbackWarpK = 32;  // 2 x 2 warps

// Elements of Y per 128-bit store (and per 16-byte TMA row unit): 8 for a 16-bit Y, 4 for float.
// Y is stored as the input element type (float for TF32 math), so the main kernels need K % this.
template <class ElementY>
constexpr int kYWide = 128 / cutlass::sizeof_bits<ElementY>::value;

// One kernel the launch can run: its name and choices for "detail", and the calls around it.
struct Candidate {
  virtual ~Candidate() = default;
  virtual std::string name() const = 0;
  virtual void describe(Json& detail) const = 0;
  // "" if the kernel can run the problem, else why not.
  virtual std::string can_implement(const ConvProblem& prob) const = 0;
  virtual size_t workspace_bytes(const ConvProblem& prob) const = 0;
  // Sets up the kernel's parameters for one (x, w, y) set (host work, untimed); returns its slot.
  virtual int prepare(const ConvProblem& prob, const void* x, const void* w, void* y,
                      void* workspace) = 0;
  virtual void launch(int slot, cudaStream_t stream) = 0;
  virtual Json launch_config(const ConvProblem& prob) const = 0;
};

std::string shape_str(int m, int n, int k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

std::string shape_json(int m, int n, int k) {
  return "[" + std::to_string(m) + ", " + std::to_string(n) + ", " + std::to_string(k) + "]";
}

std::string status_text(cutlass::Status status) { return cutlass::cutlassGetStatusString(status); }

// Storage type name (Y's type in "detail"), and the math of a kernel whose X and Wt hold Element.
template <class Element>
const char* storage_label() {
  if constexpr (std::is_same_v<Element, cutlass::half_t>) return "f16";
  else if constexpr (std::is_same_v<Element, cutlass::bfloat16_t>) return "bf16";
  else return "f32";
}

template <class Element>
const char* math_label() {
  return std::is_same_v<Element, float> ? "tf32" : storage_label<Element>();
}

// Owns one initialized CUTLASS operator per (x, w, y) buffer set (pointers and, for TMA, the
// descriptors live in its parameters), so a timed launch is one kernel launch and nothing else.
template <class Op>
class OpSlots {
 public:
  template <class Args>
  int add(const Args& args, void* workspace, const std::string& kernel) {
    ops_.push_back(std::make_unique<Op>());
    const cutlass::Status status = ops_.back()->initialize(args, workspace);
    if (status != cutlass::Status::kSuccess)
      FAIL("%s: initialize failed: %s", kernel.c_str(), status_text(status).c_str());
    return int(ops_.size()) - 1;
  }
  void run(int slot, cudaStream_t stream, const std::string& kernel) {
    const cutlass::Status status = ops_[size_t(slot)]->run(stream);
    CHECK_LAUNCH();
    if (status != cutlass::Status::kSuccess)
      FAIL("%s: run failed: %s", kernel.c_str(), status_text(status).c_str());
  }

 private:
  std::vector<std::unique_ptr<Op>> ops_;
};

// The calls every CUTLASS candidate makes the same way (CRTP): the workspace query, one operator
// per (x, w, y) set, the launch of one. Derived provides the device-level operator type `Op`, a
// static `arguments(prob, x, w, y)` and an `OpSlots<Op> slots_`, and befriends this class.
template <class Derived>
class OpCandidate : public Candidate {
 public:
  size_t workspace_bytes(const ConvProblem& prob) const final {
    return Derived::Op::get_workspace_size(Derived::arguments(prob, nullptr, nullptr, nullptr));
  }

  int prepare(const ConvProblem& prob, const void* x, const void* w, void* y,
              void* workspace) final {
    return self().slots_.add(Derived::arguments(prob, x, w, y), workspace, name());
  }

  void launch(int slot, cudaStream_t stream) final { self().slots_.run(slot, stream, name()); }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

// ---------------------------------------------------------------------------------------------
// CUTLASS 2.x: ImplicitGemmConvolution<DefaultConv2dFprop<...>>, sm80 tensor-op kernels.
// Element: storage of X, Wt and Y (float = TF32 math, float Y). Alignment: elements per global
// access of X and Wt. YAlignment: elements per store of Y. Stages: 2 = the pipelined kernel
// (loads through registers), > 2 = the cp.async multistage kernel.
// ---------------------------------------------------------------------------------------------
template <class Element, cutlass::conv::IteratorAlgorithm Algorithm, int Alignment, int YAlignment,
          int Stages, int TileM, int TileN, int TileK, int WarpM, int WarpN, int WarpK>
class Sm80Conv final
    : public OpCandidate<Sm80Conv<Element, Algorithm, Alignment, YAlignment, Stages, TileM, TileN,
                                  TileK, WarpM, WarpN, WarpK>> {
  friend class OpCandidate<Sm80Conv>;
  static_assert(TileM % WarpM == 0 && TileN % WarpN == 0 && TileK % WarpK == 0,
                "the CTA tile must be a whole number of warp tiles in M, N and K");
  static_assert(Stages >= 2, "the sm80 kernels need at least 2 stages");
  // mma.sync shapes: 16x8x16 for 16-bit inputs, 16x8x8 for TF32.
  static constexpr int kInstK = sizeof(Element) == 2 ? 16 : 8;
  using Instruction = cutlass::gemm::GemmShape<16, 8, kInstK>;
  using ElementY = Element;  // a 16-bit input gives a 16-bit Y (f32 accumulation); f32 stays f32
  // alpha * accumulator in float, rounded to ElementY, never reading the source (Y holds NaN
  // poison before every run).
  using Epilogue = cutlass::epilogue::thread::LinearCombination<
      ElementY, YAlignment, float, float, cutlass::epilogue::thread::ScaleType::OnlyAlphaScaling>;
  using Swizzle = cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<>;
  using Kernel = typename cutlass::conv::kernel::DefaultConv2dFprop<
      Element, cutlass::layout::TensorNHWC, Element, cutlass::layout::TensorNHWC, ElementY,
      cutlass::layout::TensorNHWC, float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
      cutlass::gemm::GemmShape<TileM, TileN, TileK>, cutlass::gemm::GemmShape<WarpM, WarpN, WarpK>,
      Instruction, Epilogue, Swizzle, Stages, cutlass::arch::OpMultiplyAdd, Algorithm,
      cutlass::conv::StrideSupport::kStrided, Alignment, Alignment>::Kernel;
  using Op = cutlass::conv::device::ImplicitGemmConvolution<Kernel>;
  static constexpr bool kOptimized = Algorithm == cutlass::conv::IteratorAlgorithm::kOptimized;

 public:
  std::string name() const override {
    return std::string("cutlass_sm80_tensorop_") + math_label<Element>() + "_i" +
           shape_str(16, 8, kInstK) + "_fprop_" + (kOptimized ? "optimized" : "analytic") + "_" +
           shape_str(TileM, TileN, TileK) + "_w" + shape_str(WarpM, WarpN, WarpK) + "_s" +
           std::to_string(Stages) + "_nhwc_align" + std::to_string(Alignment) + "_y" +
           std::to_string(YAlignment);
  }

  void describe(Json& detail) const override {
    detail.add_str("api", "cutlass::conv::device::ImplicitGemmConvolution<DefaultConv2dFprop>")
        .add_raw("tile", shape_json(TileM, TileN, TileK))
        .add_raw("warp", shape_json(WarpM, WarpN, WarpK))
        .add_raw("instruction", shape_json(16, 8, kInstK))
        .add_int("stages", Stages)
        .add_str("iterator_algorithm", kOptimized ? "optimized" : "analytic")
        .add_int("alignment_xw", Alignment)
        .add_int("alignment_y", YAlignment)
        .add_str("element_y", storage_label<ElementY>())
        .add_str("math", math_label<Element>());
  }

  std::string can_implement(const ConvProblem& prob) const override {
    if (prob.c % Alignment != 0)
      return "C = " + std::to_string(prob.c) + " is not a multiple of the " +
             std::to_string(Alignment) + "-element loads of X and Wt";
    if (prob.k % YAlignment != 0)
      return "K = " + std::to_string(prob.k) + " is not a multiple of the " +
             std::to_string(YAlignment) + "-element (" + storage_label<ElementY>() +
             ") stores of Y";
    const cutlass::Status status = Op::can_implement(arguments(prob, nullptr, nullptr, nullptr));
    if (status != cutlass::Status::kSuccess)
      return std::string("ImplicitGemmConvolution::can_implement: ") + status_text(status);
    return "";
  }

  Json launch_config(const ConvProblem& prob) const override {
    Swizzle swizzle;
    const dim3 grid = swizzle.get_grid_shape(swizzle.get_tiled_shape(
        cutlass::conv::Operator::kFprop, problem_size(prob), {TileM, TileN, TileK}, 1));
    return launch_json(grid, dim3(Kernel::kThreadCount), sizeof(typename Kernel::SharedStorage));
  }

 private:
  static cutlass::conv::Conv2dProblemSize problem_size(const ConvProblem& p) {
    return cutlass::conv::Conv2dProblemSize(
        p.n, p.h, p.w, p.c, p.k, p.r, p.s, p.p, p.q, p.pad_h, p.pad_w, p.stride_h, p.stride_w,
        p.dil_h, p.dil_w, cutlass::conv::Mode::kCrossCorrelation);
  }

  static typename Op::Arguments arguments(const ConvProblem& p, const void* x, const void* w,
                                          void* y) {
    using Layout = cutlass::layout::TensorNHWC;
    // CUTLASS's TensorRef takes non-const pointers; X and Wt are only read.
    auto* xe = const_cast<Element*>(static_cast<const Element*>(x));
    auto* we = const_cast<Element*>(static_cast<const Element*>(w));
    auto* ye = static_cast<ElementY*>(y);
    const Layout y_layout = Layout::packed({p.n, p.p, p.q, p.k});
    return typename Op::Arguments(problem_size(p), {xe, Layout::packed({p.n, p.h, p.w, p.c})},
                                  {we, Layout::packed({p.k, p.r, p.s, p.c})}, {ye, y_layout},
                                  {ye, y_layout}, typename Epilogue::Params(1.0f));
  }

  OpSlots<Op> slots_;
};

// 1-element accesses of X, Wt and Y: any C, any K. 16-bit: the 2-stage pipelined kernel
// (element-wise loads through registers: cp.async moves 4, 8 or 16 bytes, never 2). f32: 4-byte
// cp.async works, and CUTLASS's TF32 warp MMA only pairs with the multistage kernel, so 3 stages.
template <class Element>
using Fallback = Sm80Conv<Element, cutlass::conv::IteratorAlgorithm::kAnalytic, 1, 1,
                          sizeof(Element) == 2 ? 2 : 3, kFallbackTileM, kFallbackTileN, kFallbackTileK, kFallbackWarpM,
                          kFallbackWarpN, kFallbackWarpK>;

}  // namespace

#if OPBENCH_CUTLASS_SM == 80
#if !defined(OPBENCH_WARP_M) || !defined(OPBENCH_WARP_N) || !defined(OPBENCH_WARP_K)
#error "sm80 kernels need OPBENCH_WARP_{M,N,K} (the config's warps)"
#endif

namespace {

constexpr int kWarpM = OPBENCH_WARP_M;  // warp tile; (kTileM/kWarpM) x (kTileN/kWarpN) warps
constexpr int kWarpN = OPBENCH_WARP_N;
constexpr int kWarpK = OPBENCH_WARP_K;

// CUTLASS's sm80 shared-memory layouts take rows of at most 128 bytes along K: 64 16-bit elements
// or 32 TF32 ones. The TF32 kernel clamps the config's K to that (detail.tile shows what ran).
template <class Element>
constexpr int kMaxK = 1024 / cutlass::sizeof_bits<Element>::value;

template <class Element>
using Main = Sm80Conv<Element, cutlass::conv::IteratorAlgorithm::kOptimized,
                      128 / cutlass::sizeof_bits<Element>::value, kYWide<Element>, kStages,
                      kTileM, kTileN, std::min(kTileK, kMaxK<Element>), kWarpM, kWarpN,
                      std::min(kWarpK, kMaxK<Element>)>;

}  // namespace

#elif OPBENCH_CUTLASS_SM == 90
// ---------------------------------------------------------------------------------------------
// CUTLASS 3.x: ConvUniversal with the sm90 implicit-GEMM collective (TMA im2col + wgmma). The
// conv builder only offers KernelImplicitTmaWarpSpecializedSm90 (its dispatch policy rejects the
// cooperative and ping-pong schedules: "Persistent schedules not support for conv yet").
// ---------------------------------------------------------------------------------------------
#include "cute/tensor.hpp"
#include "cutlass/kernel_hardware_info.hpp"  // before the collectives, which use it
#include "cutlass/conv/collective/collective_builder.hpp"
#include "cutlass/conv/convnd_problem_shape.hpp"
#include "cutlass/conv/device/conv_universal_adapter.hpp"
#include "cutlass/conv/dispatch_policy.hpp"
#include "cutlass/conv/kernel/conv_universal.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"

#if defined(OPBENCH_WARP_M) || defined(OPBENCH_WARP_N) || defined(OPBENCH_WARP_K)
#error "the sm90 kernel takes no warp shape (one consumer warpgroup per CTA tile)"
#endif

namespace {

static_assert(kStages == 0 || kStages >= 2, "sm90 stages: 0 (as many as fit) or >= 2");

using Sm90TileShape =
    cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>, cute::Shape<cute::Int<kTileK>>>;
using Sm90ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;

// The epilogue: D = alpha * accumulator (float), rounded to ElementY and stored through TMA
// (16-byte rows: kYWide<ElementY> elements), with no source tensor (void C), so Y is only written.
template <class ElementY>
using Sm90Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Sm90TileShape, Sm90ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, float, float, void,
    cutlass::layout::TensorNHWC, kYWide<ElementY>, ElementY, cutlass::layout::TensorNHWC,
    kYWide<ElementY>, cutlass::epilogue::TmaWarpSpecialized>::CollectiveOp;

// Its shared memory (the staging of Y's tile, so per Y type), taken with concrete types outside
// any template: nvcc's host pass garbles sizeof(its SharedStorage) when the type is a dependent
// one.
constexpr int kSm90EpilogueSmemF32 = int(sizeof(Sm90Epilogue<float>::SharedStorage));
constexpr int kSm90EpilogueSmemF16 = int(sizeof(Sm90Epilogue<cutlass::half_t>::SharedStorage));
constexpr int kSm90EpilogueSmemBF16 =
    int(sizeof(Sm90Epilogue<cutlass::bfloat16_t>::SharedStorage));

template <class ElementY>
constexpr int sm90_epilogue_smem_bytes() {
  if constexpr (std::is_same_v<ElementY, cutlass::half_t>) return kSm90EpilogueSmemF16;
  else if constexpr (std::is_same_v<ElementY, cutlass::bfloat16_t>) return kSm90EpilogueSmemBF16;
  else {
    static_assert(std::is_same_v<ElementY, float>, "Y is f16, bf16 or f32");
    return kSm90EpilogueSmemF32;
  }
}

// Stages: as many as fit beside the epilogue's shared memory (config 0), or the config's count.
template <class ElementY>
using Sm90StageCount = std::conditional_t<
    kStages == 0,
    cutlass::conv::collective::StageCountAutoCarveout<sm90_epilogue_smem_bytes<ElementY>()>,
    cutlass::conv::collective::StageCount<(kStages == 0 ? 2 : kStages)>>;

template <class Element>
class Sm90Conv final : public OpCandidate<Sm90Conv<Element>> {
  friend class OpCandidate<Sm90Conv>;
  static constexpr int kAlignment = 128 / cutlass::sizeof_bits<Element>::value;  // TMA: 16 bytes
  using ElementY = Element;  // a 16-bit input gives a 16-bit Y (f32 accumulation); f32 stays f32
  static constexpr int kYAlignment = kYWide<ElementY>;
  using Epilogue = Sm90Epilogue<ElementY>;
  using MainloopCollective = typename cutlass::conv::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cutlass::conv::Operator::kFprop,
      Element, cutlass::layout::TensorNHWC, kAlignment, Element, cutlass::layout::TensorNHWC,
      kAlignment, float, Sm90TileShape, Sm90ClusterShape, Sm90StageCount<ElementY>,
      cutlass::conv::KernelImplicitTmaWarpSpecializedSm90>::CollectiveOp;

  using ProblemShape = cutlass::conv::ConvProblemShape<cutlass::conv::Operator::kFprop, 2>;
  using Kernel = cutlass::conv::kernel::ConvUniversal<ProblemShape, MainloopCollective, Epilogue>;
  using Op = cutlass::conv::device::ConvUniversalAdapter<Kernel>;
  static constexpr int kPipelineStages = MainloopCollective::DispatchPolicy::Stages;

 public:
  std::string name() const override {
    return std::string("cutlass3x_sm90_tensorop_") + math_label<Element>() +
           "_fprop_implicit_tma_warpspecialized_" + shape_str(kTileM, kTileN, kTileK) +
           "_1x1x1_s" + std::to_string(kPipelineStages) + "_nhwc_align" +
           std::to_string(kAlignment);
  }

  void describe(Json& detail) const override {
    detail.add_str("api", "cutlass::conv::device::ConvUniversalAdapter<ConvUniversal<CollectiveConv>>")
        .add_str("schedule", "KernelImplicitTmaWarpSpecializedSm90")
        .add_raw("tile", shape_json(kTileM, kTileN, kTileK))
        .add_raw("cluster", "[1, 1, 1]")
        .add_int("stages", kPipelineStages)
        .add_str("stages_from", kStages == 0 ? "auto: as many as fit in shared memory" : "config")
        .add_str("iterator_algorithm", "tma_im2col")
        .add_int("alignment_xw", kAlignment)
        .add_int("alignment_y", kYAlignment)
        .add_str("element_y", storage_label<ElementY>())
        .add_str("math", math_label<Element>());
  }

  std::string can_implement(const ConvProblem& prob) const override {
    if (prob.c % kAlignment != 0)
      return "TMA needs 16-byte rows of X and Wt: C = " + std::to_string(prob.c) +
             " is not a multiple of " + std::to_string(kAlignment);
    if (prob.k % kYAlignment != 0)
      return std::string("the TMA epilogue needs 16-byte rows of Y (") +
             storage_label<ElementY>() + "): K = " + std::to_string(prob.k) +
             " is not a multiple of " + std::to_string(kYAlignment);
    const cutlass::Status status = Op::can_implement(arguments(prob, nullptr, nullptr, nullptr));
    if (status != cutlass::Status::kSuccess)
      return std::string("ConvUniversalAdapter::can_implement: ") + status_text(status) +
             " (TMA im2col limits: padding <= 256, (R-1)*dil_h and (S-1)*dil_w < 255, corner "
             "offsets within [-128, 127])";
    return "";
  }

  Json launch_config(const ConvProblem& prob) const override {
    const auto params =
        Kernel::to_underlying_arguments(arguments(prob, nullptr, nullptr, nullptr), nullptr);
    return launch_json(Kernel::get_grid_shape(params), Kernel::get_block_shape(),
                       Kernel::SharedStorageSize);
  }

 private:
  static typename Op::Arguments arguments(const ConvProblem& p, const void* x, const void* w,
                                          void* y) {
    // Activation [N, H, W, C] and filter [K, R, S, C], packed; the same padding on both sides.
    const ProblemShape shape(cutlass::conv::Mode::kCrossCorrelation, {p.n, p.h, p.w, p.c},
                             {p.k, p.r, p.s, p.c}, {p.pad_h, p.pad_w}, {p.pad_h, p.pad_w},
                             {p.stride_h, p.stride_w}, {p.dil_h, p.dil_w}, 1);
    // Y [N, P, Q, K] packed: the strides of its (q, p, n) modes, as CUTLASS's own testbed sets them.
    typename Kernel::StrideD stride_y{};
    cute::for_each(cute::make_seq<cute::rank<0>(typename Kernel::StrideD{})>{}, [&](auto i) {
      cute::get<0, i>(stride_y) = shape.stride_C[ProblemShape::RankT - 2 - i];
    });
    cutlass::KernelHardwareInfo hw_info;
    CHECK_CUDA(cudaGetDevice(&hw_info.device_id));
    hw_info.sm_count =
        cutlass::KernelHardwareInfo::query_device_multiprocessor_count(hw_info.device_id);
    typename Op::Arguments args(
        shape, {static_cast<const Element*>(x), static_cast<const Element*>(w)},
        {{}, nullptr, stride_y, static_cast<ElementY*>(y), stride_y}, hw_info);
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    return args;
  }

  OpSlots<Op> slots_;
};

template <class Element>
using Main = Sm90Conv<Element>;

}  // namespace

#else
#error "OPBENCH_CUTLASS_SM must be 80 or 90"
#endif

// ---------------------------------------------------------------------------------------------
// The variant interface: the main kernel if it can run the problem, else the fallback; set up
// for every buffer set in prepare (untimed), so each launch only passes that set's parameters.
// ---------------------------------------------------------------------------------------------
namespace {

struct Slot {
  const void* x;
  const void* w;
  void* y;
  int index;
};

struct State {
  std::vector<std::unique_ptr<Candidate>> candidates;  // main kernel, fallback
  Candidate* chosen = nullptr;
  std::string passed_over;  // why the main kernel did not run ("" if it did)
  std::vector<Slot> slots;
  void* workspace = nullptr;
};

State& state() {
  static State s;
  return s;
}

template <class Element>
std::vector<std::unique_ptr<Candidate>> candidates_for() {
  std::vector<std::unique_ptr<Candidate>> list;
  list.push_back(std::make_unique<Main<Element>>());
  list.push_back(std::make_unique<Fallback<Element>>());
  return list;
}

void choose(const ConvProblem& prob) {
  State& s = state();
  if (s.chosen != nullptr) return;
  switch (prob.elem) {
    case ElemType::f16: s.candidates = candidates_for<cutlass::half_t>(); break;
    case ElemType::bf16: s.candidates = candidates_for<cutlass::bfloat16_t>(); break;
    case ElemType::f32: s.candidates = candidates_for<float>(); break;
  }
  std::string reasons;
  for (auto& candidate : s.candidates) {
    const std::string why = candidate->can_implement(prob);
    if (why.empty()) {
      s.chosen = candidate.get();
      return;
    }
    if (s.passed_over.empty()) s.passed_over = candidate->name() + ": " + why;
    reasons += "\n  " + candidate->name() + ": " + why;
  }
  FAIL("variant %s: no CUTLASS kernel of this build can run this problem (%s):%s", OPBENCH_VARIANT,
       elem_name(prob.elem), reasons.c_str());
}

int slot_of(const ConvProblem& prob, const void* x, const void* w, void* y) {
  State& s = state();
  for (const Slot& slot : s.slots)
    if (slot.x == x && slot.w == w && slot.y == y) return slot.index;
  const int index = s.chosen->prepare(prob, x, w, y, s.workspace);
  s.slots.push_back({x, w, y, index});
  return index;
}

}  // namespace

const char* variant_name() { return OPBENCH_VARIANT; }

size_t variant_workspace_bytes(const ConvProblem& prob) {
  require_problem(prob, OpKind::conv2d, {ElemType::f16, ElemType::bf16, ElemType::f32},
                  variant_name());
  state() = State{};  // a new problem (a serving harness answers many): choose and prepare afresh
  choose(prob);
  return state().chosen->workspace_bytes(prob);
}

void variant_prepare(const ConvProblem& prob, const DeviceSet* sets, int num_sets,
                     void* workspace, cudaStream_t) {
  require_problem(prob, OpKind::conv2d, {ElemType::f16, ElemType::bf16, ElemType::f32},
                  variant_name());
  choose(prob);
  state().workspace = workspace;
  for (int i = 0; i < num_sets; ++i) slot_of(prob, sets[i].x, sets[i].w, sets[i].y);
  CHECK_CUDA(cudaDeviceSynchronize());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y,
                    void* workspace, cudaStream_t stream) {
  State& s = state();
  if (workspace != s.workspace) FAIL("variant %s: workspace moved after prepare", OPBENCH_VARIANT);
  s.chosen->launch(slot_of(prob, x, w, y), stream);
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  const State& s = state();
  detail.add_str("kernel", s.chosen->name());
  detail.add_bool("fallback", !s.passed_over.empty());
  if (!s.passed_over.empty()) detail.add_str("main_kernel_passed_over", s.passed_over);
  s.chosen->describe(detail);
  detail.add_str("cutlass_version", std::to_string(CUTLASS_MAJOR) + "." +
                                        std::to_string(CUTLASS_MINOR) + "." +
                                        std::to_string(CUTLASS_PATCH));
  launch_config = s.chosen->launch_config(prob);
}
