// depthwise_smem.cu -- depthwise variant 2: the block's input tile (with its halo) in shared
// memory, several channels per access, a sliding window down the rows in registers.
// opbench: op=depthwise_conv2d dtypes=f32,f16,bf16
//
// Adds over depthwise_naive: each input element of a block's tile is read from DRAM or L2 once,
// not R*S times, V channels per access, and each output row's window is summed from registers
// (the tiling and the kernel: depthwise_tile.cuh). The tile is copied through registers: a
// thread loads one vector, stores it to shared memory, loads the next.
#include "depthwise_tile.cuh"

const char* variant_name() { return "depthwise_smem"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::depthwise_conv2d, {ElemType::f32, ElemType::f16, ElemType::bf16},
                  variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  depthwise_tile::launch<depthwise_tile::TileLoad::registers>(prob, x, w, y, stream,
                                                              "depthwise_smem");
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  depthwise_tile::describe(prob, detail, launch_config);
  detail.add_str("tile_load", "through registers, one vector in flight per thread");
}
