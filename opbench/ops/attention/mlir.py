"""attention's MLIR program: IREE's `iree_linalg_ext.attention` (FlashAttention as IREE lowers it: scores and
softmax in f32, P narrowed to V's element type before P·V, the output in the element type), its indexing maps
reading Q, K, V and writing O in the layout's order (no transposes), a causal mask as its i1 `mask` operand."""

from __future__ import annotations

from collections.abc import Sequence

from opbench.mlirgen import tensor_type

# The attention op's iteration dims: d0 batch, d1 head, d2 query (m), d3 head dim of Q and K (k1), d4 key (k2),
# d5 head dim of V and O (n). Each layout's [(batch, head, sequence, head dim)] order of the four operands.
_DIMS = "(d0, d1, d2, d3, d4, d5)"
_ORDER = {"bhsd": (0, 1, 2, 3), "bshd": (0, 2, 1, 3)}


def _operand_map(layout: str, sequence: str, head_dim: str) -> str:
    canonical = ("d0", "d1", sequence, head_dim)
    return f"affine_map<{_DIMS} -> ({', '.join(canonical[i] for i in _ORDER[layout])})>"


def _causal_mask(s: int) -> tuple[list[str], str]:
    """`%mask`: an S x S i1 tensor, true where key j <= query i (the keys query i attends to)."""
    mask_t = tensor_type((s, s), "i1")
    identity = "affine_map<(d0, d1) -> (d0, d1)>"
    return [
        f"  %mask_empty = tensor.empty() : {mask_t}",
        f'  %mask = linalg.generic {{indexing_maps = [{identity}], iterator_types = ["parallel", "parallel"]}}',
        f"      outs(%mask_empty : {mask_t}) {{",
        "  ^bb0(%unused: i1):",
        "    %i = linalg.index 0 : index",
        "    %j = linalg.index 1 : index",
        "    %sees = arith.cmpi ule, %j, %i : index",
        "    linalg.yield %sees : i1",
        f"  }} -> {mask_t}",
    ], mask_t


def attention(*, function: str, layout: str, shape: Sequence[int], s: int, d: int, causal: bool, element: str) -> str:
    """One function `@{function}(q, k, v) -> o`, all four of `shape` (the layout's order). The scale 1/√D is an f32
    operand (not rounded to the element type); where causal the mask is built in the function. IREE 3.13 does not fuse
    that generic into the attention's dispatch (checked with --compile-to=flow for llvm-cpu and CUDA: two
    dispatches): it builds the S x S i1 mask in a dispatch of its own (256 MiB at S = 16384) that the attention
    dispatch then reads, so the causal rows pay for it, and no masked-out block is skipped."""
    qkv_t = tensor_type(shape, element)
    maps = [
        _operand_map(layout, "d2", "d3"),  # Q: query, k1
        _operand_map(layout, "d4", "d3"),  # K: key, k1
        _operand_map(layout, "d4", "d5"),  # V: key, n
        f"affine_map<{_DIMS} -> ()>",  # the scale
    ]
    operands, types = ["%q", "%k", "%v", "%scale"], [qkv_t, qkv_t, qkv_t, "f32"]
    lines = [
        f"func.func @{function}(%q: {qkv_t}, %k: {qkv_t}, %v: {qkv_t}) -> {qkv_t} {{",
        f"  %scale = arith.constant {1.0 / d**0.5!r} : f32",
    ]
    if causal:
        mask_lines, mask_t = _causal_mask(s)
        lines += mask_lines
        maps.append(f"affine_map<{_DIMS} -> (d2, d4)>")
        operands.append("%mask")
        types.append(mask_t)
    maps.append(_operand_map(layout, "d2", "d5"))  # O: query, n
    joined_maps = ",\n      ".join(maps)
    lines += [
        f"  %empty = tensor.empty() : {qkv_t}",
        "  %result = iree_linalg_ext.attention <{indexing_maps = [",
        f"      {joined_maps}]}}>",
        f"      ins({', '.join(operands)} : {', '.join(types)}) outs(%empty : {qkv_t}) {{",
        "  ^bb0(%score: f32):",
        "    iree_linalg_ext.yield %score : f32",
        f"  }} -> {qkv_t}",
        f"  return %result : {qkv_t}",
        "}",
    ]
    return "\n".join(lines) + "\n"
