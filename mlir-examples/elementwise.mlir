// elementwise.mlir -- element-wise addition of two tensor<10xf32>.
//
// @add returns a + b, written as a linalg.generic with two parallel inputs
// and an arith.addf body.
//
// Run it with scripts/run_example.sh mlir-examples/elementwise.mlir [backend],
// which reads the function name and the inputs from the RUN- lines below.
// With a = 0..9 and b = 90, 80, ..., 0 the result is
//   10xf32=90 81 72 63 54 45 36 27 18 9
//
// RUN-FUNCTION: add
// RUN-INPUT: 10xf32=0 1 2 3 4 5 6 7 8 9
// RUN-INPUT: 10xf32=90 80 70 60 50 40 30 20 10 0

#map = affine_map<(d0) -> (d0)>

func.func @add(%a: tensor<10xf32>, %b: tensor<10xf32>) -> tensor<10xf32> {
  %empty = tensor.empty() : tensor<10xf32>
  %sum = linalg.generic {indexing_maps = [#map, #map, #map],
                         iterator_types = ["parallel"]}
      ins(%a, %b : tensor<10xf32>, tensor<10xf32>)
      outs(%empty : tensor<10xf32>) {
  ^bb0(%x: f32, %y: f32, %out: f32):
    %s = arith.addf %x, %y : f32
    linalg.yield %s : f32
  } -> tensor<10xf32>
  return %sum : tensor<10xf32>
}
