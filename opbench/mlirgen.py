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


def truncate(value: str, value_t: str, out_t: str, accumulator: str, element: str, *, rank: int) -> list[str]:
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
