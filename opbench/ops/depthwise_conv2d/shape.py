"""depthwise_conv2d's problem shape: its fields, id grammar, FLOP and minimum-byte counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opbench.shapes import WINDOW_ID, ShapeError, WindowedShape


@dataclass(frozen=True, kw_only=True)
class DepthwiseShape(WindowedShape):
    """A depthwise 2-D convolution (one R x S filter per channel, channel multiplier 1), layout-neutral.

    h and w are the INPUT spatial sizes; p and q the output's (WindowedShape). Output channels = input channels = c.
    """

    @classmethod
    def from_layer(cls, layer: dict, n: int) -> DepthwiseShape:
        """Build from a config layer entry (keys h, w, c, r, s and optional stride/pad/dilation)."""
        fields = {key: layer[key] for key in ("h", "w", "c", "r", "s")}
        return cls(n=n, **fields, **cls.window_fields(layer))

    @property
    def name(self) -> str:
        """Readable, unique id, e.g. n32_h112_w112_c32_r3_s3_st1_p1 (dilation only when not 1)."""
        return f"n{self.n}_h{self.h}_w{self.w}_c{self.c}_r{self.r}_s{self.s}" + self.window_id()

    @classmethod
    def from_name(cls, name: str) -> DepthwiseShape:
        match = _NAME_RE.fullmatch(name)
        if not match:
            raise ShapeError(f"not a depthwise_conv2d shape id: {name!r}")
        g = match.groupdict()
        return cls(**{key: int(g[key]) for key in ("n", "h", "w", "c", "r", "s")}, **cls.parse_window(g))

    def flops(self) -> int:
        """Multiply-adds counted as two operations, padding included: 2 * R * S per output element."""
        return 2 * self.n * self.p * self.q * self.c * self.r * self.s

    def filter_shape_crs(self) -> tuple[int, int, int]:
        return (self.c, self.r, self.s)

    def output_shape_ncpq(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.p, self.q)

    def min_bytes(self, in_bytes: int, out_bytes: int) -> int:
        """Fewest bytes a kernel must move: each input and filter element read once, each output written once (the
        figure of merit of this memory-bound op is these bytes over the time, against the card's copy bandwidth)."""
        n_in = self.n * self.c * self.h * self.w
        n_filter = self.c * self.r * self.s
        n_out = self.n * self.c * self.p * self.q
        return (n_in + n_filter) * in_bytes + n_out * out_bytes


# The id grammar; SHAPE_PATTERN (no named groups) is the workflow's `shape` wildcard constraint.
_NAME_RE = re.compile("_".join(rf"{f}(?P<{f}>\d+)" for f in "nhwcrs") + WINDOW_ID)
SHAPE_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _NAME_RE.pattern)
