"""Generated MLIR: compiled with the real iree-compile for llvm-cpu, run, and compared with the float64 reference."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from opbench.backends import Job, get_backend
from opbench.backends.iree.runtime import run_module
from opbench.config import load_schema
from opbench.dtypes import get_dtype, round_to
from opbench.ops import get_op
from opbench.ops.conv2d.mlir import ProgramForm
from opbench.ops.conv2d.shape import Conv2dShape
from opbench.verify import relative_error

OP = get_op("conv2d")
LAYOUTS = ("nhwc_hwcf", "nhwc_fhwc", "nchw_fchw")
DTYPES = ("f32", "f16", "bf16")
LLVM_CPU_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
]
# The output is rounded to the element type: its relative error is at most the type's unit roundoff (f16 2^-11,
# bf16 2^-9 ~ 2e-3), plus the f32 accumulation's own (small at these sizes).
TOLERANCE = {"f32": 1e-5, "f16": 1e-3, "bf16": 4e-3}

SHAPES = {
    "s2_p1": Conv2dShape(n=1, h=9, w=7, c=3, k=4, r=3, s=3, stride=(2, 2), pad=(1, 1)),
    "d2_p0": Conv2dShape(n=2, h=8, w=9, c=2, k=3, r=3, s=3, dilation=(2, 2)),
    # Every parameter differs between height and width, so a swapped attribute or pad dimension shows.
    "asym": Conv2dShape(n=1, h=9, w=8, c=3, k=4, r=3, s=2, stride=(2, 1), pad=(1, 0), dilation=(1, 2)),
    # a strided 1x1 (it falls to nchw_fchw f16, the case IREE's CUDA path computes wrong: docs/iree-cuda.md)
    "1x1_s2": Conv2dShape(n=2, h=8, w=7, c=16, k=8, r=1, s=1, stride=(2, 2)),
}
# Every (layout, dtype) once (9 compiles); the shapes rotate over the layouts and dtypes.
CASES = [
    (layout, dtype, list(SHAPES)[(i + j) % len(SHAPES)])
    for i, layout in enumerate(LAYOUTS)
    for j, dtype in enumerate(DTYPES)
]


# Program forms (split-K, batch-innermost pixel order): NHWC layouts; channels split 2 or 4 ways (c = 8).
FORM_SHAPES = {
    "s2_p1": Conv2dShape(n=2, h=9, w=7, c=8, k=5, r=3, s=3, stride=(2, 2), pad=(1, 1)),
    "asym": Conv2dShape(n=3, h=9, w=8, c=8, k=4, r=3, s=2, stride=(2, 1), pad=(1, 0), dilation=(1, 2)),
    "1x1": Conv2dShape(n=2, h=5, w=6, c=8, k=3, r=1, s=1),
}
FORM_CASES = [
    ("nhwc_fhwc", "f16", "s2_p1", "splitk2_pqn"),
    ("nhwc_hwcf", "bf16", "asym", "splitk4_npq"),
    ("nhwc_fhwc", "f32", "asym", "splitk1_pqn"),
    ("nhwc_hwcf", "f16", "1x1", "splitk4_pqn"),
    ("nhwc_fhwc", "bf16", "1x1", "splitk2_npq"),
]


def compile_for_cpu(iree_compile: str, source: Path, module: Path) -> None:
    proc = subprocess.run(
        [iree_compile, str(source), "-o", str(module), *LLVM_CPU_FLAGS], capture_output=True, text=True
    )
    assert proc.returncode == 0, f"iree-compile failed:\n{proc.stderr}\n{source.read_text()}"


def check_against_reference(module: Path, shape: Conv2dShape, dtype: str, layout: str) -> None:
    dt = get_dtype(dtype)
    seed = int(np.random.default_rng().integers(2**32))
    inputs = OP.make_inputs(shape, dt, layout, seed)
    output = run_module(
        module=module, function=OP.name, driver="local-task", inputs=list(inputs.values()), dtype=dt,
        output_shape=OP.output_shape(shape, layout),
    )  # fmt: skip
    reference = OP.reference(inputs, shape, layout)
    assert output.shape == reference.shape == OP.output_shape(shape, layout)
    assert output.dtype == dt.numpy  # the output has the input's element type (f16 in, f16 out)
    assert np.all(np.isfinite(output))
    err = relative_error(output, reference)
    assert err < TOLERANCE[dtype], f"relerr {err:.3e} (seed {seed})"


@pytest.mark.parametrize(("layout", "dtype", "shape_id"), CASES)
def test_compiled_module_matches_reference(
    iree_compile: str, tmp_path: Path, layout: str, dtype: str, shape_id: str
) -> None:
    shape = SHAPES[shape_id]
    source = tmp_path / "conv2d.mlir"
    module = tmp_path / "conv2d.vmfb"
    source.write_text(OP.mlir(shape, get_dtype(dtype), layout))
    compile_for_cpu(iree_compile, source, module)
    check_against_reference(module, shape, dtype, layout)


@pytest.mark.parametrize(("layout", "dtype", "shape_id", "form"), FORM_CASES)
def test_program_forms_compute_the_same_convolution(
    iree_compile: str, tmp_path: Path, layout: str, dtype: str, shape_id: str, form: str
) -> None:
    shape = FORM_SHAPES[shape_id]
    source = tmp_path / "conv2d.mlir"
    module = tmp_path / "conv2d.vmfb"
    source.write_text(OP.mlir(shape, get_dtype(dtype), layout, form))
    compile_for_cpu(iree_compile, source, module)
    check_against_reference(module, shape, dtype, layout)


def test_split_form_writes_partials_and_a_sum() -> None:
    shape = FORM_SHAPES["s2_p1"]
    text = OP.mlir(shape, get_dtype("f16"), "nhwc_fhwc", "splitk2_pqn")
    # channels 8 -> 2 slices of 4; partials [slice, p, q, n, k] in f32; the sum writes NHWC, then f16
    assert "output_shape [2, 9, 7, 2, 4]" in text
    assert "tensor<2x5x4x2x5xf32>" in text
    assert "(n, p * 2 + kh, q * 2 + kw, sk, c)" in text
    assert text.count("linalg.generic") == 3  # convolution, sum over slices, truncation
    assert "linalg.conv_2d" not in text


def test_plain_form_is_the_named_op() -> None:
    shape = SHAPES["s2_p1"]
    assert OP.mlir(shape, get_dtype("f16"), "nhwc_fhwc", "plain") == OP.mlir(shape, get_dtype("f16"), "nhwc_fhwc")


@pytest.mark.parametrize("name", ["plain", "splitk1_pqn", "splitk4_npq", "splitk16_pqn"])
def test_program_form_names_round_trip(name: str) -> None:
    assert ProgramForm.parse(name).name == name


def test_config_schema_takes_the_program_form_names() -> None:
    """The schema's pattern for a tuning rule's `form` spells ProgramForm.NAMES again (JSON schema cannot import it)."""
    schema = load_schema()
    rule = schema["properties"]["backends"]["properties"]["iree-cuda"]["properties"]["tuning_specs"][
        "additionalProperties"
    ]["items"]
    assert rule["properties"]["form"]["pattern"] == f"^({ProgramForm.NAMES})$"


@pytest.mark.parametrize(
    ("name", "message"),
    [("splitk0_pqn", "split_k must be >= 1"), ("splitk4", "unknown program form"), ("split4_nqp", "unknown")],
)
def test_bad_program_forms_are_named(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProgramForm.parse(name)


def test_split_form_rejects_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="does not divide the 8 input channels"):
        OP.mlir(FORM_SHAPES["1x1"], get_dtype("f16"), "nhwc_fhwc", "splitk3_npq")
    with pytest.raises(ValueError, match="NHWC layouts, not 'nchw_fchw'"):
        OP.mlir(FORM_SHAPES["1x1"], get_dtype("f16"), "nchw_fchw", "splitk2_npq")


def test_backend_run_gives_a_savable_output_of_the_element_type(iree_compile: str, tmp_path: Path) -> None:
    """IreeBackend.run, what the workflow's run job calls: f16 comes back as f16, bf16 (which npy cannot hold)
    widened to float32 exactly; both survive np.save/np.load as the run and verify jobs use them."""
    shape = SHAPES["s2_p1"]
    backend = get_backend("iree-llvm-cpu")
    for dtype, saved_as in (("f16", np.float16), ("bf16", np.float32)):
        dt = get_dtype(dtype)
        source, module = tmp_path / f"{dtype}.mlir", tmp_path / dtype
        source.write_text(OP.mlir(shape, dt, "nhwc_fhwc"))
        backend.build({"flags": LLVM_CPU_FLAGS, "iree_compile": "test"}, [source], module)  # the build job's call
        inputs = OP.make_inputs(shape, dt, "nhwc_fhwc", seed=7)
        job = Job(
            op=OP.name, shape=shape, dtype=dt, layout="nhwc_fhwc", variant="default", inputs=inputs,
            artifact=module, options={"driver": "local-task"},
        )  # fmt: skip
        output = backend.run(job)
        assert output.dtype == saved_as
        np.save(tmp_path / f"{dtype}.npy", output)
        loaded = np.load(tmp_path / f"{dtype}.npy")
        assert loaded.dtype == saved_as
        np.testing.assert_array_equal(loaded, output)
        assert np.array_equal(round_to(loaded, dt.element), loaded)  # values of the element type
        assert relative_error(loaded, OP.reference(inputs, shape, "nhwc_fhwc")) < TOLERANCE[dtype]


def test_run_module_rejects_a_result_of_another_size(iree_compile: str, tmp_path: Path) -> None:
    """A module that returns f32 (the accumulator, as the programs did before) for f16 inputs is caught."""
    source, module = tmp_path / "widen.mlir", tmp_path / "widen.vmfb"
    source.write_text(
        "func.func @widen(%x: tensor<2x3xf16>) -> tensor<2x3xf32> {\n"
        "  %y = arith.extf %x : tensor<2x3xf16> to tensor<2x3xf32>\n"
        "  return %y : tensor<2x3xf32>\n"
        "}\n"
    )
    subprocess.run([iree_compile, str(source), "-o", str(module), *LLVM_CPU_FLAGS], check=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with pytest.raises(RuntimeError, match=r"returned 24 bytes, expected 12 \(2x3xf16\)"):
        run_module(
            module=module,
            function="widen",
            driver="local-task",
            inputs=[x],
            dtype=get_dtype("f16"),
            output_shape=(2, 3),
        )


# ---------------------------------------------------------------- the text itself (no compiler needed)


def test_signature_types_follow_layout_and_dtype() -> None:
    shape = SHAPES["asym"]  # P=5, Q=6
    text = OP.mlir(shape, get_dtype("bf16"), "nhwc_fhwc")
    assert "func.func @conv2d(%input: tensor<1x9x8x3xbf16>, %filter: tensor<4x3x2x3xbf16>) -> tensor<1x5x6x4xbf16>" in (
        text
    )
    assert "linalg.conv_2d_nhwc_fhwc" in text
    text = OP.mlir(shape, get_dtype("f16_acc_f16"), "nchw_fchw")
    assert "-> tensor<1x4x5x6xf16>" in text
    assert "linalg.conv_2d_nchw_fchw" in text


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_narrow_inputs_accumulate_wide_and_return_the_element_type(dtype: str) -> None:
    """f16/bf16 in: the conv accumulates into f32, then one elementwise truncf gives the f16/bf16 result."""
    text = OP.mlir(SHAPES["asym"], get_dtype(dtype), "nhwc_fhwc")
    lines = text.splitlines()
    assert lines[0].endswith(f"-> tensor<1x5x6x4x{dtype}> {{")
    assert "%init = linalg.fill ins(%acc_zero : f32) outs(%empty : tensor<1x5x6x4xf32>)" in text
    assert "outs(%init : tensor<1x5x6x4xf32>) -> tensor<1x5x6x4xf32>" in text  # the conv's accumulator
    assert text.count("linalg.generic") == 1 and text.count('"parallel"') == 4  # elementwise over the output
    assert text.count("arith.truncf") == 1
    assert f"arith.truncf %a : f32 to {dtype}" in text
    assert f"ins(%acc : tensor<1x5x6x4xf32>) outs(%out_empty : tensor<1x5x6x4x{dtype}>)" in text
    assert lines[-2] == f"  return %result : tensor<1x5x6x4x{dtype}>"


@pytest.mark.parametrize("dtype", ["f32", "f16_acc_f16"])
def test_same_type_accumulation_returns_the_conv_as_it_is(dtype: str) -> None:
    element = get_dtype(dtype).element
    text = OP.mlir(SHAPES["asym"], get_dtype(dtype), "nchw_fchw")
    assert "linalg.generic" not in text and "truncf" not in text
    assert "  %result = linalg.conv_2d_nchw_fchw" in text
    assert text.splitlines()[-2] == f"  return %result : tensor<1x4x5x6x{element}>"


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
