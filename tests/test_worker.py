"""The GPU worker's lifecycle on the CPU (opbench.worker and its client): start, serve, a crashing request, a hung
one, shutdown, idle exit, a stale worker of a killed run, and a real run and benchmark job served end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from opbench import jobs, phases, worker_client
from opbench.worker_client import WorkerError

REPO = Path(__file__).resolve().parent.parent
# A worker with three more commands, for the failures a GPU request can have: the process dies, or never answers;
# and a slow one, whose client can go away before the answer.
TEST_WORKER = (
    "import os, sys, time\n"
    "from opbench import worker\n"
    "worker.COMMANDS['crash'] = lambda: os._exit(3)\n"
    "worker.COMMANDS['hang'] = lambda: time.sleep(600)\n"
    "worker.COMMANDS['nap'] = lambda: time.sleep(0.5)\n"
    "sys.exit(worker.main(sys.argv[1:]))\n"
)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private runtime folder (socket paths are limited to ~100 bytes); every worker left is killed."""
    folder = Path(tempfile.mkdtemp(prefix="obw", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    for sock in folder.rglob("*.sock"):
        worker_client.shutdown(sock.stem.removeprefix("worker-"))


def _ping(log_dir: Path, timeout_s: float = 60, idle_exit_s: float = 60) -> dict:
    return worker_client.request("ping", {}, log_dir=log_dir, timeout_s=timeout_s, idle_exit_s=idle_exit_s)


def _alive(pid: int) -> bool:
    """Running (a worker this test process started and that exited stays a zombie child of it: not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _start_test_worker(log: Path, timeout_s: float = 2) -> subprocess.Popen:
    path = worker_client.socket_path()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", TEST_WORKER, "--socket", str(path), "--timeout-s", str(timeout_s),
             "--idle-exit-s", "60", "--log", str(log)],
            cwd=REPO, start_new_session=True, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return process


def test_the_first_job_starts_the_worker_and_the_next_ones_reuse_it(runtime: Path, tmp_path: Path) -> None:
    first, second = _ping(tmp_path), _ping(tmp_path)
    assert first["ok"] and first["pid"] == second["pid"] != os.getpid()
    assert len(list(tmp_path.glob("*.log"))) == 1  # one worker, one log
    assert worker_client.shutdown() is True
    assert _wait_gone(first["pid"])
    assert not worker_client.socket_path().exists()
    assert worker_client.shutdown() is False  # none left to stop


def test_concurrent_first_jobs_start_one_worker(runtime: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from opbench import worker_client as c; "
        "print(c.request('ping', {}, log_dir=Path(sys.argv[1]), timeout_s=60)['pid'])"
    )
    clients = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    pids = {client.communicate(timeout=120)[0].strip() for client in clients}
    assert len(pids) == 1 and all(client.returncode == 0 for client in clients)


def test_a_requests_phases_go_to_the_worker_and_come_back_with_its_own(runtime: Path, tmp_path: Path) -> None:
    """The client's spans reach the worker in the request and come back in the answer with the worker's (the trip
    there, its setup) and the answer's trip back; the first job's connection includes starting the worker."""
    with phases.recording() as first:
        _ping(tmp_path)
    assert list(first.spans) == ["connect/start_worker", "connect", "to_worker", "worker_setup", "from_worker"]
    with phases.recording() as second:
        second.add("cli_start", 0.5)
        answer = _ping(tmp_path)
    assert answer["phases"] == {name: second.spans[name] for name in answer["phases"]}
    assert list(second.spans) == ["cli_start", "connect", "to_worker", "worker_setup", "from_worker"]
    assert second.spans["cli_start"] == 0.5 and all(0 < s < 5 for s in second.spans.values())
    assert first.spans["connect/start_worker"] > second.spans["connect"]  # an import of opbench.jobs, NumPy ...


def test_a_request_that_kills_the_worker_fails_alone_and_the_next_job_gets_a_fresh_worker(
    runtime: Path, tmp_path: Path
) -> None:
    log = tmp_path / "test-worker.log"
    crashing = _start_test_worker(log)
    with pytest.raises(WorkerError, match=r"died while serving this request.*its log: .*test-worker.log"):
        worker_client.request("crash", {}, log_dir=tmp_path, timeout_s=30)
    assert crashing.wait(timeout=10) == 3
    assert worker_client.socket_path().exists()  # it died without cleaning up: the next client finds a dead socket
    fresh = _ping(tmp_path)
    assert fresh["ok"] and fresh["pid"] != crashing.pid


def test_a_hung_request_fails_at_the_timeout_and_the_worker_is_killed(runtime: Path, tmp_path: Path) -> None:
    hanging = _start_test_worker(tmp_path / "test-worker.log")
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"no answer within the timeout \(1 s.*were killed"):
        worker_client.request("hang", {}, log_dir=tmp_path, timeout_s=1)
    assert time.monotonic() - started < 15
    assert hanging.wait(timeout=10) == -signal.SIGKILL
    assert _ping(tmp_path)["pid"] != hanging.pid


def test_a_failing_request_returns_its_traceback_and_the_worker_goes_on(runtime: Path, tmp_path: Path) -> None:
    pid = _ping(tmp_path)["pid"]
    with pytest.raises(WorkerError, match="unknown backend 'no-such-backend'"):
        worker_client.request(
            "run", {"backend": "no-such-backend", "op": "conv2d", "shape": "x", "dtype": "f32", "layout": "x",
                    "variant": "x", "inputs": "x.npz", "artifact": None, "options": {}, "out": "y.npy"},
            log_dir=tmp_path, timeout_s=60,
        )  # fmt: skip
    assert _ping(tmp_path)["pid"] == pid


def test_a_stale_worker_of_a_killed_run_is_replaced(runtime: Path, tmp_path: Path) -> None:
    pid = _ping(tmp_path)["pid"]
    os.killpg(pid, signal.SIGKILL)  # the run's machine lost it; its socket file stays behind
    assert _wait_gone(pid)
    assert _ping(tmp_path)["pid"] != pid


def test_a_worker_that_closes_before_taking_the_request_is_retried_then_reported(
    runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed worker's socket can take a connection while its last thread exits (its group leader already a
    zombie), then close it: the request goes to the next worker, and two in a row fail with WorkerError."""
    real_connect = worker_client.connect
    closing: list[int] = []

    def a_closed_peer(**_: object) -> socket.socket:
        ours, theirs = socket.socketpair()
        theirs.close()
        closing.append(1)
        return ours

    monkeypatch.setattr(worker_client, "connect", a_closed_peer)
    with pytest.raises(WorkerError, match="two workers in a row closed the connection"):
        _ping(tmp_path)
    assert len(closing) == 2
    connects = iter([a_closed_peer, real_connect])
    monkeypatch.setattr(worker_client, "connect", lambda **kw: next(connects)(**kw))
    assert _ping(tmp_path)["ok"]


def test_a_client_that_goes_away_leaves_the_worker_serving(runtime: Path, tmp_path: Path) -> None:
    worker = _start_test_worker(tmp_path / "test-worker.log")
    request = {"command": "nap", "kwargs": {}, "cwd": str(REPO), "env": {}}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:  # a job killed right after asking
        client.connect(str(worker_client.socket_path()))
        client.sendall(json.dumps(request).encode() + b"\n")
    assert _ping(tmp_path)["pid"] == worker.pid
    assert "the client went away" in (tmp_path / "test-worker.log").read_text()


def test_an_idle_worker_exits_by_itself(runtime: Path, tmp_path: Path) -> None:
    pid = _ping(tmp_path, idle_exit_s=0.5)["pid"]
    assert _wait_gone(pid)
    assert not worker_client.socket_path().exists()


def test_another_gpu_or_other_code_gets_another_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(worker_client.CODE_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    gpu0 = worker_client.worker_key()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert worker_client.worker_key() != gpu0
    monkeypatch.setattr(worker_client, "code_fingerprint", lambda: "edited")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert worker_client.worker_key() != gpu0


def test_settings_reach_jobs_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(worker_client.SETTINGS_ENV, raising=False)
    assert worker_client.settings_from_env() is None  # a job run by hand runs in its own process
    settings = {"enabled": True, "timeout_s": 300, "idle_exit_s": 60, "logs": "results/x/logs/worker"}
    monkeypatch.setenv(worker_client.SETTINGS_ENV, worker_client.settings_to_env(settings))
    assert worker_client.settings_from_env() == settings


def _iree_point(tmp_path: Path) -> dict:
    """A real point (IREE llvm-cpu, conv2d f32), its module built: a run or benchmark job's arguments, less `out`."""
    from opbench.backends import get_backend

    shape, flags = "n1_h9_w7_c3_k5_r3_s3_st1_p1", [
        "--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
        "--iree-llvmcpu-target-cpu=host",
    ]  # fmt: skip
    problem = dict(op="conv2d", shape=shape, dtype="f32", layout="nhwc_hwcf")
    jobs.generate_mlir(**problem, out=tmp_path / "p.mlir")
    jobs.make_inputs(**problem, seed=5, out=tmp_path / "in.npz")
    get_backend("iree-llvm-cpu").build({"flags": flags, "iree_compile": "test"}, [tmp_path / "p.mlir"], tmp_path / "m")
    return {**problem, "backend": "iree-llvm-cpu", "variant": "default", "inputs": str(tmp_path / "in.npz"),
            "artifact": str(tmp_path / "m"), "options": {"driver": "local-task"}}  # fmt: skip


@pytest.mark.slow
def test_run_and_benchmark_jobs_served_by_the_worker_match_the_in_process_ones(
    runtime: Path, tmp_path: Path, iree_compile: str
) -> None:
    """A real point (IREE llvm-cpu) through the worker: the output equals the one a job in its own process writes, and
    the timing record carries the run id of the client's environment."""
    job = _iree_point(tmp_path)
    jobs.run(**{**job, "inputs": Path(job["inputs"]), "artifact": Path(job["artifact"])}, out=tmp_path / "own.npy")
    os.environ["OPBENCH_RUN_ID"] = "20261206T000000Z-test"
    try:
        worker_client.request("run", {**job, "out": str(tmp_path / "served.npy")}, log_dir=tmp_path, timeout_s=120)
        settings = {"warmup_ms": 1, "repetitions": 3, "min_sample_ms": 1, "flush_l2": False}
        worker_client.request(
            "benchmark", {**job, "settings": settings, "out": str(tmp_path / "t.json")}, log_dir=tmp_path,
            timeout_s=120,
        )  # fmt: skip
    finally:
        del os.environ["OPBENCH_RUN_ID"]
    np.testing.assert_array_equal(np.load(tmp_path / "served.npy"), np.load(tmp_path / "own.npy"))
    timing = json.loads((tmp_path / "t.json").read_text())
    assert timing["run_id"] == "20261206T000000Z-test" and len(timing["samples_ms"]) == 3


def test_the_workflows_fingerprint_spares_each_job_the_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(worker_client.CODE_ENV, raising=False)
    own = worker_client.worker_key()
    monkeypatch.setenv(worker_client.CODE_ENV, worker_client.code_fingerprint())
    monkeypatch.setattr(worker_client, "code_fingerprint", lambda: pytest.fail("hashed again"))
    assert worker_client.worker_key() == own


@pytest.mark.slow
def test_a_served_jobs_log_ends_with_the_phases_of_client_worker_and_job(
    runtime: Path, tmp_path: Path, iree_compile: str
) -> None:
    """`python -m opbench benchmark --gpu-job`, as the workflow runs it, through the worker: its log (stdout) ends
    with every phase from the process's start to the worker's answer back, and its timing JSON holds those up to
    its writing (the worker's and the client's before it)."""
    job = _iree_point(tmp_path)
    args = [f"--{key}={value}" for key, value in job.items() if key != "options"]
    args += ["--options", json.dumps(job["options"]), "--out", str(tmp_path / "t.json"), "--gpu-job"]
    args += ["--warmup-ms", "1", "--repetitions", "3", "--min-sample-ms", "1", "--flush-l2", "0"]
    settings = {"enabled": True, "timeout_s": 120, "idle_exit_s": 60, "logs": str(tmp_path)}
    env = {**os.environ, worker_client.SETTINGS_ENV: worker_client.settings_to_env(settings)}
    for _ in range(2):  # the second finds the worker the first started
        proc = subprocess.run([sys.executable, "-m", "opbench", "benchmark", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "served by the GPU worker" in proc.stdout
    logged = phases.from_log(proc.stdout)
    assert logged is not None and list(logged) == [
        "python_start", "cli_start", "connect", "to_worker", "worker_setup", "load_inputs", "backend/iree_inputs",
        "backend/iree_tool", "backend", "write_output", "from_worker",
    ]  # fmt: skip
    written = json.loads((tmp_path / "t.json").read_text())["phases_s"]
    assert written == {name: logged[name] for name in list(logged)[:-2]}
