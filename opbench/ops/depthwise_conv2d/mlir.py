"""depthwise_conv2d's MLIR program: IREE's named linalg depthwise convolution of the layout."""

from __future__ import annotations

from collections.abc import Sequence

from opbench.mlirgen import tensor_type, truncate, zero, zero_pad
from opbench.ops.depthwise_conv2d.layouts import LINALG_OPS


def depthwise_conv2d(
    *,
    function: str,
    layout: str,
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    output_shape: Sequence[int],
    spatial_dims: tuple[int, int],
    pad: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    element: str,
    accumulator: str,
) -> str:
    """One function `@{function}(input, filter) -> output`: zero padding, a zero-filled accumulator, the named
    depthwise op (inputs extended to the accumulator inside it), and the output truncated to the element type where
    the accumulator is wider (an elementwise generic IREE fuses into the dispatch)."""
    in_t = tensor_type(input_shape, element)
    filter_t = tensor_type(filter_shape, element)
    acc_t = tensor_type(output_shape, accumulator)
    out_t = tensor_type(output_shape, element)
    narrows = element != accumulator
    conv_result = "%acc" if narrows else "%result"
    lines = [f"func.func @{function}(%input: {in_t}, %filter: {filter_t}) -> {out_t} {{"]
    conv_input, conv_input_t = "%input", in_t
    if pad != (0, 0):
        pad_lines, conv_input, conv_input_t = zero_pad("%input", input_shape, spatial_dims, pad, element)
        lines += pad_lines
    lines += [
        f"  %acc_zero = {zero(accumulator)}",
        f"  %empty = tensor.empty() : {acc_t}",
        f"  %init = linalg.fill ins(%acc_zero : {accumulator}) outs(%empty : {acc_t}) -> {acc_t}",
        f"  {conv_result} = {LINALG_OPS[layout]} {{"
        f"dilations = dense<[{dilation[0]}, {dilation[1]}]> : tensor<2xi64>, "
        f"strides = dense<[{stride[0]}, {stride[1]}]> : tensor<2xi64>}}",
        f"      ins({conv_input}, %filter : {conv_input_t}, {filter_t}) outs(%init : {acc_t}) -> {acc_t}",
    ]
    if narrows:
        lines += truncate(conv_result, acc_t, out_t, accumulator, element, rank=len(output_shape))
    lines += [f"  return %result : {out_t}", "}"]
    return "\n".join(lines) + "\n"
