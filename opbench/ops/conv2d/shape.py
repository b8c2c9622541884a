"""conv2d's problem shape: its fields, id grammar, FLOP and minimum-byte counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opbench.shapes import ShapeError, fmt_pair, pair, parse_pair


@dataclass(frozen=True, kw_only=True)
class Conv2dShape:
    """A 2-D convolution (cross-correlation, zero padding), layout-neutral.

    h and w are the INPUT spatial sizes; p and q the output's. groups == c is depthwise.
    """

    n: int
    h: int
    w: int
    c: int
    k: int
    r: int
    s: int
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        for name in ("n", "h", "w", "c", "k", "r", "s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ShapeError(f"{name} must be a positive integer, got {value!r}")
        for name, low in (("stride", 1), ("pad", 0), ("dilation", 1)):
            pair = getattr(self, name)
            if not isinstance(pair, tuple) or len(pair) != 2 or any(not isinstance(v, int) or v < low for v in pair):
                raise ShapeError(f"{name} must be a (height, width) pair of integers >= {low}, got {pair!r}")
        if self.p < 1 or self.q < 1:
            raise ShapeError(
                f"output would be empty: {self.p}x{self.q} from input {self.h}x{self.w}, "
                f"filter {self.r}x{self.s}, pad {list(self.pad)}, stride {list(self.stride)}, "
                f"dilation {list(self.dilation)}"
            )

    @classmethod
    def from_layer(cls, layer: dict, n: int) -> Conv2dShape:
        """Build from a config layer entry (keys h, w, c, k, r, s and optional stride/pad/dilation)."""
        return cls(
            n=n,
            h=layer["h"],
            w=layer["w"],
            c=layer["c"],
            k=layer["k"],
            r=layer["r"],
            s=layer["s"],
            stride=pair(layer.get("stride", 1)),
            pad=pair(layer.get("pad", 0)),
            dilation=pair(layer.get("dilation", 1)),
        )

    @property
    def p(self) -> int:
        return (self.h + 2 * self.pad[0] - self.dilation[0] * (self.r - 1) - 1) // self.stride[0] + 1

    @property
    def q(self) -> int:
        return (self.w + 2 * self.pad[1] - self.dilation[1] * (self.s - 1) - 1) // self.stride[1] + 1

    @property
    def name(self) -> str:
        """Readable, unique id, e.g. n16_h56_w56_c64_k64_r3_s3_st1_p1 (dilation only when not 1)."""
        base = (
            f"n{self.n}_h{self.h}_w{self.w}_c{self.c}_k{self.k}_r{self.r}_s{self.s}"
            f"_st{fmt_pair(self.stride)}_p{fmt_pair(self.pad)}"
        )
        return base if self.dilation == (1, 1) else f"{base}_d{fmt_pair(self.dilation)}"

    @classmethod
    def from_name(cls, name: str) -> Conv2dShape:
        match = _NAME_RE.fullmatch(name)
        if not match:
            raise ShapeError(f"not a conv2d shape id: {name!r}")
        g = match.groupdict()
        return cls(
            **{key: int(g[key]) for key in ("n", "h", "w", "c", "k", "r", "s")},
            stride=parse_pair(g["st"], 1),
            pad=parse_pair(g["p"], 0),
            dilation=parse_pair(g["d"], 1),
        )

    @property
    def gemm_mnk(self) -> tuple[int, int, int]:
        """The implicit-GEMM view: M = N*P*Q output pixels, N = K filters, K = C*R*S reduction."""
        return (self.n * self.p * self.q, self.k, self.c * self.r * self.s)

    def flops(self) -> int:
        """Multiply-adds counted as two operations, padding included (the usual convention)."""
        return 2 * self.n * self.p * self.q * self.k * self.c * self.r * self.s

    def input_shape_nchw(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    def filter_shape_kcrs(self) -> tuple[int, int, int, int]:
        return (self.k, self.c, self.r, self.s)

    def output_shape_nkpq(self) -> tuple[int, int, int, int]:
        return (self.n, self.k, self.p, self.q)

    def min_bytes(self, in_bytes: int, out_bytes: int) -> int:
        """Fewest bytes a kernel must move: each input and filter element read once, each output written once."""
        n_in = self.n * self.c * self.h * self.w
        n_filter = self.k * self.c * self.r * self.s
        n_out = self.n * self.k * self.p * self.q
        return (n_in + n_filter) * in_bytes + n_out * out_bytes


# The id grammar; SHAPE_PATTERN (no named groups) is the workflow's `shape` wildcard constraint.
_NAME_RE = re.compile(
    r"n(?P<n>\d+)_h(?P<h>\d+)_w(?P<w>\d+)_c(?P<c>\d+)_k(?P<k>\d+)_r(?P<r>\d+)_s(?P<s>\d+)"
    r"_st(?P<st>\d+(?:x\d+)?)_p(?P<p>\d+(?:x\d+)?)(?:_d(?P<d>\d+(?:x\d+)?))?"
)
SHAPE_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _NAME_RE.pattern)
