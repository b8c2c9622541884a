"""The workflow through Slurm with workflow/profiles/slurm, on a throw-away one-node cluster (tests/slurm_cluster.py).

Needs Slurm 22.05 and munge (.ci/install-slurm.sh) and root; skipped otherwise. Takes about 3.5 minutes on 2 cores:
one Slurm run of tests/configs/ci.yaml with a GPU probe job, its dry-run repeat, and a local run to compare with.

Per-job overhead on Slurm is two Snakemake start-ups (the batch script's and the `srun` step's), about 10 s together
on 2 cores (the 70 jobs took about 8 minutes one by one), so the CPU rules of each problem are grouped into Slurm
jobs (`--groups` on the command line only; the profile itself submits one job per rule instance, as on a real
cluster). The GPU probe stays a job of its own.
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
from dataclasses import dataclass
from pathlib import Path

import pytest
import slurm_cluster  # tests/slurm_cluster.py (pytest puts tests/ on sys.path)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CONFIG = "tests/configs/ci.yaml"
TIMEOUT_S = 600  # per Snakemake run: a hung status poll fails the test instead of hanging CI

# CPU rules of one problem (op, layout, dtype, shape) become one Slurm job; two problems per job
CPU_RULES = ("generate_mlir", "make_inputs", "reference", "build_per_problem", "run", "verify", "benchmark", "record")
GROUP_ARGS = ["--groups", *(f"{rule}=problem" for rule in CPU_RULES), "--group-components", "problem=2"]

# summary.csv columns that must match a local run: what was measured and how it was judged, not timings,
# throughput derived from them, or provenance of the machine/run
COMPARED = ("op", "suite", "layer", "count", "shape", "batch", "dtype", "layout", "backend", "variant", "flags",
            "status", "reason", "relerr", "tolerance", "samples", "seed")  # fmt: skip


def copy_workflow(dest: Path) -> Path:
    """What a checkout on the cluster's shared filesystem has: the workflow, the package, the sources it builds."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "compiled", "results", ".snakemake")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(REPO / name, dest / name)
    for tree in ("workflow", "opbench", "cuda", "mlir-examples"):  # mlir-examples: the IREE tuning specs
        if (REPO / tree).is_dir():
            shutil.copytree(REPO / tree, dest / tree, ignore=ignore)
    profiles = REPO / "profiles"
    if profiles.is_symlink():  # profiles -> workflow/profiles: the implicit workflow profile, as in the checkout
        (dest / "profiles").symlink_to(os.readlink(profiles))
    (dest / "tests" / "configs").mkdir(parents=True)
    shutil.copy2(REPO / CONFIG, dest / CONFIG)
    return dest


@dataclass
class Run:
    returncode: int
    log: str
    wall_s: float
    workdir: Path


def snakemake(workdir: Path, args: list[str], env: dict[str, str], timeout: float = TIMEOUT_S) -> Run:
    """Run Snakemake (this interpreter's) in its own process group; on timeout kill the group and fail."""
    log_path = workdir / f"snakemake-{time.monotonic_ns()}.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            tail = log_path.read_text(errors="replace")[-4000:]
            pytest.fail(f"snakemake {' '.join(args)} did not finish in {timeout} s (hung status poll?)\n{tail}")
    return Run(process.returncode, log_path.read_text(errors="replace"), time.monotonic() - started, workdir)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


TIMES: dict[str, float] = {}  # wall times, printed by the tests


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_cluster.unavailable()
    if reason:
        pytest.skip(reason)
    TIMES["start"] = time.monotonic()
    c = slurm_cluster.start_cluster(timeout=60)
    TIMES["cluster"] = time.monotonic() - TIMES["start"]
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def slurm_env(cluster):
    env = cluster.env
    # the profile's site settings (see its header); the GPU model is the fake GPUs' gres type
    env.update(
        OPBENCH_SLURM_PARTITION=cluster.cpu_partition,
        OPBENCH_SLURM_GPU_PARTITION=cluster.gpu_partition,
        OPBENCH_SLURM_GPU_MODEL=cluster.gpu_type,
    )
    env.pop("OPBENCH_SLURM_ACCOUNT", None)
    return env


