// EXPERIMENT, NOT ADOPTED (2026-11-28; docs/iree-cuda.md, "Our own codegen schedule"). Not used by any config.
//
// A whole transform-dialect codegen schedule of ours for the matmul that IREE makes of a stride-1 1x1 conv2d
// (f16 in, f32 accumulate, f16 out), as one instance: 128x64 workgroup tiles, 2x2 warps of 64x32, K step 32,
// 3 cp.async stages; for ResNet-50's l3_1x1_512_256 at batch 16 ([12544 x 512] x [256 x 512]^T).
//   iree-compile conv.mlir --iree-hal-target-device=cuda --iree-cuda-target=sm_80 \
//     --iree-codegen-transform-dialect-library=docs/experiments/iree_mma_sync_schedule.mlir
// What it does: @__kernel_config gives the dispatch IREE's TransformDialectCodegen pipeline with
// @mma_sync_matmul as its codegen spec; that tiles, promotes both operands to shared memory, vectorizes,
// bufferizes, maps to workgroups / warps / threads, converts vector.contract to nvgpu.mma.sync with ldmatrix,
// turns the shared-memory copies into cp.async and pipelines them 3 deep. The PTX has what was meant (per K step
// and warp: 32 mma.sync.m16n8k16, 12 ldmatrix.x4, 6 cp.async; ptxas: 128 registers, no spills).
// What it gives on an H200: WRONG results (relative error 0.99-1.00 against float64, every layer and tile
// configuration, also without the pipeline, without cp.async, without bank padding and with f32 output straight
// from the fragments), and no speed-up: the fastest of 10 tile configurations per 1x1 layer is 0.97x the tuned
// TileAndFuse rows (geometric mean over 12 layers). Kept so the next attempt starts from a schedule that compiles.
module @td attributes {transform.with_named_sequence} {
  transform.named_sequence @cleanup(%func: !transform.any_op {transform.readonly}) {
    transform.apply_patterns to %func {
      transform.apply_patterns.linalg.tiling_canonicalization
      transform.apply_patterns.scf.for_loop_canonicalization
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.iree.apply_licm %func : !transform.any_op
    transform.apply_cse to %func : !transform.any_op
    transform.yield
  }

  transform.named_sequence @mma_sync_matmul_tile(%func: !transform.any_op {transform.consumed}) {
    %fill = transform.structured.match ops{["linalg.fill"]} in %func : (!transform.any_op) -> !transform.any_op
    %generics = transform.structured.match ops{["linalg.generic"]} in %func : (!transform.any_op) -> !transform.any_op
    %mm, %trunc = transform.split_handle %generics : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %trunc_wg, %wg = transform.structured.tile_using_forall %trunc tile_sizes [128, 64]
        (mapping = [#gpu.block<y>, #gpu.block<x>]) : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.iree.populate_workgroup_count_region_using_num_threads_slice %wg : (!transform.any_op) -> ()
    %mm_wg, %wg2 = transform.structured.fuse_into_containing_op %mm into %wg : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    %fill_wg, %wg3 = transform.structured.fuse_into_containing_op %fill into %wg2 : (!transform.any_op, !transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.include @cleanup failures(propagate) (%func) : (!transform.any_op) -> ()
    %mm_k, %kloop = transform.structured.tile_using_for %mm_wg tile_sizes [0, 0, 32] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %mm_p, %alloc_a, %alloc_b = transform.iree.promote_operands %mm_k [0, 1] : (!transform.any_op) -> (!transform.any_op, !transform.any_op, !transform.any_op)
    %mm_w, %wf = transform.structured.tile_using_forall %mm_p tile_sizes [64, 32]
        (mapping = [#gpu.warp<y>, #gpu.warp<x>]) : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %fill_w, %wf2 = transform.structured.tile_using_forall %fill_wg tile_sizes [64, 32]
        (mapping = [#gpu.warp<y>, #gpu.warp<x>]) : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %trunc_t, %tf = transform.structured.tile_using_forall %trunc_wg num_threads [128, 1]
        (mapping = [#gpu.thread<linear_dim_1>, #gpu.thread<linear_dim_0>]) : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.include @cleanup failures(propagate) (%func) : (!transform.any_op) -> ()
    %func_v = transform.structured.vectorize_children_and_apply_patterns %func : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %func_v {
      transform.apply_patterns.vector.fold_arith_extension
    } : !transform.any_op
    transform.include @cleanup failures(propagate) (%func_v) : (!transform.any_op) -> ()
    transform.yield
  }
  transform.named_sequence @mma_sync_matmul(%root: !transform.any_op {transform.readonly}) {
    %func = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.include @mma_sync_matmul_tile failures(propagate) (%func) : (!transform.any_op) -> ()
    %func_v = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.iree.eliminate_empty_tensors %func_v : (!transform.any_op) -> ()
    %func_m = transform.iree.bufferize <{target_gpu}> %func_v : (!transform.any_op) -> !transform.any_op
    transform.iree.forall_to_workgroup %func_m : (!transform.any_op) -> ()
    transform.iree.map_nested_forall_to_gpu_threads %func_m workgroup_dims = [64, 2, 1] subgroup_size = 32 : (!transform.any_op) -> ()
    transform.include @cleanup failures(propagate) (%func_m) : (!transform.any_op) -> ()
    transform.include @cleanup failures(propagate) (%func_m) : (!transform.any_op) -> ()
    transform.iree.gpu_distribute_shared_memory_copy %func_m : (!transform.any_op) -> ()
    transform.include @cleanup failures(propagate) (%func_m) : (!transform.any_op) -> ()
    transform.iree.hoist_static_alloc %func_m : (!transform.any_op) -> ()
    transform.iree.reduce_shared_memory_bank_conflicts %func_m <{padding_size_bits = 128 : i64}> : (!transform.any_op) -> ()
    transform.apply_patterns to %func_m {
      transform.apply_patterns.memref.fold_memref_alias_ops
    } : !transform.any_op
    transform.include @cleanup failures(propagate) (%func_m) : (!transform.any_op) -> ()
    transform.apply_patterns to %func_m {
      transform.apply_patterns.iree.unroll_vectors_gpu_mma_sync
    } : !transform.any_op
    transform.include @cleanup failures(propagate) (%func_m) : (!transform.any_op) -> ()
    %for = transform.structured.match ops{["scf.for"]} in %func_m : (!transform.any_op) -> !transform.op<"scf.for">
    transform.iree.synchronize_loop %for : (!transform.op<"scf.for">) -> ()
    %func_h = transform.structured.hoist_redundant_vector_transfers %func_m : (!transform.any_op) -> !transform.any_op
    transform.include @cleanup failures(propagate) (%func_h) : (!transform.any_op) -> ()
    %func_o = transform.apply_registered_pass "iree-codegen-optimize-vector-transfer" to %func_h : (!transform.any_op) -> !transform.any_op
    transform.include @cleanup failures(propagate) (%func_o) : (!transform.any_op) -> ()
    transform.memref.erase_dead_alloc_and_stores %func_o : (!transform.any_op) -> ()
    transform.include @cleanup failures(propagate) (%func_o) : (!transform.any_op) -> ()
    %func_c = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.iree.vector.vector_to_mma_conversion %func_c <{use_mma_sync}> : (!transform.any_op) -> ()
    %func_b = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    %func_x = transform.iree.eliminate_gpu_barriers %func_b : (!transform.any_op) -> !transform.any_op
    %func_y = transform.structured.match ops{["func.func"]} in %root : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %func_y {
      transform.apply_patterns.memref.fold_memref_alias_ops
    } : !transform.any_op
    %allocs = transform.structured.match ops{["memref.alloc"]} in %func_y : (!transform.any_op) -> !transform.op<"memref.alloc">
    %mb = transform.memref.multibuffer %allocs <{factor = 3 : i64, skip_analysis}> : (!transform.op<"memref.alloc">) -> !transform.any_op
    transform.apply_patterns to %func_y {
      transform.apply_patterns.vector.transfer_to_scf full_unroll = true
    } : !transform.any_op
    transform.iree.create_async_groups %func_y <{use_mma_sync}> : (!transform.any_op) -> ()
    transform.include @cleanup failures(propagate) (%func_y) : (!transform.any_op) -> ()
    %for2 = transform.structured.match ops{["scf.for"]} in %func_y : (!transform.any_op) -> !transform.op<"scf.for">
    %pipelined = transform.iree.pipeline_shared_memory_copies %for2 <{depth = 3 : i64}> : (!transform.op<"scf.for">) -> !transform.op<"scf.for">
    transform.apply_patterns to %func_y {
      transform.apply_patterns.vector.lower_masks
    } : !transform.any_op
    transform.apply_patterns to %func_y {
      transform.apply_patterns.vector.materialize_masks
    } : !transform.any_op
    transform.include @cleanup failures(propagate) (%func_y) : (!transform.any_op) -> ()
    transform.yield
  }

  transform.named_sequence @set_strategy(%op: !transform.any_op {transform.readonly}) {
    %func = transform.get_parent_op %op <{op_name = "func.func"}> : (!transform.any_op) -> !transform.any_op
    %info = transform.param.constant #iree_codegen.translation_info<pipeline = #iree_codegen.transform_dialect_codegen codegen_spec = @mma_sync_matmul> -> !transform.any_param
    transform.annotate %func "translation_info" = %info : !transform.any_op, !transform.any_param
    transform.yield
  }
  transform.named_sequence @match_mm(%op: !transform.any_op {transform.readonly}) -> !transform.any_op {
    transform.match.operation_name %op ["linalg.generic"] : !transform.any_op
    %m = transform.match.structured %op : (!transform.any_op) -> !transform.any_op {
    ^bb0(%s: !transform.any_op):
      %loops = transform.match.structured.rank %s : (!transform.any_op) -> !transform.param<i64>
      %want = transform.param.constant 3 : i64 -> !transform.param<i64>
      transform.match.param.cmpi eq %loops, %want : !transform.param<i64>
      transform.match.structured.yield %s : !transform.any_op
    }
    transform.yield %op : !transform.any_op
  }
  transform.named_sequence @__kernel_config(%variant: !transform.any_op {transform.consumed}) -> !transform.any_op
      attributes {iree_codegen.tuning_spec_entrypoint} {
    %r = transform.foreach_match in %variant @match_mm -> @set_strategy : (!transform.any_op) -> !transform.any_op
    transform.yield %r : !transform.any_op
  }
}
