"""conv2d's problem shape: its fields, id grammar, FLOP and minimum-byte counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from opbench.shapes import WINDOW_ID, ShapeError, WindowedShape


@dataclass(frozen=True, kw_only=True)
class Conv2dShape(WindowedShape):
    """A 2-D convolution (cross-correlation, zero padding), layout-neutral: K filters of C x R x S.

    h and w are the INPUT spatial sizes; p and q the output's (WindowedShape).
    """

    POSITIVE: ClassVar[tuple[str, ...]] = ("n", "h", "w", "c", "k", "r", "s")
    k: int

    @classmethod
    def from_layer(cls, layer: dict, n: int) -> Conv2dShape:
        """Build from a config layer entry (keys h, w, c, k, r, s and optional stride/pad/dilation)."""
        return cls(
            n=n, h=layer["h"], w=layer["w"], c=layer["c"], k=layer["k"], r=layer["r"], s=layer["s"],
            **cls.window_fields(layer),
        )  # fmt: skip

    @property
    def name(self) -> str:
        """Readable, unique id, e.g. n16_h56_w56_c64_k64_r3_s3_st1_p1 (dilation only when not 1)."""
        return f"n{self.n}_h{self.h}_w{self.w}_c{self.c}_k{self.k}_r{self.r}_s{self.s}" + self.window_id()

    @classmethod
    def from_name(cls, name: str) -> Conv2dShape:
        match = _NAME_RE.fullmatch(name)
        if not match:
            raise ShapeError(f"not a conv2d shape id: {name!r}")
        g = match.groupdict()
        return cls(**{key: int(g[key]) for key in ("n", "h", "w", "c", "k", "r", "s")}, **cls.parse_window(g))

    @property
    def gemm_mnk(self) -> tuple[int, int, int]:
        """The implicit-GEMM view: M = N*P*Q output pixels, N = K filters, K = C*R*S reduction."""
        return (self.n * self.p * self.q, self.k, self.c * self.r * self.s)

    def flops(self) -> int:
        """Multiply-adds counted as two operations, padding included (the usual convention)."""
        return 2 * self.n * self.p * self.q * self.k * self.c * self.r * self.s

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
_NAME_RE = re.compile("_".join(rf"{f}(?P<{f}>\d+)" for f in "nhwckrs") + WINDOW_ID)
SHAPE_PATTERN = re.sub(r"\(\?P<\w+>", "(?:", _NAME_RE.pattern)
