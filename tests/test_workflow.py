"""The workflow end to end on a tiny matrix: results, rebuild rules, bad input, failures, interruption.

Each test works in its own copy of the workflow (a killed run leaves a lock behind).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SMALL = {
    "machine": "ci",
    "suites": {
        "tiny": {
            "batches": [2],
            "layers": [
                {"name": "odd_3x3", "h": 9, "w": 7, "c": 3, "k": 5, "r": 3, "s": 3, "stride": 1, "pad": 1},
                {"name": "s2_3x3", "h": 12, "w": 10, "c": 8, "k": 12, "r": 3, "s": 3, "stride": 2, "pad": 1},
            ],
        }
    },
    "backends": {
        "iree-llvm-cpu": {"variants": {"default": []}},
        "iree-vulkan-spirv": {"variants": {"default": []}},
    },
    "benchmark": {"warmup_ms": 2, "repetitions": 3, "min_sample_ms": 1},
    "matrix": [
        {"ops": ["conv2d"], "suites": ["tiny"], "dtypes": ["f32"], "layouts": ["nhwc_hwcf"],
         "backends": ["iree-llvm-cpu", "iree-vulkan-spirv"]},
    ],
}  # fmt: skip


def make_workdir(tmp_path: Path, config: dict) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, work / name)
    for name in ("workflow", "opbench", "profiles", "cuda", "mlir-examples"):  # mlir-examples: IREE tuning specs
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_config(work, config)
    return work


def write_config(work: Path, config: dict) -> None:
    (work / "test.yaml").write_text(yaml.safe_dump(config))


def snakemake(work: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "test.yaml", *args]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def planned_jobs(work: Path, env: dict | None = None) -> dict[str, list[str]]:
    """Rule name -> outputs of the jobs a dry run would execute."""
    proc = snakemake(work, "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return planned_jobs_from(proc.stdout + proc.stderr)


def planned_jobs_from(text: str) -> dict[str, list[str]]:
    jobs: dict[str, list[str]] = {}
    rule = None
    for line in text.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s+output: (.*)$", line)):
            jobs.setdefault(rule, []).extend(p.strip() for p in m.group(1).split(","))
            rule = None
    return jobs


def modules(jobs: dict[str, list[str]]) -> list[str]:
    """The module folders the planned build jobs would build (one per job)."""
    return jobs.get("build_per_problem", [])


def summary_rows(work: Path, machine: str = "ci") -> list[dict[str, str]]:
    with open(work / "results" / machine / "test" / "summary.csv") as f:  # the tables of the run of test.yaml
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete run of the small matrix, shared by the tests that only read or dry-run it."""
    work = make_workdir(tmp_path_factory.mktemp("finished"), SMALL)
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return work


def test_results_pass_and_compile_only_rows_skip(finished: Path) -> None:
    rows = summary_rows(finished)
    assert len(rows) == 4
    cpu = [r for r in rows if r["backend"] == "iree-llvm-cpu"]
    vulkan = [r for r in rows if r["backend"] == "iree-vulkan-spirv"]
    assert [r["status"] for r in cpu] == ["PASS", "PASS"]
    assert all(float(r["relerr"]) < 1e-5 and float(r["median_ms"]) > 0 and float(r["tflops"]) > 0 for r in cpu)
    assert all(r["status"] == "SKIP" and "compile-only" in r["reason"] for r in vulkan)
    vulkan_module = "compiled/iree-vulkan-spirv/default/conv2d/nhwc_hwcf/f32/n2_h9_w7_c3_k5_r3_s3_st1_p1/module.vmfb"
    assert (finished / vulkan_module).exists()
    assert all(r["iree_compile"].startswith("3.13") and r["config_hash"] for r in rows)
    md = (finished / "results/ci/test/summary.md").read_text()
    assert "odd_3x3" in md and "iree-llvm-cpu:default" in md
    assert list((finished / "results/ci/test/plots").glob("*.png"))


