"""Operator registry. An op is one folder, opbench/ops/<op>/, whose `__init__.py` defines and registers an Op
subclass; the folder holds everything about the op (its shape type and id grammar, FLOP and byte counts, the schema
of its config layers, input generator, float64 reference, MLIR programs and layouts). Folders are discovered: adding
one adds the op, nothing else is edited. A duplicate name is an error.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
import yaml

from opbench.codedeps import module_files
from opbench.dtypes import DType
from opbench.registry import Registry, import_members


class Shape(Protocol):
    """What the generic code needs of an op's shape: its id, its work and its minimum traffic."""

    @property
    def name(self) -> str: ...

    def flops(self) -> int: ...

    def min_bytes(self, in_bytes: int, out_bytes: int) -> int: ...


class ReferenceParts(NamedTuple):
    """What verifying a problem's outputs takes (opbench.verify): the float64 reference, each element's product scale
    and product count, and the scale of a rounded intermediate (None where the op rounds none)."""

    reference: np.ndarray
    scale: np.ndarray
    terms: int
    intermediate: np.ndarray | None


class Op(ABC):
    """One operator: its shapes, layouts, random inputs, float64 reference and MLIR program."""

    name: ClassVar[str]
    layouts: ClassVar[tuple[str, ...]]
    input_names: ClassVar[tuple[str, ...]]
    shape_pattern: ClassVar[str]  # regex of the shape ids (the workflow's `shape` wildcard constraint)
    form_pattern: ClassVar[str] = "plain"  # regex of the names of its MLIR program forms
    # Bound by memory, not arithmetic (e.g. depthwise convolution: 2*R*S FLOPs per output): its tables and plots show
    # GB/s of the shape's minimum traffic and the fraction of the card's copy bandwidth, not FLOP/s.
    memory_bound: ClassVar[bool] = False
    # The modules of the op's folder that decide each kind of job (beside the folder's __init__.py): editing one
    # reruns those jobs only. Keys: "inputs", "reference", "mlir".
    stage_modules: ClassVar[dict[str, tuple[str, ...]]]

    @abstractmethod
    def shape_from_layer(self, layer: dict[str, Any], batch: int) -> Shape:
        """The shape of one config layer entry at one batch size (raises ShapeError)."""

    @abstractmethod
    def shape_from_name(self, name: str) -> Shape:
        """Inverse of shape.name."""

    @abstractmethod
    def make_inputs(self, shape: Any, dtype: DType, layout: str, seed: int) -> dict[str, np.ndarray]:
        """Random inputs in the given layout, rounded to the dtype and stored as float32."""

    @abstractmethod
    def reference(self, inputs: dict[str, np.ndarray], shape: Any, layout: str) -> np.ndarray:
        """The float64 result in the layout's output order."""

    @abstractmethod
    def product_scale(self, inputs: dict[str, np.ndarray], shape: Any, layout: str) -> tuple[np.ndarray, int]:
        """What rounding can do to each output element: sqrt(sum of (a*b)^2 over the products summed into it), in
        the output's layout, and how many products each sums (the reduction length). The element-wise verdict
        (opbench.verify) scales its bound by these."""

    def rounded_intermediate_scale(self, inputs: dict[str, np.ndarray], shape: Any, layout: str) -> np.ndarray | None:
        """For an op that rounds values to its element type mid-computation (separable_conv2d's depthwise result,
        before its pointwise stage): per output element, in the output's layout, sqrt(sum of (v * w)^2) over the
        rounded values v that reach it and the weights w that carry each into it. The element-wise verdict
        (opbench.verify) adds what their rounding can do. None (the default): nothing is rounded mid-way."""
        return None

    def reference_and_scales(self, inputs: dict[str, np.ndarray], shape: Any, layout: str) -> ReferenceParts:
        """reference, product_scale and rounded_intermediate_scale together (what a reference job stores); an op
        whose three share work (attention's one softmax) computes them in one pass."""
        scale, terms = self.product_scale(inputs, shape, layout)
        return ReferenceParts(
            self.reference(inputs, shape, layout), scale, terms, self.rounded_intermediate_scale(inputs, shape, layout)
        )

    @abstractmethod
    def mlir(self, shape: Any, dtype: DType, layout: str, form: str = "plain") -> str:
        """A self-contained MLIR module with one public function named after the op, in the named program form."""

    @abstractmethod
    def input_shapes(self, shape: Any, layout: str) -> dict[str, tuple[int, ...]]:
        """Array shape of each input, in input_names order."""

    @abstractmethod
    def output_shape(self, shape: Any, layout: str) -> tuple[int, ...]:
        """Array shape of the result."""

    def check_layout(self, layout: str) -> None:
        if layout not in self.layouts:
            raise ValueError(f"op {self.name!r} has no layout {layout!r} (known: {', '.join(self.layouts)})")

    @property
    def folder(self) -> Path:
        return Path(importlib.import_module(type(self).__module__).__file__ or "").parent

    def layer_schema(self) -> dict[str, Any]:
        """The JSON schema of one config layer of this op (the folder's layer.schema.yaml)."""
        return _layer_schema(self.folder / "layer.schema.yaml")

    def code_files(self, stage: str) -> list[Path]:
        """The files whose code decides this op's `stage` jobs (inputs, reference, mlir): inputs of those jobs."""
        package = type(self).__module__
        return sorted(
            {self.folder / "__init__.py", *module_files(*(f"{package}.{m}" for m in self.stage_modules[stage]))}
        )


@cache
def _layer_schema(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


OPS: Registry[Op] = Registry("op")
register_op = OPS.decorator()
get_op = OPS.get_named


def shape_pattern() -> str:
    """Every op's shape ids: the workflow's `shape` wildcard constraint."""
    return "|".join(f"(?:{op.shape_pattern})" for op in OPS.values())


def layout_pattern() -> str:
    """Every op's layouts: the workflow's `layout` wildcard constraint."""
    return "|".join(sorted({layout for op in OPS.values() for layout in op.layouts}))


def form_pattern() -> str:
    """Every op's program-form names: the workflow's `form` wildcard constraint."""
    return "|".join(f"(?:{op.form_pattern})" for op in OPS.values())


import_members(__name__, __path__)
