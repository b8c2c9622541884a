// depthwise_async.cu -- depthwise variant 3: depthwise_smem with the input tile copied by
// cp.async, every vector of it in flight at once.
// opbench: op=depthwise_conv2d dtypes=f32,f16,bf16
//
// Adds over depthwise_smem: its tile copy keeps one load per thread in flight (load a vector,
// store it to shared memory, then the next), about 6 KB per SM in 16 bits at 3 blocks of 256
// threads, far below what DRAM latency times bandwidth asks for (~10-15 KB per SM). Here each
// thread issues a cp.async for every vector of its share of the tile (zero fill for the padding),
// then waits once: the whole tile, 20-40 KB per block, is in flight together, and no registers
// hold it on the way. The rest of the kernel is depthwise_smem's (depthwise_tile.cuh). The
// runtime-size path's 2-byte vectors (one 16-bit channel) are below cp.async's 4 and keep the
// register copy.
#include "depthwise_tile.cuh"

const char* variant_name() { return "depthwise_async"; }

size_t variant_workspace_bytes(const ConvProblem&) { return 0; }

void variant_prepare(const ConvProblem& prob, const DeviceSet*, int, void*, cudaStream_t) {
  require_problem(prob, OpKind::depthwise_conv2d, {ElemType::f32, ElemType::f16, ElemType::bf16},
                  variant_name());
}

void variant_launch(const ConvProblem& prob, const void* x, const void* w, void* y, void*,
                    cudaStream_t stream) {
  depthwise_tile::launch<depthwise_tile::TileLoad::cp_async>(prob, x, w, y, stream,
                                                             "depthwise_async");
}

void variant_describe(const ConvProblem& prob, Json& detail, Json& launch_config) {
  depthwise_tile::describe(prob, detail, launch_config);
  detail.add_str("tile_load", "cp.async, the whole tile in flight");
}
