"""conv2d's MLIR programs: the named linalg convolution of each layout, and the generic split-K / reordered
forms (ProgramForm) that IREE tuning rules may ask for."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from opbench.mlirgen import multiply_add, named_convolution, tensor_type, truncate, window, zero, zero_pad

_CONV2D_OPS = {
    "nhwc_hwcf": "linalg.conv_2d_nhwc_hwcf",
    "nhwc_fhwc": "linalg.conv_2d_nhwc_fhwc",
    "nchw_fchw": "linalg.conv_2d_nchw_fchw",
}


def conv2d(*, layout: str, **program: Any) -> str:
    """The layout's named linalg convolution in one function (opbench.mlirgen.named_convolution's arguments)."""
    return named_convolution(_CONV2D_OPS[layout], **program)


@dataclass(frozen=True)
class ProgramForm:
    """How a conv2d is written as MLIR, beyond the named op (the default form: `plain`).

    split_k: the input channels split into this many slices, each slice's products summed into an f32 partial
    output of its own (a leading dim of the convolution's result, so IREE tiles it as a parallel dim: more
    workgroups for layers with few output tiles and long reductions), the partials then summed by a reduction.
    order: the output-pixel dims of the convolution's iteration space, outermost first. `npq` is NHWC's own;
    `pqn` puts the batch innermost, so that IREE's implicit GEMM maps the MMA's 16 rows onto 16 images instead
    of onto an output row (a 7-wide row fills 7 of the 16). The partials are stored in this order and the
    reduction writes the output in NHWC.
    """

    split_k: int = 1
    order: str = "npq"

    # Every form's name. The workflow's `form` wildcard is constrained to it; the config schema spells it again for
    # the rules' `form` key (tests/test_mlirgen.py keeps the two equal).
    NAMES: ClassVar[str] = r"plain|splitk(\d+)_(npq|pqn)"

    def __post_init__(self) -> None:
        if self.split_k < 1:
            raise ValueError(f"split_k must be >= 1, got {self.split_k}")
        if self.order not in ("npq", "pqn"):
            raise ValueError(f"order must be 'npq' or 'pqn', got {self.order!r}")

    @property
    def plain(self) -> bool:
        return self == ProgramForm()

    @property
    def name(self) -> str:
        return "plain" if self.plain else f"splitk{self.split_k}_{self.order}"

    @classmethod
    def parse(cls, name: str) -> ProgramForm:
        match = re.fullmatch(cls.NAMES, name)
        if not match:
            raise ValueError(f"unknown program form {name!r}: 'plain' or splitk<S>_<npq|pqn>, e.g. 'splitk4_pqn'")
        if match[1] is None:  # plain
            return cls()
        return cls(split_k=int(match[1]), order=match[2])


def conv2d_split(
    *,
    function: str,
    layout: str,
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    output_shape: Sequence[int],
    pad: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    element: str,
    accumulator: str,
    form: ProgramForm,
) -> str:
    """The conv2d of `conv2d` in a ProgramForm (NHWC layouts): the channel dim of input and filter expanded to
    (split_k, C / split_k) (a free reshape), the zero padding, a linalg.generic convolution into f32 partials
    [split_k, <order's pixel dims>, K], and a linalg.generic that sums the partials into the NHWC output (and
    truncates it to the element type where that differs from the accumulator, fused by IREE into the sum)."""
    if layout not in ("nhwc_fhwc", "nhwc_hwcf"):
        raise ValueError(f"program form {form.name!r} is written for NHWC layouts, not {layout!r}")
    n, h, w, c = input_shape
    _, p, q, k = output_shape
    splits = form.split_k
    if c % splits:
        raise ValueError(f"split_k {splits} does not divide the {c} input channels")
    cs = c // splits
    r, s = (filter_shape[1], filter_shape[2]) if layout == "nhwc_fhwc" else (filter_shape[0], filter_shape[1])
    in5 = [n, h, w, splits, cs]
    if layout == "nhwc_fhwc":
        filter5, filter_dims = [k, r, s, splits, cs], "f, kh, kw, sk, c"
    else:
        filter5, filter_dims = [r, s, splits, cs, k], "kh, kw, sk, c, f"
    pixels = {"n": n, "p": p, "q": q}
    order = list(form.order)
    partial = [splits, *(pixels[d] for d in order), k]
    in_t, filter_t = tensor_type(input_shape, element), tensor_type(filter_shape, element)
    part_t, acc_t = tensor_type(partial, accumulator), tensor_type(output_shape, accumulator)
    out_t = tensor_type(output_shape, element)
    lines = [
        f"func.func @{function}(%input: {in_t}, %filter: {filter_t}) -> {out_t} {{",
        f"  %acc_zero = {zero(accumulator)}",
        f"  %input5 = tensor.expand_shape %input [[0], [1], [2], [3, 4]] output_shape {list(in5)}"
        f" : {in_t} into {tensor_type(in5, element)}",
    ]
    conv_input, conv_input_t = "%input5", tensor_type(in5, element)
    if pad != (0, 0):
        pad_lines, conv_input, conv_input_t = zero_pad("%input5", in5, (1, 2), pad, element)
        lines += pad_lines
    filter_reassociation = "[[0], [1], [2], [3, 4]]" if layout == "nhwc_fhwc" else "[[0], [1], [2, 3], [4]]"
    lines += [
        f"  %filter5 = tensor.expand_shape %filter {filter_reassociation} output_shape {list(filter5)}"
        f" : {filter_t} into {tensor_type(filter5, element)}",
        f"  %part_empty = tensor.empty() : {part_t}",
        f"  %part_init = linalg.fill ins(%acc_zero : {accumulator}) outs(%part_empty : {part_t}) -> {part_t}",
    ]
    loops = f"(sk, {', '.join(order)}, f, kh, kw, c)"
    row = window("p", "kh", stride[0], dilation[0])
    col = window("q", "kw", stride[1], dilation[1])
    maps = [
        f"affine_map<{loops} -> (n, {row}, {col}, sk, c)>",
        f"affine_map<{loops} -> ({filter_dims})>",
        f"affine_map<{loops} -> (sk, {', '.join(order)}, f)>",
    ]
    iterators = ", ".join(['"parallel"'] * 5 + ['"reduction"'] * 3)
    lines += [
        f"  %partials = linalg.generic {{indexing_maps = [{', '.join(maps)}], iterator_types = [{iterators}]}}",
        f"      ins({conv_input}, %filter5 : {conv_input_t}, {tensor_type(filter5, element)})"
        f" outs(%part_init : {part_t}) {{",
        f"  ^bb0(%x: {element}, %y: {element}, %a: {accumulator}):",
        *multiply_add(element, accumulator),
        f"  }} -> {part_t}",
        f"  %acc_empty = tensor.empty() : {acc_t}",
        f"  %acc_init = linalg.fill ins(%acc_zero : {accumulator}) outs(%acc_empty : {acc_t}) -> {acc_t}",
    ]
    narrows = element != accumulator
    total = "%acc" if narrows else "%result"
    sum_loops = "(n, p, q, f, sk)"
    lines += [
        f"  {total} = linalg.generic {{indexing_maps = [affine_map<{sum_loops} -> (sk, {', '.join(order)}, f)>, "
        f"affine_map<{sum_loops} -> (n, p, q, f)>], "
        'iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}',
        f"      ins(%partials : {part_t}) outs(%acc_init : {acc_t}) {{",
        f"  ^bb0(%v: {accumulator}, %a: {accumulator}):",
        f"    %sum = arith.addf %a, %v : {accumulator}",
        f"    linalg.yield %sum : {accumulator}",
        f"  }} -> {acc_t}",
    ]
    if narrows:
        lines += truncate(total, acc_t, out_t, accumulator, element, rank=4)
    lines += [f"  return %result : {out_t}", "}"]
    return "\n".join(lines) + "\n"
