// conv2d_nhwc.mlir -- hand-written 2-D convolution, NHWC input, HWCF filter.
//
// @conv convolves a 1x8x8x4 input with a 3x3x4x8 filter, stride 1, padding 1
// (an explicit tensor.pad with zeros to 1x10x10x4), via
// linalg.conv_2d_nhwc_hwcf into a zero-filled 1x8x8x8 accumulator.
//
// Run it with scripts/run_example.sh mlir-examples/conv2d_nhwc.mlir [backend],
// which reads the function name and the inputs from the RUN- lines below.
// With every input and filter element equal to 1, each output element is
// 4 channels x (number of 3x3 window taps that fall inside the image):
//   interior pixels (rows and columns 1..6): 4 x 9 = 36
//   edge pixels, not corners:                 4 x 6 = 24
//   the four corner pixels:                   4 x 4 = 16
// for all 8 output channels.
//
// RUN-FUNCTION: conv
// RUN-INPUT: 1x8x8x4xf32=1
// RUN-INPUT: 3x3x4x8xf32=1

func.func @conv(%input: tensor<1x8x8x4xf32>, %filter: tensor<3x3x4x8xf32>) -> tensor<1x8x8x8xf32> {
  %zero = arith.constant 0.0 : f32
  %padded = tensor.pad %input low[0, 1, 1, 0] high[0, 1, 1, 0] {
  ^bb0(%n: index, %h: index, %w: index, %c: index):
    tensor.yield %zero : f32
  } : tensor<1x8x8x4xf32> to tensor<1x10x10x4xf32>
  %empty = tensor.empty() : tensor<1x8x8x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%empty : tensor<1x8x8x8xf32>) -> tensor<1x8x8x8xf32>
  %result = linalg.conv_2d_nhwc_hwcf
      {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
      ins(%padded, %filter : tensor<1x10x10x4xf32>, tensor<3x3x4x8xf32>)
      outs(%acc : tensor<1x8x8x8xf32>) -> tensor<1x8x8x8xf32>
  return %result : tensor<1x8x8x8xf32>
}
