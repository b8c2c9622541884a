"""depthwise_conv2d's problem shape: its fields, id grammar, FLOP and minimum-byte counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opbench.shapes import ShapeError, fmt_pair, pair, parse_pair


@dataclass(frozen=True, kw_only=True)
class DepthwiseShape:
    """A depthwise 2-D convolution (one R x S filter per channel, channel multiplier 1), layout-neutral.

    h and w are the INPUT spatial sizes; p and q the output's. Output channels = input channels = c.
    """

    n: int
    h: int
    w: int
    c: int
    r: int
    s: int
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        for name in ("n", "h", "w", "c", "r", "s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ShapeError(f"{name} must be a positive integer, got {value!r}")
        for name, low in (("stride", 1), ("pad", 0), ("dilation", 1)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) != 2 or any(not isinstance(v, int) or v < low for v in value):
                raise ShapeError(f"{name} must be a (height, width) pair of integers >= {low}, got {value!r}")
        if self.p < 1 or self.q < 1:
            raise ShapeError(
                f"output would be empty: {self.p}x{self.q} from input {self.h}x{self.w}, filter {self.r}x{self.s}, "
                f"pad {list(self.pad)}, stride {list(self.stride)}, dilation {list(self.dilation)}"
            )

    @classmethod
    def from_layer(cls, layer: dict, n: int) -> DepthwiseShape:
        """Build from a config layer entry (keys h, w, c, r, s and optional stride/pad/dilation)."""
        return cls(
            n=n, h=layer["h"], w=layer["w"], c=layer["c"], r=layer["r"], s=layer["s"],
            stride=pair(layer.get("stride", 1)), pad=pair(layer.get("pad", 0)),
            dilation=pair(layer.get("dilation", 1)),
        )  # fmt: skip

    @property
    def p(self) -> int:
        return (self.h + 2 * self.pad[0] - self.dilation[0] * (self.r - 1) - 1) // self.stride[0] + 1

    @property
    def q(self) -> int:
        return (self.w + 2 * self.pad[1] - self.dilation[1] * (self.s - 1) - 1) // self.stride[1] + 1

    @property
    def name(self) -> str:
        """Readable, unique id, e.g. n32_h112_w112_c32_r3_s3_st1_p1 (dilation only when not 1)."""
        base = (
            f"n{self.n}_h{self.h}_w{self.w}_c{self.c}_r{self.r}_s{self.s}"
            f"_st{fmt_pair(self.stride)}_p{fmt_pair(self.pad)}"
        )
        return base if self.dilation == (1, 1) else f"{base}_d{fmt_pair(self.dilation)}"

    @classmethod
    def from_name(cls, name: str) -> DepthwiseShape:
        match = _NAME_RE.fullmatch(name)
        if not match:
            raise ShapeError(f"not a depthwise_conv2d shape id: {name!r}")
        g = match.groupdict()
        return cls(
            **{key: int(g[key]) for key in ("n", "h", "w", "c", "r", "s")},
            stride=parse_pair(g["st"], 1), pad=parse_pair(g["p"], 0), dilation=parse_pair(g["d"], 1),
        )  # fmt: skip

    def flops(self) -> int:
        """Multiply-adds counted as two operations, padding included: 2 * R * S per output element."""
        return 2 * self.n * self.p * self.q * self.c * self.r * self.s

    def input_shape_nchw(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

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
_NAME_RE = re.compile(
    r"n(?P<n>\d+)_h(?P<h>\d+)_w(?P<w>\d+)_c(?P<c>\d+)_r(?P<r>\d+)_s(?P<s>\d+)"
    r"_st(?P<st>\d+(?:x\d+)?)_p(?P<p>\d+(?:x\d+)?)(?:_d(?P<d>\d+(?:x\d+)?))?"
)
SHAPE_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _NAME_RE.pattern)
