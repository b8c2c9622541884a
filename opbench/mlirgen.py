"""MLIR text for the ops: linalg named ops on tensors, padding written out as tensor.pad."""

from __future__ import annotations

from collections.abc import Sequence

_CONV2D_OPS = {
    "nhwc_hwcf": "linalg.conv_2d_nhwc_hwcf",
    "nhwc_fhwc": "linalg.conv_2d_nhwc_fhwc",
    "nchw_fchw": "linalg.conv_2d_nchw_fchw",
}


def tensor_type(shape: Sequence[int], element: str) -> str:
    return f"tensor<{'x'.join(str(d) for d in shape)}x{element}>"


def _zero(element: str) -> str:
    return f"arith.constant 0.0 : {element}"


def conv2d(
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
    """One function `@{function}(input, filter) -> output`: zero padding, zero-filled accumulator, conv, and the
    output in the element type.

    Inputs of a narrower element type are extended to the accumulator inside the linalg op (its
    default semantics), so f16 x f16 -> f32 is a mixed-precision convolution, not a cast pass.
    The output has the element type, as cuDNN's does: where the accumulator differs (f16 or bf16 inputs, f32
    accumulation), an elementwise linalg.generic truncates the accumulated result (`arith.truncf`), which IREE
    fuses into the convolution's dispatch as its epilogue. Where they are the same type (f32, f16_acc_f16) the
    convolution's result is returned as it is.
    """
    in_t = tensor_type(input_shape, element)
    filter_t = tensor_type(filter_shape, element)
    acc_t = tensor_type(output_shape, accumulator)
    out_t = tensor_type(output_shape, element)
    truncate = element != accumulator
    conv_result = "%acc" if truncate else "%result"
    lines = [f"func.func @{function}(%input: {in_t}, %filter: {filter_t}) -> {out_t} {{"]
    conv_input, conv_input_t = "%input", in_t
    if pad != (0, 0):
        low = [0, 0, 0, 0]
        low[spatial_dims[0]], low[spatial_dims[1]] = pad
        padded_shape = list(input_shape)
        padded_shape[spatial_dims[0]] += 2 * pad[0]
        padded_shape[spatial_dims[1]] += 2 * pad[1]
        conv_input, conv_input_t = "%padded", tensor_type(padded_shape, element)
        lows = ", ".join(str(v) for v in low)
        lines += [
            f"  %pad_value = {_zero(element)}",
            f"  %padded = tensor.pad %input low[{lows}] high[{lows}] {{",
            "  ^bb0(%i0: index, %i1: index, %i2: index, %i3: index):",
            f"    tensor.yield %pad_value : {element}",
            f"  }} : {in_t} to {conv_input_t}",
        ]
    lines += [
        f"  %acc_zero = {_zero(accumulator)}",
        f"  %empty = tensor.empty() : {acc_t}",
        f"  %init = linalg.fill ins(%acc_zero : {accumulator}) outs(%empty : {acc_t}) -> {acc_t}",
        f"  {conv_result} = {_CONV2D_OPS[layout]} {{"
        f"dilations = dense<[{dilation[0]}, {dilation[1]}]> : tensor<2xi64>, "
        f"strides = dense<[{stride[0]}, {stride[1]}]> : tensor<2xi64>}}",
        f"      ins({conv_input}, %filter : {conv_input_t}, {filter_t}) outs(%init : {acc_t}) -> {acc_t}",
    ]
    if truncate:
        lines += _truncate(conv_result, acc_t, out_t, accumulator, element, rank=len(output_shape))
    lines += [
        f"  return %result : {out_t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _truncate(value: str, value_t: str, out_t: str, accumulator: str, element: str, *, rank: int) -> list[str]:
    """`%result = value` truncated elementwise from the accumulator to the element type (a parallel generic)."""
    dims = ", ".join(f"d{i}" for i in range(rank))
    identity = f"affine_map<({dims}) -> ({dims})>"
    parallel = ", ".join(['"parallel"'] * rank)
    return [
        f"  %out_empty = tensor.empty() : {out_t}",
        f"  %result = linalg.generic {{indexing_maps = [{identity}, {identity}], iterator_types = [{parallel}]}}",
        f"      ins({value} : {value_t}) outs(%out_empty : {out_t}) {{",
        f"  ^bb0(%a: {accumulator}, %b: {element}):",
        f"    %t = arith.truncf %a : {accumulator} to {element}",
        f"    linalg.yield %t : {element}",
        f"  }} -> {out_t}",
    ]