def test_up_to_date_tree_has_nothing_to_do(finished: Path) -> None:
    proc = snakemake(finished, "--dry-run")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_run_outputs_are_kept_or_deleted_once_verified_as_the_config_says(finished: Path, tmp_path: Path) -> None:
    """keep_run_outputs (default true) keeps each run's output; false deletes it once verified (Snakemake temp()):
    every point still PASSes, and the finished tree has nothing to do without the outputs."""
    assert len(list((finished / "results/ci/runs").glob("**/output.npy"))) == 2
    work = make_workdir(tmp_path, {**json.loads(json.dumps(SMALL)), "keep_run_outputs": False})
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert [r["status"] for r in summary_rows(work) if r["backend"] == "iree-llvm-cpu"] == ["PASS", "PASS"]
    runs = work / "results/ci/runs"
    assert len(list(runs.glob("**/verify.json"))) == 2 and not list(runs.glob("**/output.npy"))
    again = snakemake(work, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_changing_one_backends_flags_reruns_only_its_jobs(finished: Path) -> None:
    config = json.loads(json.dumps(SMALL))
    config["backends"]["iree-vulkan-spirv"]["compile_flags"] = ["--iree-opt-strip-assertions"]
    write_config(finished, config)
    try:
        jobs = planned_jobs(finished)
    finally:
        write_config(finished, SMALL)
    assert set(jobs) - {"all"} == {"build_per_problem", "record", "summary"}
    assert all("iree-vulkan-spirv" in out for out in jobs["build_per_problem"] + jobs["record"])
    assert len(modules(jobs)) == 2


def test_adding_a_shape_runs_only_its_jobs(finished: Path) -> None:
    config = json.loads(json.dumps(SMALL))
    config["suites"]["tiny"]["layers"].append({"name": "pw_1x1", "h": 6, "w": 6, "c": 16, "k": 8, "r": 1, "s": 1})
    write_config(finished, config)
    try:
        jobs = planned_jobs(finished)
    finally:
        write_config(finished, SMALL)
    new = "n2_h6_w6_c16_k8_r1_s1_st1_p0"
    for rule, outputs in jobs.items():
        if rule not in ("summary", "all"):
            assert all(new in out for out in outputs), (rule, outputs)
    assert len(modules(jobs)) == 2 and len(jobs["benchmark"]) == 1


def test_new_compiler_version_recompiles(finished: Path, tmp_path: Path) -> None:
    real = shutil.which("iree-compile") or str(Path(sys.executable).parent / "iree-compile")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "iree-compile"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "IREE compiler version 9.9.9 @ deadbeef"; exit 0; fi\n'
        f'exec "{real}" "$@"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    jobs = planned_jobs(finished, env=env)
    assert len(modules(jobs)) == 4
    assert not {"generate_mlir", "make_inputs", "reference"} & set(jobs)


def test_node_without_compiler_runs_compiled_modules_without_recompiling(finished: Path) -> None:
    """A GPU node that has the runtime but no iree-compile: the modules built elsewhere are up to date there (the
    build rule's iree_compile parameter comes from the version recorded in each module's folder)."""
    env = {**os.environ, "IREE_COMPILE": str(finished / "no-such-iree-compile")}
    proc = snakemake(finished, "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["matrix"][0].update(ops=["conv3d"]), ["matrix[0].ops", "conv3d"]),
        (lambda c: c["suites"]["tiny"]["layers"][0].update(stride=0), ["suites.tiny.layers[0].stride", "0"]),
        (lambda c: c["suites"]["tiny"]["layers"][0].update(pad=-1), ["suites.tiny.layers[0].pad", "-1"]),
        (lambda c: c["suites"]["tiny"]["layers"][0].update(h=1, w=1, pad=0), ["suites.tiny.layers[0]", "empty"]),
        (lambda c: c.update(benchmarks={}), ["benchmarks"]),
    ],
    ids=["unknown-op", "stride-0", "negative-pad", "empty-output", "unknown-key"],
)
def test_bad_config_stops_before_any_job(tmp_path: Path, mutate, expected: list[str]) -> None:
    config = json.loads(json.dumps(SMALL))
    mutate(config)
    work = make_workdir(tmp_path, config)
    proc = snakemake(work)
    assert proc.returncode != 0
    message = [line for line in proc.stderr.splitlines() if "invalid config" in line]
    assert len(message) == 1, proc.stderr
    for text in expected:
        assert text in message[0]
    assert not (work / "results").exists() and not (work / "compiled").exists()


