"""attention's problem shape: its fields, id grammar, FLOP and minimum-byte counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opbench.shapes import ShapeError


@dataclass(frozen=True, kw_only=True)
class AttentionShape:
    """softmax(Q·Kᵀ/√D)·V for each of B x H (batch, head) pairs, layout-neutral: S queries attend to S keys (the same
    length), head dim D; `causal`: query i sees keys 0..i only."""

    b: int
    h: int
    s: int
    d: int
    causal: bool = False

    def __post_init__(self) -> None:
        for name in ("b", "h", "s", "d"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ShapeError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.causal, bool):
            raise ShapeError(f"causal must be a boolean, got {self.causal!r}")

    @classmethod
    def from_layer(cls, layer: dict, batch: int) -> AttentionShape:
        """Build from a config layer entry (keys b, h, s, d, causal): the suite's batch size multiplies the layer's
        b (suites of attention layers use batches [1] and give B as b)."""
        return cls(b=layer["b"] * batch, h=layer["h"], s=layer["s"], d=layer["d"], causal=layer.get("causal", False))

    @property
    def name(self) -> str:
        """Readable, unique id, e.g. b4_h16_s4096_d128, with _causal where causal."""
        return f"b{self.b}_h{self.h}_s{self.s}_d{self.d}" + ("_causal" if self.causal else "")

    @classmethod
    def from_name(cls, name: str) -> AttentionShape:
        match = _NAME_RE.fullmatch(name)
        if not match:
            raise ShapeError(f"not an attention shape id: {name!r}")
        g = match.groupdict()
        return cls(**{key: int(g[key]) for key in ("b", "h", "s", "d")}, causal=g["causal"] is not None)

    def qkv_shape_bhsd(self) -> tuple[int, int, int, int]:
        """Q, K, V and O alike, in the canonical order."""
        return (self.b, self.h, self.s, self.d)

    def flops(self) -> int:
        """Two matrix products of 2·S·S·D each (Q·Kᵀ and P·V) per (batch, head); half of that where causal (the
        convention of FlashAttention's benchmarks: the masked half is not work). The softmax is not counted."""
        full = 4 * self.b * self.h * self.s * self.s * self.d
        return full // 2 if self.causal else full

    def min_bytes(self, in_bytes: int, out_bytes: int) -> int:
        """Q, K and V read once, O written once; the S x S scores never leave the chip."""
        elements = self.b * self.h * self.s * self.d
        return 3 * elements * in_bytes + elements * out_bytes


# The id grammar; SHAPE_PATTERN (no named groups) is the workflow's `shape` wildcard constraint.
_NAME_RE = re.compile(r"b(?P<b>\d+)_h(?P<h>\d+)_s(?P<s>\d+)_d(?P<d>\d+)(?P<causal>_causal)?")
SHAPE_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _NAME_RE.pattern)
