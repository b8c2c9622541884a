"""depthwise_conv2d's MLIR program: IREE's named linalg depthwise convolution of the layout."""

from __future__ import annotations

from typing import Any

from opbench.mlirgen import named_convolution
from opbench.ops.depthwise_conv2d.layouts import LINALG_OPS


def depthwise_conv2d(*, layout: str, **program: Any) -> str:
    """The layout's linalg.depthwise_conv_2d_* in one function (opbench.mlirgen.named_convolution's arguments)."""
    return named_convolution(LINALG_OPS[layout], **program)
