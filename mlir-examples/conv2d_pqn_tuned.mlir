// conv2d_pqn_tuned.mlir -- hand-written f16 conv2d for IREE's CUDA target in the `pqn` program form (the form the
// workflow's `tuned` rows compile for 3x3 layers: opbench/mlirgen.py, ProgramForm; docs/iree-cuda.md, "Program
// forms"), with its lowering written in the source as a compilation_info: the `conv_q14_pqn` tiles.
//
// @conv: 16x7x7x64 f16 input (NHWC), 64x3x3x64 f16 filter (KRSC), stride 1, zero padding 1, f32 accumulation,
// output 16x7x7x64 f16. The convolution is a linalg.generic whose output pixels are iterated (p, q, n): the batch
// is innermost, so IREE's implicit GEMM puts the 16 images of one output pixel in the 16 rows of each
// mma.sync.m16n8k16 (the named NHWC op puts an output row there: 7 of 16 rows real for this 7-wide output). The
// f32 result is stored [p, q, n, k]; the elementwise truncation to f16 reads it in that order and writes NHWC, an
// epilogue IREE fuses into the convolution's dispatch.
// Lowering (IREE TileAndFuse, implicit GEMM over [p, q, n, k, K = 3*3*64]): workgroup tile 1 x 2 pixels x 16 images
// (M = 32) x 64 channels; 4 warps (workgroup_size 128), each 16 images x 32 channels = 4 mma.sync per 16-deep K
// step; K tile 64; inputs promoted to shared memory, 2 prefetch stages.
//
// Run: scripts/run_example.sh mlir-examples/conv2d_pqn_tuned.mlir cuda  (compile-only without a GPU). The script
// compiles without padding fusion, so the zero padding is a dispatch of its own; with
// --iree-dispatch-creation-enable-fuse-padding-into-linalg-consumer-ops (the `tuned` variant's flag) the whole
// program is one dispatch.
// With every input and filter element 1, each output element is 64 channels x (the 3x3 window's taps inside the
// image): 576 inside, 384 on an edge, 256 in a corner.
//
// RUN-FUNCTION: conv
// RUN-INPUT: 16x7x7x64xf16=1
// RUN-INPUT: 64x3x3x64xf16=1

#tuned = #iree_codegen.compilation_info<
  lowering_config = #iree_gpu.lowering_config<{
    mma_kind = #iree_gpu.mma_layout<NV_MMA_SYNC_F32_16x8x16_F16>,
    workgroup = [1, 2, 16, 64, 0], subgroup = [1, 1, 1, 4, 0], reduction = [0, 0, 0, 0, 4],
    padding = [1, 2, 16, 64, 64], padding_conv = [1, 2, 16, 64, 0, 0, 0],
    promote_operands = [0, 1], convert_acc_gemm}>,
  translation_info = #iree_codegen.translation_info<pipeline = #iree_gpu.pipeline<TileAndFuse>
    workgroup_size = [128, 1, 1] subgroup_size = 32,
    {gpu_pipeline_options = #iree_gpu.pipeline_options<prefetch_num_stages = 2,
      no_reduce_shared_memory_bank_conflicts = false, use_igemm_convolution = true>}>>

func.func @conv(%input: tensor<16x7x7x64xf16>, %filter: tensor<64x3x3x64xf16>) -> tensor<16x7x7x64xf16> {
  %zero = arith.constant 0.0 : f16
  %padded = tensor.pad %input low[0, 1, 1, 0] high[0, 1, 1, 0] {
  ^bb0(%n: index, %h: index, %w: index, %c: index):
    tensor.yield %zero : f16
  } : tensor<16x7x7x64xf16> to tensor<16x9x9x64xf16>
  %acc_zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<7x7x16x64xf32>
  %acc = linalg.fill ins(%acc_zero : f32) outs(%empty : tensor<7x7x16x64xf32>) -> tensor<7x7x16x64xf32>
  %conv = linalg.generic {indexing_maps = [affine_map<(p, q, n, k, r, s, c) -> (n, p + r, q + s, c)>,
                                           affine_map<(p, q, n, k, r, s, c) -> (k, r, s, c)>,
                                           affine_map<(p, q, n, k, r, s, c) -> (p, q, n, k)>],
                          iterator_types = ["parallel", "parallel", "parallel", "parallel",
                                            "reduction", "reduction", "reduction"],
                          compilation_info = #tuned}
      ins(%padded, %filter : tensor<16x9x9x64xf16>, tensor<64x3x3x64xf16>)
      outs(%acc : tensor<7x7x16x64xf32>) {
  ^bb0(%x: f16, %w: f16, %a: f32):
    %xe = arith.extf %x : f16 to f32
    %we = arith.extf %w : f16 to f32
    %m = arith.mulf %xe, %we : f32
    %sum = arith.addf %a, %m : f32
    linalg.yield %sum : f32
  } -> tensor<7x7x16x64xf32>
  %out_empty = tensor.empty() : tensor<16x7x7x64xf16>
  %result = linalg.generic {indexing_maps = [affine_map<(n, p, q, k) -> (p, q, n, k)>,
                                             affine_map<(n, p, q, k) -> (n, p, q, k)>],
                            iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%conv : tensor<7x7x16x64xf32>) outs(%out_empty : tensor<16x7x7x64xf16>) {
  ^bb0(%a: f32, %b: f16):
    %t = arith.truncf %a : f32 to f16
    linalg.yield %t : f16
  } -> tensor<16x7x7x64xf16>
  return %result : tensor<16x7x7x64xf16>
}
