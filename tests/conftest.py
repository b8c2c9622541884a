"""Fixtures shared by several test files."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opbench.backends import Job, get_backend, harness_process
from opbench.backends.cuda import build, build_sources, variant_archs, variant_info
from opbench.dtypes import DType
from opbench.iree_tools import tool
from opbench.ops import Op
from opbench.paths import VARIANT_ARTIFACT

REPO = Path(__file__).resolve().parent.parent
LLVM_CPU_FLAGS = [
    "--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
]  # fmt: skip


@pytest.fixture(scope="session")
def serving_pool() -> Iterator[harness_process.Pool]:
    pool = harness_process.Pool()
    yield pool
    pool.close()


@pytest.fixture(params=["one_shot", "served"])
def harness_mode(
    request: pytest.FixtureRequest, serving_pool: harness_process.Pool, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A process per call, or (as in the GPU worker) every served call of the session through one persistent
    `--serve` process per binary: many problems, dtypes and modes in one process, so state one request leaves behind
    shows up as a wrong result of another."""
    if request.param == "served":
        monkeypatch.setattr(harness_process, "_pool", serving_pool)
        monkeypatch.setattr(harness_process, "_timeout_s", 300.0)
    return request.param


@pytest.fixture(scope="session")
def iree_compile() -> str:
    """iree-compile's path (the iree-base-compiler wheel's, or PATH's); the test is skipped where there is none."""
    try:
        path = tool("iree-compile")
    except (FileNotFoundError, ImportError) as error:
        pytest.skip(f"iree-compile not found: {error}")
    if not path or not Path(path).exists():
        pytest.skip("iree-compile not found")
    return path


IreeCpuRun = Callable[..., tuple[dict[str, np.ndarray], np.ndarray]]


@pytest.fixture
def iree_cpu_run(iree_compile: str, tmp_path: Path) -> IreeCpuRun:
    """`run(op, shape, dtype, layout, seed=5)`: the op's plain MLIR built by the iree-llvm-cpu backend's build job call
    and run by its run job call on seeded inputs; returns (inputs, output)."""
    backend = get_backend("iree-llvm-cpu")

    def run(op: Op, shape: Any, dtype: DType, layout: str, seed: int = 5) -> tuple[dict[str, np.ndarray], np.ndarray]:
        folder = tmp_path / f"{op.name}-{layout}-{dtype.name}-{shape.name}"
        folder.mkdir()
        source, module = folder / "p.mlir", folder / "m"
        source.write_text(op.mlir(shape, dtype, layout))
        backend.build({"flags": LLVM_CPU_FLAGS, "iree_compile": "test"}, [source], module)
        inputs = op.make_inputs(shape, dtype, layout, seed=seed)
        job = Job(op=op.name, shape=shape, dtype=dtype, layout=layout, variant="default", inputs=inputs,
                  artifact=module, options={"driver": "local-task"})  # fmt: skip
        return inputs, backend.run(job)

    return run


class VariantBinaries(dict):
    """Variant -> its binary, built on first use for its archs (sm_90 + sm_80 unless it declares others) into
    `out`, or reused from compiled/ where that one is newer than its sources: a test file builds only the variants
    its tests use (building all of them takes minutes)."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out

    def __missing__(self, variant: str) -> Path:
        built = REPO / VARIANT_ARTIFACT.format(backend="cuda", variant=variant, op=variant_info(variant).op)
        if built.exists() and all(built.stat().st_mtime > s.stat().st_mtime for s in build_sources(variant)):
            path = built
        else:
            path = self.out / f"conv2d_{variant}"
            build(variant=variant, archs=variant_archs(variant, ["sm_90", "sm_80"]), flags=["-O3"], out=path)
        self[variant] = path
        return path


@pytest.fixture(scope="session")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> VariantBinaries:
    """The CUDA variants' binaries, each built when a test first asks for it."""
    if not shutil.which("nvcc"):
        pytest.skip("nvcc not on PATH")
    return VariantBinaries(tmp_path_factory.mktemp("cuda"))
