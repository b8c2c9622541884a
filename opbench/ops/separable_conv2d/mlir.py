"""separable_conv2d's MLIR program: the layout's named linalg depthwise convolution, accumulated in the accumulator
type; its result truncated to the element type (the intermediate the baselines store: PyTorch runs the two stages
as two ops); the pointwise stage as the layout's named 1x1 linalg convolution of that intermediate and the [K, C]
filter expanded to 1x1, accumulated in the accumulator type and truncated to the element type at the end."""

from __future__ import annotations

from collections.abc import Sequence

from opbench.mlirgen import convolution_op, tensor_type, truncate, zero, zero_pad
from opbench.ops.separable_conv2d.layouts import DEPTHWISE_OPS, POINTWISE_OPS, PW_FILTER_EXPANSION


def separable_conv2d(
    *,
    function: str,
    layout: str,
    input_shape: Sequence[int],
    dw_filter_shape: Sequence[int],
    pw_filter_shape: Sequence[int],
    intermediate_shape: Sequence[int],
    output_shape: Sequence[int],
    spatial_dims: tuple[int, int],
    pad: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    element: str,
    accumulator: str,
) -> str:
    """One function `@{function}(input, dw_filter, pw_filter) -> output`, all shapes in the layout's order.

    Both convolutions extend their element-type inputs to the accumulator inside the linalg op (mixed precision, as
    opbench.mlirgen.named_convolution's). Where the accumulator is wider than the element type (f16, bf16) the
    depthwise result is truncated to the element type before the pointwise stage reads it, and the pointwise result
    before it is returned; where they are the same type the results pass as they are.
    """
    in_t = tensor_type(input_shape, element)
    dw_t, pw_t = tensor_type(dw_filter_shape, element), tensor_type(pw_filter_shape, element)
    dw_acc_t, intermediate_t = tensor_type(intermediate_shape, accumulator), tensor_type(intermediate_shape, element)
    acc_t, out_t = tensor_type(output_shape, accumulator), tensor_type(output_shape, element)
    k, c = pw_filter_shape
    expansion = PW_FILTER_EXPANSION[layout]
    pw_1x1_shape = [dim for size, group in zip((k, c), expansion, strict=True) for dim in (size, *[1] * len(group[1:]))]
    pw_1x1_t = tensor_type(pw_1x1_shape, element)
    reassociation = ", ".join(f"[{', '.join(str(d) for d in group)}]" for group in expansion)
    narrows = element != accumulator
    depthwise_result = "%dw_acc" if narrows else "%intermediate"
    pointwise_result = "%acc" if narrows else "%result"

    lines = [f"func.func @{function}(%input: {in_t}, %dw_filter: {dw_t}, %pw_filter: {pw_t}) -> {out_t} {{"]
    dw_input, dw_input_t = "%input", in_t
    if pad != (0, 0):
        pad_lines, dw_input, dw_input_t = zero_pad("%input", input_shape, spatial_dims, pad, element)
        lines += pad_lines
    lines += [
        f"  %acc_zero = {zero(accumulator)}",
        f"  %dw_empty = tensor.empty() : {dw_acc_t}",
        f"  %dw_init = linalg.fill ins(%acc_zero : {accumulator}) outs(%dw_empty : {dw_acc_t}) -> {dw_acc_t}",
        *convolution_op(depthwise_result, DEPTHWISE_OPS[layout], (dw_input, "%dw_filter"), (dw_input_t, dw_t),
                        "%dw_init", dw_acc_t, stride=stride, dilation=dilation),
    ]  # fmt: skip
    if narrows:
        lines += truncate(
            depthwise_result, dw_acc_t, intermediate_t, accumulator, element, rank=4, result="%intermediate"
        )
    lines += [
        f"  %pw_1x1 = tensor.expand_shape %pw_filter [{reassociation}]"
        f" output_shape [{', '.join(str(d) for d in pw_1x1_shape)}] : {pw_t} into {pw_1x1_t}",
        f"  %pw_empty = tensor.empty() : {acc_t}",
        f"  %pw_init = linalg.fill ins(%acc_zero : {accumulator}) outs(%pw_empty : {acc_t}) -> {acc_t}",
        *convolution_op(pointwise_result, POINTWISE_OPS[layout], ("%intermediate", "%pw_1x1"),
                        (intermediate_t, pw_1x1_t), "%pw_init", acc_t, stride=(1, 1), dilation=(1, 1)),
    ]  # fmt: skip
    if narrows:
        lines += truncate(pointwise_result, acc_t, out_t, accumulator, element, rank=len(output_shape))
    lines += [f"  return %result : {out_t}", "}"]
    return "\n".join(lines) + "\n"
