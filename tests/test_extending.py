"""Extending the matrix the way a contributor would: a new op is one folder, a new backend one module, and nothing
else is edited. A throw-away op (vector_add) and backend (numpy-add) from tests/fixtures/plugin/ are copied into a
copy of the workflow and run end to end on the CPU, beside conv2d and IREE; then editing one backend's module, or
one op's reference, reruns exactly the jobs that code decides.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
from test_workflow import make_workdir, planned_jobs, snakemake

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "plugin"
pytestmark = pytest.mark.slow

CONFIG = {
    "machine": "ci",
    "suites": {
        "vectors": {"batches": [1], "layers": [{"name": "short", "length": 1000}, {"name": "long", "length": 4096}]},
        "tiny": {
            "batches": [2],
            "layers": [{"name": "odd_3x3", "h": 9, "w": 7, "c": 3, "k": 5, "r": 3, "s": 3, "stride": 1, "pad": 1}],
        },
    },
    "backends": {"iree-llvm-cpu": {"variants": {"default": []}}, "numpy-add": {"variants": {"default": []}}},
    "benchmark": {"warmup_ms": 2, "repetitions": 3, "min_sample_ms": 1},
    "matrix": [
        {"ops": ["vector_add"], "suites": ["vectors"], "dtypes": ["f32", "f16"], "layouts": ["flat"],
         "backends": ["iree-llvm-cpu", "numpy-add"]},
        {"ops": ["conv2d"], "suites": ["tiny"], "dtypes": ["f32"], "layouts": ["nhwc_hwcf"],
         "backends": ["iree-llvm-cpu", "numpy-add"]},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workflow with the fixture op's folder and backend's module added (nothing else changed), run."""
    work = make_workdir(tmp_path_factory.mktemp("extended"), CONFIG)
    shutil.copytree(FIXTURES / "ops" / "vector_add", work / "opbench" / "ops" / "vector_add")
    shutil.copy(FIXTURES / "backends" / "numpy_add.py", work / "opbench" / "backends" / "numpy_add.py")
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return work


def rows(work: Path) -> list[dict[str, str]]:
    with open(work / "results" / "ci" / "test" / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_new_op_and_backend_run_end_to_end(extended: Path) -> None:
    table = {(r["op"], r["backend"], r["layer"], r["dtype"]): r for r in rows(extended)}
    for backend in ("iree-llvm-cpu", "numpy-add"):  # the new op through IREE (its MLIR) and through the new backend
        for layer in ("short", "long"):
            for dtype in ("f32", "f16"):
                row = table[("vector_add", backend, layer, dtype)]
                assert row["status"] == "PASS", row
                assert float(row["relerr"]) <= float(row["tolerance"]) and float(row["median_ms"]) > 0
    assert table[("vector_add", "iree-llvm-cpu", "long", "f32")]["shape"] == "len4096"
    assert table[("conv2d", "iree-llvm-cpu", "odd_3x3", "f32")]["status"] == "PASS"


def test_points_a_backend_does_not_implement_are_skip_rows_with_the_reason(extended: Path) -> None:
    conv = [r for r in rows(extended) if r["op"] == "conv2d" and r["backend"] == "numpy-add"]
    assert [r["status"] for r in conv] == ["SKIP"]
    assert conv[0]["reason"] == "not supported: adds vectors only, not conv2d"
    summary = (extended / "results" / "ci" / "test" / "summary.md").read_text()
    assert "not supported: adds vectors only, not conv2d" in summary.split("## Skipped")[1]


def edited_plan(work: Path, path: Path) -> dict[str, list[str]]:
    """The jobs a dry run plans after appending a comment to `path` (restored afterwards, time stamps included)."""
    text, stat = path.read_text(), path.stat()
    path.write_text(text + "\n# an edit\n")
    try:
        return planned_jobs(work)
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_editing_a_backends_module_reruns_exactly_its_jobs(extended: Path) -> None:
    jobs = edited_plan(extended, extended / "opbench" / "backends" / "numpy_add.py")
    assert set(jobs) - {"all"} == {"run", "verify", "benchmark", "record", "summary"}  # verify: of the new outputs
    for rule in ("run", "verify", "benchmark", "record"):
        assert len(jobs[rule]) == 4 and all("/numpy-add/" in out for out in jobs[rule]), (rule, jobs[rule])


def test_editing_an_ops_reference_reruns_its_references_and_verdicts_only(extended: Path) -> None:
    jobs = edited_plan(extended, extended / "opbench" / "ops" / "vector_add" / "reference.py")
    assert set(jobs) - {"all"} == {"reference", "verify", "record", "summary"}
    references = [out for out in jobs["reference"] if out.endswith("reference.npy")]  # (each also writes its scale)
    assert len(references) == 4 and all("/vector_add/" in out for out in jobs["reference"])
    assert len(jobs["verify"]) == 8 and all("/vector_add/" in out for out in jobs["verify"])  # both backends


def test_editing_conv2ds_reference_leaves_the_new_op_alone(extended: Path) -> None:
    jobs = edited_plan(extended, extended / "opbench" / "ops" / "conv2d" / "reference.py")
    assert set(jobs) - {"all"} == {"reference", "verify", "record", "summary"}
    assert all("/conv2d/" in out for rule in ("reference", "verify", "record") for out in jobs[rule])
