"""MLIR text shared by the ops' programs: tensor types, zero padding as tensor.pad, the accumulator's truncation
and mixed-precision multiply-adds. Each op writes its own program (opbench/ops/<op>/mlir.py) from these."""

from __future__ import annotations

from collections.abc import Sequence


def tensor_type(shape: Sequence[int], element: str) -> str:
    return f"tensor<{'x'.join(str(d) for d in shape)}x{element}>"


def zero(element: str) -> str:
    return f"arith.constant 0.0 : {element}"


def zero_pad(
    value: str, shape: Sequence[int], spatial_dims: tuple[int, int], pad: tuple[int, int], element: str
) -> tuple[list[str], str, str]:
    """`%padded`: `value` (of `shape`) with `pad` zeros on both sides of its two spatial dims. Returns the lines,
    the padded value's name and its type."""
    low = [0] * len(shape)
    padded_shape = list(shape)
    for dim, amount in zip(spatial_dims, pad, strict=True):
        low[dim] = amount
        padded_shape[dim] += 2 * amount
    lows = ", ".join(str(v) for v in low)
    padded_t = tensor_type(padded_shape, element)
    block_args = ", ".join(f"%i{i}: index" for i in range(len(shape)))
    lines = [
        f"  %pad_value = {zero(element)}",
        f"  %padded = tensor.pad {value} low[{lows}] high[{lows}] {{",
        f"  ^bb0({block_args}):",
        f"    tensor.yield %pad_value : {element}",
        f"  }} : {tensor_type(shape, element)} to {padded_t}",
    ]
    return lines, "%padded", padded_t


def truncate(
    value: str, value_t: str, out_t: str, accumulator: str, element: str, *, rank: int, result: str = "%result"
) -> list[str]:
    """`result = value` truncated elementwise from the accumulator to the element type (a parallel generic); its
    empty output tensor is named after the result (`%out_empty` for the default `%result`)."""
    dims = ", ".join(f"d{i}" for i in range(rank))
    identity = f"affine_map<({dims}) -> ({dims})>"
    parallel = ", ".join(['"parallel"'] * rank)
    empty = "%out_empty" if result == "%result" else f"{result}_empty"
    return [
        f"  {empty} = tensor.empty() : {out_t}",
        f"  {result} = linalg.generic {{indexing_maps = [{identity}, {identity}], iterator_types = [{parallel}]}}",
        f"      ins({value} : {value_t}) outs({empty} : {out_t}) {{",
        f"  ^bb0(%a: {accumulator}, %b: {element}):",
        f"    %t = arith.truncf %a : {accumulator} to {element}",
        f"    linalg.yield %t : {element}",
        f"  }} -> {out_t}",
    ]


def convolution_op(
    result: str, op: str, operands: tuple[str, str], operand_types: tuple[str, str], init: str, acc_t: str,
    *, stride: tuple[int, int], dilation: tuple[int, int],
) -> list[str]:  # fmt: skip
    """`result = op(operands)`: a named linalg convolution (e.g. linalg.conv_2d_nhwc_fhwc) accumulated into `init`."""
    return [
        f"  {result} = {op} {{"
        f"dilations = dense<[{dilation[0]}, {dilation[1]}]> : tensor<2xi64>, "
        f"strides = dense<[{stride[0]}, {stride[1]}]> : tensor<2xi64>}}",
        f"      ins({operands[0]}, {operands[1]} : {operand_types[0]}, {operand_types[1]}) outs({init} : {acc_t})"
        f" -> {acc_t}",
    ]


def window(out_dim: str, filter_dim: str, stride: int, dilation: int) -> str:
    """The input index of an output position and filter tap: out * stride + tap * dilation."""
    out = f"{out_dim} * {stride}" if stride > 1 else out_dim
    tap = f"{filter_dim} * {dilation}" if dilation > 1 else filter_dim
    return f"{out} + {tap}"


def multiply_add(element: str, accumulator: str) -> list[str]:
    """The body of a mixed-precision multiply-accumulate: %x * %y (extended to the accumulator) + %a."""
    if element == accumulator:
        return ["    %m = arith.mulf %x, %y : " + element, f"    %s = arith.addf %a, %m : {element}",
                f"    linalg.yield %s : {element}"]  # fmt: skip
    return [
        f"    %xe = arith.extf %x : {element} to {accumulator}",
        f"    %ye = arith.extf %y : {element} to {accumulator}",
        f"    %m = arith.mulf %xe, %ye : {accumulator}",
        f"    %s = arith.addf %a, %m : {accumulator}",
        f"    linalg.yield %s : {accumulator}",
    ]


def named_convolution(
    op: str,
    *,
    function: str,
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
    """One function `@{function}(input, filter) -> output` around the named linalg convolution `op` (e.g.
    linalg.conv_2d_nhwc_fhwc): zero padding, a zero-filled accumulator, the op, and the output in the element type.

    Inputs of a narrower element type are extended to the accumulator inside the linalg op (its default semantics),
    so f16 x f16 -> f32 is a mixed-precision convolution, not a cast pass. The output has the element type, as
    cuDNN's does: where the accumulator differs (f16 or bf16 inputs, f32 accumulation), an elementwise linalg.generic
    truncates the accumulated result (`arith.truncf`), which IREE fuses into the convolution's dispatch as its
    epilogue. Where they are the same type (f32, f16_acc_f16) the convolution's result is returned as it is.
    """
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
        *convolution_op(conv_result, op, (conv_input, "%filter"), (conv_input_t, filter_t), "%init", acc_t,
                        stride=stride, dilation=dilation),
    ]  # fmt: skip
    if narrows:
        lines += truncate(conv_result, acc_t, out_t, accumulator, element, rank=len(output_shape))
    lines += [f"  return %result : {out_t}", "}"]
    return "\n".join(lines) + "\n"
