"""Shape helpers shared by the ops: the error every op's shape raises, and (height, width) pairs."""

from __future__ import annotations


class ShapeError(ValueError):
    """A shape that describes no valid problem; the message names the bad field and value."""


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
