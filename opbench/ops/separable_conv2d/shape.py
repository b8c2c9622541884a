"""separable_conv2d's problem shape: its fields, id grammar, FLOP and minimum-byte counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from opbench.shapes import WINDOW_ID, ShapeError, WindowedShape


@dataclass(frozen=True, kw_only=True)
class SeparableShape(WindowedShape):
    """A depthwise-separable 2-D convolution, layout-neutral: a depthwise R x S convolution (one filter per channel,
    channel multiplier 1) of the C input channels, then a pointwise 1x1 convolution from C to K channels.

    h and w are the INPUT spatial sizes; p and q the output's (WindowedShape), the depthwise stage's and the op's.
    """

    POSITIVE: ClassVar[tuple[str, ...]] = ("n", "h", "w", "c", "k", "r", "s")
    k: int

    @classmethod
    def from_layer(cls, layer: dict, n: int) -> SeparableShape:
        """Build from a config layer entry (keys h, w, c, k, r, s and optional stride/pad/dilation)."""
        fields = {key: layer[key] for key in ("h", "w", "c", "k", "r", "s")}
        return cls(n=n, **fields, **cls.window_fields(layer))

    @property
    def name(self) -> str:
        """Readable, unique id, e.g. n32_h112_w112_c32_k16_r3_s3_st1_p1 (dilation only when not 1)."""
        return f"n{self.n}_h{self.h}_w{self.w}_c{self.c}_k{self.k}_r{self.r}_s{self.s}" + self.window_id()

    @classmethod
    def from_name(cls, name: str) -> SeparableShape:
        match = _NAME_RE.fullmatch(name)
        if not match:
            raise ShapeError(f"not a separable_conv2d shape id: {name!r}")
        g = match.groupdict()
        return cls(**{key: int(g[key]) for key in ("n", "h", "w", "c", "k", "r", "s")}, **cls.parse_window(g))

    def flops(self) -> int:
        """Multiply-adds counted as two operations, padding included: the depthwise stage's 2 * R * S per
        intermediate element (N x C x P x Q of them) and the pointwise stage's 2 * C per output element."""
        pixels = self.n * self.p * self.q
        return 2 * pixels * self.c * self.r * self.s + 2 * pixels * self.c * self.k

    def dw_filter_shape_crs(self) -> tuple[int, int, int]:
        return (self.c, self.r, self.s)

    def pw_filter_shape_kc(self) -> tuple[int, int]:
        return (self.k, self.c)

    def intermediate_shape_ncpq(self) -> tuple[int, int, int, int]:
        """The depthwise stage's result, which a fused kernel keeps on chip."""
        return (self.n, self.c, self.p, self.q)

    def output_shape_nkpq(self) -> tuple[int, int, int, int]:
        return (self.n, self.k, self.p, self.q)

    def min_bytes(self, in_bytes: int, out_bytes: int) -> int:
        """Fewest bytes a fused kernel must move: the input and both filters read once, the output written once; the
        depthwise intermediate never leaves the chip (what fusing the two stages saves)."""
        n_in = self.n * self.c * self.h * self.w
        n_filters = self.c * self.r * self.s + self.k * self.c
        n_out = self.n * self.k * self.p * self.q
        return (n_in + n_filters) * in_bytes + n_out * out_bytes


# The id grammar; SHAPE_PATTERN (no named groups) is the workflow's `shape` wildcard constraint.
_NAME_RE = re.compile("_".join(rf"{f}(?P<{f}>\d+)" for f in "nhwckrs") + WINDOW_ID)
SHAPE_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _NAME_RE.pattern)
