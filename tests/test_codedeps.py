"""Which files decide which jobs (opbench/codedeps.py): a backend's rows depend on its own code and what it imports,
never on another backend's; an op's reference jobs on its reference, not on its MLIR."""

from __future__ import annotations

from pathlib import Path

from opbench.backends import BACKENDS, get_backend
from opbench.codedeps import module_files
from opbench.ops import get_op

PACKAGE = Path(__file__).resolve().parents[1] / "opbench"


def names(files: list[Path]) -> set[str]:
    return {f.relative_to(PACKAGE).as_posix() for f in files}


def test_a_backends_code_is_its_module_and_what_it_imports() -> None:
    cudnn = names(get_backend("cudnn").code_files())
    assert {"backends/cudnn/__init__.py", "backends/cudnn/pytorch.py", "backends/cudnn/frontend.py"} <= cudnn
    assert {"backends/cudnn/common.py", "backends/base.py", "gpu_timing.py"} <= cudnn
    cuda = names(get_backend("cuda").code_files())
    assert "backends/cuda.py" in cuda and "gpu_timing.py" not in cuda  # its timing is the harness's
    assert "backends/cuda.py" in names(get_backend("cutlass").code_files())  # cutlass runs through cuda's harness
    iree = names(get_backend("iree-cuda").code_files())
    assert {"backends/iree/__init__.py", "backends/iree/dispatch.py", "backends/iree/tuning.py"} <= iree


def test_no_backend_depends_on_another_unless_it_imports_it() -> None:
    modules = {name: f"backends/{type(b).__module__.split('.')[2].replace('.', '/')}" for name, b in BACKENDS.items()}
    for name, backend in BACKENDS.items():
        code = names(backend.code_files())
        others = {m for other, m in modules.items() if other != name and not m.startswith(modules[name])}
        if name == "cutlass":
            others.discard("backends/cuda")
        if name == "triton-attention":  # the reader of Triton's generated code, and no other file of `triton`
            assert "backends/triton_conv/asm.py" in code
            code.discard("backends/triton_conv/asm.py")
        assert not {f for f in code for m in others if f.startswith(m + ".py") or f.startswith(m + "/")}, name
        assert "backends/__init__.py" not in code  # the registry's discovery imports every backend


def test_records_and_verdicts_do_not_depend_on_any_backends_code() -> None:
    shared = names(module_files("opbench.jobs", "opbench.verify"))
    registry = {"backends/__init__.py", "backends/base.py"}  # what a backend is, and the registry's lookup
    assert not {f for f in shared if f.startswith("backends/")} - registry
    assert "gpu_timing.py" not in shared and "device_probe.py" not in shared


def test_an_ops_jobs_depend_on_the_modules_of_their_kind() -> None:
    conv2d = get_op("conv2d")
    reference = names(conv2d.code_files("reference"))
    assert {"ops/conv2d/__init__.py", "ops/conv2d/reference.py", "ops/conv2d/layouts.py"} <= reference
    assert "ops/conv2d/mlir.py" not in reference and "mlirgen.py" not in reference
    assert {"ops/conv2d/mlir.py", "mlirgen.py"} <= names(conv2d.code_files("mlir"))
    assert "ops/conv2d/reference.py" not in names(conv2d.code_files("inputs"))
