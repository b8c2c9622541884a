"""Operator registry. Each op is one module that registers itself; a duplicate name is an error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from opbench.dtypes import DType
from opbench.mlirgen import ProgramForm


class Op(ABC):
    """One operator: its shapes, layouts, random inputs, float64 reference and MLIR program."""

    name: ClassVar[str]
    layouts: ClassVar[tuple[str, ...]]
    input_names: ClassVar[tuple[str, ...]]

    @abstractmethod
    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> Any:
        """The shape of one config layer entry at one batch size (raises ShapeError)."""

    @abstractmethod
    def shape_from_name(self, name: str) -> Any:
        """Inverse of shape.name."""

    @abstractmethod
    def make_inputs(self, shape: Any, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        """Random inputs in the given layout, rounded to the dtype and stored as float32."""

    @abstractmethod
    def reference(self, inputs: dict[str, np.ndarray], shape: Any, layout: str) -> np.ndarray:
        """The float64 result in the layout's output order."""

    @abstractmethod
    def mlir(self, shape: Any, dtype: DType, layout: str, form: ProgramForm | None = None) -> str:
        """A self-contained MLIR module with one public function named after the op, in the given program form
        (None: the op's plain form)."""

    @abstractmethod
    def input_shapes(self, shape: Any, layout: str) -> dict[str, tuple[int, ...]]:
        """Array shape of each input, in input_names order."""

    @abstractmethod
    def output_shape(self, shape: Any, layout: str) -> tuple[int, ...]:
        """Array shape of the result."""

    def check_layout(self, layout: str) -> None:
        if layout not in self.layouts:
            raise ValueError(f"op {self.name!r} has no layout {layout!r} (known: {', '.join(self.layouts)})")


OPS: dict[str, Op] = {}


def register_op(cls: type[Op]) -> type[Op]:
    if cls.name in OPS:
        raise ValueError(f"op {cls.name!r} registered twice ({type(OPS[cls.name]).__name__} and {cls.__name__})")
    OPS[cls.name] = cls()
    return cls


def get_op(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r} (known: {', '.join(sorted(OPS))})") from None


# Importing the modules registers the ops.
from opbench.ops import conv2d as _conv2d  # noqa: E402, F401