def slurm_args(machine: str) -> list[str]:
    return [
        # as docs/cluster.md says: the Slurm profile alone, without the local workflow profile (profiles/default)
        "--profile", str(PROFILE), "--workflow-profile", "none",
        "--configfile", CONFIG, "--config", "gpu=true", f"machine={machine}",
        # no accounting database on the test cluster (commented options in the profile)
        "--slurm-status-command", "squeue", "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
        # the node has 2 CPUs: CPU benchmark jobs take `cores` CPUs each (the profile's 8 would never fit)
        "--cores", "1",
        *GROUP_ARGS,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def slurm_run(cluster, slurm_env, tmp_path_factory) -> Run:
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-run"))
    run = snakemake(workdir, slurm_args("ci-slurm"), slurm_env)
    assert run.returncode == 0, f"Slurm run failed:\n{run.log[-6000:]}\n{cluster.logs()}"
    return run


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Run:
    workdir = copy_workflow(tmp_path_factory.mktemp("local-run"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SNAKEMAKE_PROFILE"))}
    args = ["--cores", "2", "--configfile", CONFIG, "--config", "gpu=true", "machine=ci-local"]
    run = snakemake(workdir, args, env)
    assert run.returncode == 0, f"local run failed:\n{run.log[-6000:]}"
    return run


def submitted_jobs(run: Run) -> dict[str, str]:
    """Slurm job id -> its log file, from the plugin's 'submitted with SLURM jobid N (log: ...)' lines."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", run.log, flags=re.MULTILINE)
    return dict(found)


def test_slurm_run_went_through_slurm(cluster, slurm_run, capsys):
    with capsys.disabled():
        print(f"\n[slurm] cluster up in {TIMES['cluster']:.1f} s; Slurm run of {CONFIG}: {slurm_run.wall_s:.1f} s")
    jobs = submitted_jobs(slurm_run)
    assert len(jobs) >= 2, f"expected Slurm submissions in the log:\n{slurm_run.log[-4000:]}"
    known = cluster.known_job_ids()
    for job_id, log in jobs.items():
        assert job_id in known, f"squeue does not know job {job_id}"
        info = cluster.show_job(job_id)
        assert info["JobState"] == "COMPLETED", info
        assert Path(info["WorkDir"]).resolve() == slurm_run.workdir.resolve(), info
        assert Path(log).is_file(), f"no Slurm log {log}"
        assert log.startswith(str(slurm_run.workdir / ".snakemake" / "slurm_logs")), log
    # every rule but the localrules ran in those jobs: the Slurm logs name them
    logged = "\n".join(Path(log).read_text(errors="replace") for log in jobs.values())
    for rule in (*CPU_RULES, "probe_device"):
        assert re.search(rf"^(local)?rule {rule}:", logged, flags=re.MULTILINE), f"rule {rule} not in any Slurm job"
    # summary is a localrule: it ran here, not through sbatch
    assert re.search(r"^localrule summary:", slurm_run.log, flags=re.MULTILINE)
    assert not any("summary" in Path(log).parent.name for log in jobs.values())


def test_gpu_probe_got_a_gpu_from_slurm(cluster, slurm_run):
    probe = json.loads((slurm_run.workdir / "results" / "ci-slurm" / "device" / "cuda.json").read_text())
    assert probe["slurm_job_id"], probe
    assert probe["cuda_visible_devices"] not in (None, ""), probe
    assert set(probe["cuda_visible_devices"].split(",")) <= {str(i) for i in range(cluster.gpus)}, probe
    jobs = submitted_jobs(slurm_run)
    assert probe["slurm_job_id"] in jobs, f"probe ran in job {probe['slurm_job_id']}, not one this run submitted"
    assert "rule_probe_device" in jobs[probe["slurm_job_id"]]
    info = cluster.show_job(probe["slurm_job_id"])
    # gpu: 1 with gpu_model -> sbatch --gpus=<model>:1, in the GPU partition
    assert info.get("TresPerJob") == f"gres:gpu:{cluster.gpu_type}:1", info
    assert info["Partition"] == cluster.gpu_partition, info


def test_cpu_jobs_asked_for_no_gpu(cluster, slurm_run):
    jobs = {job_id: log for job_id, log in submitted_jobs(slurm_run).items() if "rule_probe_device" not in log}
    assert jobs, "no CPU job was submitted"
    for job_id in jobs:
        info = cluster.show_job(job_id)
        gpu_fields = {k: v for k, v in info.items() if k.startswith("TresPer") or k in ("TRES", "Gres", "TresBind")}
        assert "gpu" not in json.dumps(gpu_fields), f"CPU job {job_id} asked for a GPU: {gpu_fields}"
        assert info["Partition"] == cluster.cpu_partition, info


def test_second_run_has_nothing_to_do(slurm_run, slurm_env):
    again = snakemake(slurm_run.workdir, [*slurm_args("ci-slurm"), "--dry-run"], slurm_env, timeout=300)
    assert again.returncode == 0, again.log[-4000:]
    assert "Nothing to be done" in again.log, again.log[-4000:]
    assert "submitted with SLURM jobid" not in again.log


def test_summary_matches_local_run(slurm_run, local_run, capsys):
    slurm_rows = read_csv(slurm_run.workdir / "results" / "ci-slurm" / "ci" / "summary.csv")
    local_rows = read_csv(local_run.workdir / "results" / "ci-local" / "ci" / "summary.csv")
    assert slurm_rows, "empty summary"
    missing = [c for c in COMPARED if c not in slurm_rows[0]]
    assert not missing, f"summary.csv lacks {missing}"

    def key(row):
        return tuple(row[c] for c in COMPARED)

    assert sorted(map(key, slurm_rows)) == sorted(map(key, local_rows))
    with capsys.disabled():
        print(f"\n[slurm] local run: {local_run.wall_s:.1f} s; whole module: {time.monotonic() - TIMES['start']:.1f} s")
