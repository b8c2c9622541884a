"""Shape helpers shared by the ops: the error every op's shape raises, (height, width) pairs, the inverse of a
layout's axis permutation, and the sliding-window geometry of the convolution ops (WindowedShape)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


class ShapeError(ValueError):
    """A shape that describes no valid problem; the message names the bad field and value."""


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The inverse of an axis permutation (a layout's order back to the canonical one)."""
    return tuple(sorted(range(len(perm)), key=lambda i: perm[i]))


def pair(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """A config value that is one int (both dims) or a [height, width] pair."""
    if isinstance(value, int):
        return (value, value)
    h, w = value
    return (int(h), int(w))


def fmt_pair(value: tuple[int, int]) -> str:
    """`3` for (3, 3), `3x1` for (3, 1): the pair as shape ids spell it."""
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


def parse_pair(text: str | None, default: int) -> tuple[int, int]:
    """Inverse of fmt_pair (None: the default on both dims)."""
    if text is None:
        return (default, default)
    parts = [int(v) for v in text.split("x")]
    return (parts[0], parts[-1])


# The window part of a convolution's shape id: stride, pad and (when not 1) dilation, each a fmt_pair.
WINDOW_ID = r"_st(?P<st>\d+(?:x\d+)?)_p(?P<p>\d+(?:x\d+)?)(?:_d(?P<d>\d+(?:x\d+)?))?"


@dataclass(frozen=True, kw_only=True)
class WindowedShape:
    """A 2-D sliding window over an N x C x H x W input with an R x S filter: the geometry (output size P x Q,
    validation, the window part of the id) that conv2d's and depthwise_conv2d's shapes share. h and w are the INPUT
    sizes. A subclass lists its integer fields in POSITIVE."""

    POSITIVE: ClassVar[tuple[str, ...]] = ("n", "h", "w", "c", "r", "s")
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
        for name in self.POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ShapeError(f"{name} must be a positive integer, got {value!r}")
        for name, low in (("stride", 1), ("pad", 0), ("dilation", 1)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) != 2 or any(not isinstance(v, int) or v < low for v in value):
                raise ShapeError(f"{name} must be a (height, width) pair of integers >= {low}, got {value!r}")
        if self.p < 1 or self.q < 1:
            raise ShapeError(
                f"output would be empty: {self.p}x{self.q} from input {self.h}x{self.w}, "
                f"filter {self.r}x{self.s}, pad {list(self.pad)}, stride {list(self.stride)}, "
                f"dilation {list(self.dilation)}"
            )

    @staticmethod
    def window_fields(layer: dict) -> dict[str, tuple[int, int]]:
        """stride, pad and dilation of a config layer entry (each an int or a pair; defaults 1, 0, 1)."""
        return {
            "stride": pair(layer.get("stride", 1)),
            "pad": pair(layer.get("pad", 0)),
            "dilation": pair(layer.get("dilation", 1)),
        }

    @staticmethod
    def parse_window(groups: dict[str, str | None]) -> dict[str, tuple[int, int]]:
        """stride, pad and dilation from a WINDOW_ID match's groups."""
        return {
            "stride": parse_pair(groups["st"], 1),
            "pad": parse_pair(groups["p"], 0),
            "dilation": parse_pair(groups["d"], 1),
        }

    @property
    def p(self) -> int:
        return (self.h + 2 * self.pad[0] - self.dilation[0] * (self.r - 1) - 1) // self.stride[0] + 1

    @property
    def q(self) -> int:
        return (self.w + 2 * self.pad[1] - self.dilation[1] * (self.s - 1) - 1) // self.stride[1] + 1

    def window_id(self) -> str:
        """The window part of the id, e.g. `_st1_p1` (dilation only when not 1)."""
        base = f"_st{fmt_pair(self.stride)}_p{fmt_pair(self.pad)}"
        return base if self.dilation == (1, 1) else f"{base}_d{fmt_pair(self.dilation)}"

    def input_shape_nchw(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    def tap_windows(self, x: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """For each filter tap (r, s), the N x C x P x Q view of the zero-padded canonical input x[N,C,H,W] that
        the tap multiplies (the references sum their products tap by tap)."""
        (ph, pw), (sh, sw), (dh, dw) = self.pad, self.stride, self.dilation
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        for r in range(self.r):
            for s in range(self.s):
                yield r, s, xp[:, :, r * dh : r * dh + sh * (self.p - 1) + 1 : sh,
                               s * dw : s * dw + sw * (self.q - 1) + 1 : sw]  # fmt: skip
