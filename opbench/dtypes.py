"""Element types of the benchmark matrix: storage type, accumulator type and their NumPy/MLIR names."""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True, kw_only=True)
class DType:
    name: str  # id used in the config, paths and records
    element: str  # MLIR element type of the inputs and the output (every backend writes Y in it, like cuDNN)
    accumulator: str  # MLIR element type of the sums inside the op
    tolerance_key: str  # which entry of config `tolerances` judges results of this dtype

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self.element]

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def output_itemsize(self) -> int:
        return self.itemsize  # Y is stored in the element type


_NUMPY: dict[str, np.dtype] = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
}

DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType(name="f32", element="f32", accumulator="f32", tolerance_key="f32"),
        DType(name="f16", element="f16", accumulator="f32", tolerance_key="f16"),
        DType(name="bf16", element="bf16", accumulator="f32", tolerance_key="bf16"),
        DType(name="f16_acc_f16", element="f16", accumulator="f16", tolerance_key="f16"),
    )
}


def get_dtype(name: str) -> DType:
    try:
        return DTYPES[name]
    except KeyError:
        raise KeyError(f"unknown dtype {name!r} (known: {', '.join(DTYPES)})") from None


def round_to(values: np.ndarray, element: str) -> np.ndarray:
    """Round float values to an element type and return them as float32 (exact for f16/bf16)."""
    return values.astype(_NUMPY[element]).astype(np.float32)