def test_broken_mlir_fails_its_job_alone_and_main_command_reports_it(tmp_path: Path) -> None:
    work = make_workdir(tmp_path, SMALL)
    proc = snakemake(work, "--until", "generate_mlir")
    assert proc.returncode == 0, proc.stderr
    broken = work / "compiled/mlir/conv2d/nhwc_hwcf/f32/n2_h9_w7_c3_k5_r3_s3_st1_p1.plain.mlir"
    broken.write_text("func.func @conv2d( this is not MLIR\n")
    proc = subprocess.run(
        [sys.executable, "-m", "opbench", "bench", "--cores", "2", "--configfile", "test.yaml"],
        cwd=work, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    log = work / "results/logs/build/iree-llvm-cpu/default/conv2d/nhwc_hwcf/f32/n2_h9_w7_c3_k5_r3_s3_st1_p1.log"
    assert "error" in log.read_text()
    rows = {(r["backend"], r["shape"]): r for r in summary_rows(work)}
    assert rows[("iree-llvm-cpu", "n2_h9_w7_c3_k5_r3_s3_st1_p1")]["status"] == "FAIL"
    assert rows[("iree-llvm-cpu", "n2_h9_w7_c3_k5_r3_s3_st1_p1")]["reason"].endswith(str(log.relative_to(work)))
    assert rows[("iree-llvm-cpu", "n2_h12_w10_c8_k12_r3_s3_st2_p1")]["status"] == "PASS"
    assert (work / "results/ci/test/report.html").exists()


def test_failed_verification_is_fail_everywhere_and_exit_nonzero(tmp_path: Path) -> None:
    config = json.loads(json.dumps(SMALL))
    config["tolerances"] = {"f32": 1e-30}  # no float32 result is that exact: every f32 row must FAIL
    work = make_workdir(tmp_path, config)
    proc = subprocess.run(
        [sys.executable, "-m", "opbench", "bench", "--cores", "2", "--configfile", "test.yaml"],
        cwd=work, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    cpu = [r for r in summary_rows(work) if r["backend"] == "iree-llvm-cpu"]
    assert [r["status"] for r in cpu] == ["FAIL", "FAIL"]
    assert all("exceeds tolerance" in r["reason"] and float(r["median_ms"]) > 0 for r in cpu)
    stats = json.loads((work / "results/ci/test/run.json").read_text())  # the run's statistics, beside its summary
    assert stats["points_timed"] == 2 and stats["gpu_points_timed"] == 0 and stats["timed_s"] > 0
    assert all(stats["rules"][rule]["jobs"] == 2 for rule in ("run", "verify", "benchmark"))
    assert stats["rules"]["record"]["jobs"] == 4  # the compile-only SKIP rows have records too
    assert stats["wall_s"] > stats["timed_s"] and stats["jobs"] >= 8
    for rule in ("run", "benchmark"):  # where the point jobs' wall went: the phases their logs end with
        cpu_jobs = stats["job_phases_s"][rule]["iree-llvm-cpu"]
        assert cpu_jobs["jobs"] == 2 and cpu_jobs["phases"]["backend/iree_tool"]["jobs"] == 2
        assert 0 < cpu_jobs["phases"]["backend"]["total"] < cpu_jobs["wall"]["total"]
    md = (work / "results/ci/test/summary.md").read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("| odd_3x3")]
    assert "FAIL" in table_lines[0]
    assert "FAIL" in proc.stderr


def test_interrupted_run_resumes_without_redoing_finished_jobs(tmp_path: Path) -> None:
    work = make_workdir(tmp_path, SMALL)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "test.yaml"]
    # SIGINT as a user's Ctrl-C delivers it, also where this test itself runs with SIGINT ignored (a background job
    # of a non-interactive shell): the child starts with the default disposition, so Python installs its handler.
    proc = subprocess.Popen(
        cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    # Interrupt once the first point is verified (whichever the scheduler took first): everything upstream of it
    # has finished (one job at a time), and the other point's verification, its records and the summary remain.
    runs = work / "results/ci/runs"
    deadline = time.monotonic() + 300
    verified: list[Path] = []
    while not verified and time.monotonic() < deadline and proc.poll() is None:
        verified = sorted(runs.glob("**/verify.json")) if runs.exists() else []
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert verified, "the run ended before any point was verified"
    assert not (work / "results/ci/test/summary.csv").exists(), "the run finished before it could be interrupted"
    point = verified[0].parent.relative_to(runs).as_posix()  # backend/variant/op/layout/dtype/shape
    problem = point.split("/", 2)[2]
    finished = [
        work / f"compiled/{point}/module.vmfb",
        work / f"results/ci/runs/{point}/output.npy",
        work / f"results/problems/{problem}/reference.npy",
    ]
    before = {p: p.stat().st_mtime_ns for p in finished}
    resumed = snakemake(work)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == before, "finished jobs were redone"
    assert [r["status"] for r in summary_rows(work) if r["backend"] == "iree-llvm-cpu"] == ["PASS", "PASS"]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_editing_one_cuda_variant_rebuilds_only_that_variant(tmp_path: Path) -> None:
    config = json.loads(json.dumps(SMALL))
    config.update(gpu=True, machine="ci-gpu")
    config["backends"]["cuda"] = {"archs": ["sm_80"], "variants": {"naive": [], "smem_tiled": []}}
    config["matrix"] = [{"ops": ["conv2d"], "suites": ["tiny"], "dtypes": ["f32"], "layouts": ["nhwc_fhwc"],
                         "backends": ["cuda"]}]  # fmt: skip
    work = make_workdir(tmp_path, config)
    built = snakemake(work, "--until", "build_per_variant")
    assert built.returncode == 0, built.stderr[-3000:]
    log = (work / "results/logs/build/cuda/naive/conv2d.log").read_text()
    assert "0 bytes spill stores, 0 bytes spill loads" in log  # the resource report is kept in the log
    assert set(planned_until_build(work)) == set()
    naive = work / "cuda/variants/naive.cu"
    naive.write_text(naive.read_text() + "\n// an edit\n")
    assert planned_until_build(work) == ["compiled/cuda/naive/conv2d_naive"]


def planned_until_build(work: Path) -> list[str]:
    proc = snakemake(work, "--until", "build_per_variant", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    return planned_jobs_from(proc.stdout + proc.stderr).get("build_per_variant", [])


def test_ctrl_c_of_the_main_command_leaves_no_lock_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) during `opbench bench`: Snakemake cancels and releases its
    lock (the driver waits for it instead of killing it), the command says so and exits 130, and the same command
    then resumes to a summary."""
    work = make_workdir(tmp_path, SMALL)
    cmd = [sys.executable, "-m", "opbench", "bench", "--cores", "1", "--configfile", "test.yaml"]
    proc = subprocess.Popen(
        cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    runs = work / "results/ci/runs"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if runs.exists() and list(runs.glob("**/output.npy")):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the driver and Snakemake both get it
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not list((work / ".snakemake" / "locks").glob("*")), "the interrupted run left its lock"
    assert not (work / "results/ci/test/summary.csv").exists()
    resumed = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["status"] for r in summary_rows(work) if r["backend"] == "iree-llvm-cpu"] == ["PASS", "PASS"]
