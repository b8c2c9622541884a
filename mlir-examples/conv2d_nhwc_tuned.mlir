// conv2d_nhwc_tuned.mlir -- hand-written f16 conv2d for IREE's CUDA target with its lowering written in the
// source: a compilation_info attached to the named convolution instead of being matched by a transform library
// (the tuning specs under mlir-examples/tuning/ do the latter). The tiles are those the plain-form 3x3 class at
// output width 8..16 used before the `pqn` program form replaced it (docs/iree-cuda.md).
//
// @conv: 2x14x14x64 f16 input (NHWC), 3x3x64x64 f16 filter (HWCF), stride 1, zero padding 1 (tensor.pad to
// 2x16x16x64), f32 accumulation, output 2x14x14x64 f16 (the benchmark's contract: the output has the input's
// type): the accumulator is truncated elementwise, an epilogue IREE fuses into the convolution's dispatch.
// Lowering (IREE TileAndFuse, implicit GEMM over [n, oh, ow, oc, K = 3*3*64]):
//   workgroup tile 1 x 8 x 16 (M = 128 output pixels: 8 rows of a 16-wide, padded, output row) x 64 channels;
//   4 warps (workgroup_size 128), each 64 pixels x 32 channels = 4 x 4 mma.sync.m16n8k16 (f16 in, f32 acc) per
//   16-deep K step; K tile 64 (reduction 4 steps); inputs promoted to shared memory, 2 prefetch stages.
//
// Run: scripts/run_example.sh mlir-examples/conv2d_nhwc_tuned.mlir cuda  (compile-only without a GPU).
// With every input and filter element 1, each output element is 64 channels x (the 3x3 window's taps inside the
// image): 576 inside, 384 on an edge, 256 in a corner.
//
// RUN-FUNCTION: conv
// RUN-INPUT: 2x14x14x64xf16=1
// RUN-INPUT: 3x3x64x64xf16=1

#tuned = #iree_codegen.compilation_info<
  lowering_config = #iree_gpu.lowering_config<{
    mma_kind = #iree_gpu.mma_layout<NV_MMA_SYNC_F32_16x8x16_F16>,
    workgroup = [1, 8, 16, 64, 0], subgroup = [1, 4, 1, 4, 0], reduction = [0, 0, 0, 0, 4],
    padding = [1, 8, 16, 64, 64], padding_conv = [1, 8, 16, 64, 0, 0, 0],
    promote_operands = [0, 1], convert_acc_gemm}>,
  translation_info = #iree_codegen.translation_info<pipeline = #iree_gpu.pipeline<TileAndFuse>
    workgroup_size = [128, 1, 1] subgroup_size = 32,
    {gpu_pipeline_options = #iree_gpu.pipeline_options<prefetch_num_stages = 2,
      no_reduce_shared_memory_bank_conflicts = false, use_igemm_convolution = true>}>>

func.func @conv(%input: tensor<2x14x14x64xf16>, %filter: tensor<3x3x64x64xf16>) -> tensor<2x14x14x64xf16> {
  %zero = arith.constant 0.0 : f16
  %padded = tensor.pad %input low[0, 1, 1, 0] high[0, 1, 1, 0] {
  ^bb0(%n: index, %h: index, %w: index, %c: index):
    tensor.yield %zero : f16
  } : tensor<2x14x14x64xf16> to tensor<2x16x16x64xf16>
  %acc_zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<2x14x14x64xf32>
  %acc = linalg.fill ins(%acc_zero : f32) outs(%empty : tensor<2x14x14x64xf32>) -> tensor<2x14x14x64xf32>
  %conv = linalg.conv_2d_nhwc_hwcf
      {compilation_info = #tuned, dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
      ins(%padded, %filter : tensor<2x16x16x64xf16>, tensor<3x3x64x64xf16>)
      outs(%acc : tensor<2x14x14x64xf32>) -> tensor<2x14x14x64xf32>
  %out_empty = tensor.empty() : tensor<2x14x14x64xf16>
  %result = linalg.generic {indexing_maps = [affine_map<(n, h, w, c) -> (n, h, w, c)>,
                                             affine_map<(n, h, w, c) -> (n, h, w, c)>],
                            iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%conv : tensor<2x14x14x64xf32>) outs(%out_empty : tensor<2x14x14x64xf16>) {
  ^bb0(%a: f32, %b: f16):
    %t = arith.truncf %a : f32 to f16
    linalg.yield %t : f16
  } -> tensor<2x14x14x64xf16>
  return %result : tensor<2x14x14x64xf16>
}
