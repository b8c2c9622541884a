"""Generated MLIR: compiled with the real iree-compile for llvm-cpu, run, and compared with the float64 reference."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from opbench.backends.iree import run_module, tool
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.shapes import Conv2dShape
from opbench.verify import relative_error

OP = get_op("conv2d")
LAYOUTS = ("nhwc_hwcf", "nhwc_fhwc", "nchw_fchw")
DTYPES = ("f32", "f16", "bf16")
LLVM_CPU_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
]
TOLERANCE = {"f32": 1e-5, "f16": 1e-3, "bf16": 1e-3}

SHAPES = {
    "s2_p1": Conv2dShape(n=1, h=9, w=7, c=3, k=4, r=3, s=3, stride=(2, 2), pad=(1, 1)),
    "d2_p0": Conv2dShape(n=2, h=8, w=9, c=2, k=3, r=3, s=3, dilation=(2, 2)),
    # Every parameter differs between height and width, so a swapped attribute or pad dimension shows.
    "asym": Conv2dShape(n=1, h=9, w=8, c=3, k=4, r=3, s=2, stride=(2, 1), pad=(1, 0), dilation=(1, 2)),
}
# Every (layout, dtype) once (9 compiles); the shapes rotate so each layout and each dtype meets every shape.
CASES = [
    (layout, dtype, list(SHAPES)[(i + j) % len(SHAPES)])
    for i, layout in enumerate(LAYOUTS)
    for j, dtype in enumerate(DTYPES)
]


@pytest.fixture(scope="module")
def iree_compile() -> str:
    try:
        path = tool("iree-compile")
    except Exception as e:  # not on PATH and no iree-base-compiler wheel
        pytest.skip(f"iree-compile not found: {e}")
    if not path or not Path(path).exists():
        pytest.skip("iree-compile not found")
    return path


@pytest.mark.parametrize(("layout", "dtype", "shape_id"), CASES)
def test_compiled_module_matches_reference(
    iree_compile: str, tmp_path: Path, layout: str, dtype: str, shape_id: str
) -> None:
    shape = SHAPES[shape_id]
    dt = get_dtype(dtype)
    source = tmp_path / "conv2d.mlir"
    module = tmp_path / "conv2d.vmfb"
    source.write_text(OP.mlir(shape, dt, layout))
    proc = subprocess.run(
        [iree_compile, str(source), "-o", str(module), *LLVM_CPU_FLAGS], capture_output=True, text=True
    )
    assert proc.returncode == 0, f"iree-compile failed:\n{proc.stderr}\n{source.read_text()}"

    seed = int(np.random.default_rng().integers(2**32))
    inputs = OP.make_inputs(shape, dt, layout, seed)
    output = run_module(module=module, function=OP.name, driver="local-task", inputs=list(inputs.values()), dtype=dt)
    reference = OP.reference(inputs, shape, layout)
    assert output.shape == reference.shape == OP.output_shape(shape, layout)
    assert output.dtype == dt.output_numpy
    assert np.all(np.isfinite(output))
    err = relative_error(output, reference)
    assert err < TOLERANCE[dtype], f"relerr {err:.3e} (seed {seed})"


# ---------------------------------------------------------------- the text itself (no compiler needed)


def test_signature_types_follow_layout_and_dtype() -> None:
    shape = SHAPES["asym"]  # P=5, Q=6
    text = OP.mlir(shape, get_dtype("bf16"), "nhwc_fhwc")
    assert "func.func @conv2d(%input: tensor<1x9x8x3xbf16>, %filter: tensor<4x3x2x3xbf16>) -> tensor<1x5x6x4xf32>" in (
        text
    )
    assert "linalg.conv_2d_nhwc_fhwc" in text
    text = OP.mlir(shape, get_dtype("f16_acc_f16"), "nchw_fchw")
    assert "-> tensor<1x4x5x6xf16>" in text
    assert "linalg.conv_2d_nchw_fchw" in text


def test_attributes_and_padding_in_height_width_order() -> None:
    text = OP.mlir(SHAPES["asym"], get_dtype("f32"), "nhwc_hwcf")
    assert "dilations = dense<[1, 2]> : tensor<2xi64>" in text
    assert "strides = dense<[2, 1]> : tensor<2xi64>" in text
    assert "low[0, 1, 0, 0] high[0, 1, 0, 0]" in text
    assert "tensor<1x11x8x3xf32>" in text  # the padded input
    text = OP.mlir(SHAPES["asym"], get_dtype("f32"), "nchw_fchw")
    assert "low[0, 0, 1, 0] high[0, 0, 1, 0]" in text
    assert "tensor<1x3x11x8xf32>" in text


def test_no_pad_op_without_padding() -> None:
    text = OP.mlir(SHAPES["d2_p0"], get_dtype("f32"), "nhwc_hwcf")
    assert "tensor.pad" not in text
    assert "ins(%input, %filter" in text
