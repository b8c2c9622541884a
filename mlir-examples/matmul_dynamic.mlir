// matmul_dynamic.mlir -- dynamic-shape matrix multiplication.
//
// @foo computes lhs (MxK) * rhs (KxN) -> MxN with every size dynamic: the
// sizes are read with tensor.dim, the accumulator is a tensor.empty filled
// with 0.0 by linalg.fill, and linalg.matmul accumulates into it.
//
// Run it with scripts/run_example.sh mlir-examples/matmul_dynamic.mlir [backend],
// which reads the function name and the inputs from the RUN- lines below.
// With these inputs, [[1 2 3][4 5 6]] x [[7 8][9 10][11 12]], the result is
//   2x2xf32=[58 64][139 154]
//
// RUN-FUNCTION: foo
// RUN-INPUT: 2x3xf32=1 2 3 4 5 6
// RUN-INPUT: 3x2xf32=7 8 9 10 11 12

func.func @foo(%lhs: tensor<?x?xf32>, %rhs: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %lhs, %c0 : tensor<?x?xf32>
  %n = tensor.dim %rhs, %c1 : tensor<?x?xf32>
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty(%m, %n) : tensor<?x?xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%empty : tensor<?x?xf32>) -> tensor<?x?xf32>
  %result = linalg.matmul ins(%lhs, %rhs : tensor<?x?xf32>, tensor<?x?xf32>)
                          outs(%acc : tensor<?x?xf32>) -> tensor<?x?xf32>
  return %result : tensor<?x?xf32>
}
