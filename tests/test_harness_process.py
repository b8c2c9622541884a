"""The persistent harness processes of the GPU worker (opbench.backends.harness_process), on the CPU: a stand-in binary
speaks the harness's `--serve` protocol (cuda/common/harness.cu) and can crash or hang on request."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from opbench import phases
from opbench.backends import Job, get_backend, harness_process
from opbench.backends.harness_process import HarnessError, Pool
from opbench.dtypes import get_dtype
from opbench.ops import get_op

FAKE_HARNESS = f"""#!{sys.executable}
import json, os, sys, time
END = {harness_process.SERVE_END!r}

def answer(args, served):
    mode = args[args.index("--mode") + 1]
    if mode == "crash":
        print("CUDA error an illegal memory access was encountered", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "hang":
        time.sleep(600)
    print("warning: request " + str(served), file=sys.stderr, flush=True)
    if "--output" in args:  # a run request of the cuda backend: an output for it to read
        import numpy
        numpy.save(args[args.index("--output") + 1], numpy.zeros(3, numpy.float32))
    return json.dumps({{"pid": os.getpid(), "served": served, "mode": mode}})

if sys.argv[1:] == ["--serve"]:
    for served, line in enumerate(sys.stdin, 1):
        print(answer(line.rstrip("\\n").split("\\t"), served), flush=True)
        print(END, file=sys.stderr, flush=True)
else:
    print(answer(sys.argv[1:], 1))
"""


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "conv2d_fake"
    path.write_text(FAKE_HARNESS)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def pool() -> Pool:
    pool = Pool()
    yield pool
    pool.close()


def _call(pool: Pool, binary: Path, mode: str, timeout_s: float | None = 30) -> tuple[dict, str]:
    stdout, stderr = pool.call(binary, ["--mode", mode, "--input", "x y.npy"], timeout_s)
    return json.loads(stdout), stderr


def test_one_process_answers_request_after_request_with_each_requests_own_messages(pool: Pool, binary: Path) -> None:
    first, first_err = _call(pool, binary, "run")
    second, second_err = _call(pool, binary, "bench")
    assert first["pid"] == second["pid"] and (first["served"], second["served"]) == (1, 2)
    assert first_err == "warning: request 1\n" and second_err == "warning: request 2\n"  # no end marker, no mixing


def test_outside_the_worker_every_call_is_a_process_of_its_own(binary: Path) -> None:
    pids = {json.loads(harness_process.call_harness(binary, ["--mode", "run"])[0])["pid"] for _ in range(2)}
    assert len(pids) == 2


@pytest.mark.parametrize("served", [True, False])
def test_a_cuda_jobs_phases_are_what_the_harness_calls_see(
    served: bool, pool: Pool, binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cuda backend's run job, twice, through the harness processes: the inputs written, the requests and the
    output read are its phases (opbench.phases); a `--serve` process started once in the worker, none outside it
    (each request is then a process start of its own)."""
    monkeypatch.setattr(harness_process, "_pool", pool if served else None)
    op, dtype = get_op("conv2d"), get_dtype("f32")
    shape = op.shape_from_name("n1_h4_w4_c2_k2_r3_s3_st1_p1")
    job = Job(op="conv2d", shape=shape, dtype=dtype, layout="nhwc_fhwc", variant="fake",
              inputs=op.make_inputs(shape, dtype, "nhwc_fhwc", 1), artifact=binary, options={})  # fmt: skip
    with phases.recording() as job_phases:
        for _ in range(2):
            assert get_backend("cuda").run(job).tolist() == [0, 0, 0]
    expected = ["harness_inputs", *(["harness_start"] if served else []), "harness_request", "harness_output"]
    assert list(job_phases.spans) == expected
    assert all(seconds > 0 for seconds in job_phases.spans.values())


def test_a_request_that_kills_its_process_fails_alone_and_the_next_gets_a_fresh_one(pool: Pool, binary: Path) -> None:
    before, _ = _call(pool, binary, "run")
    with pytest.raises(HarnessError, match=r"exited 1:\nCUDA error an illegal memory access"):
        _call(pool, binary, "crash")
    after, _ = _call(pool, binary, "run")
    assert after["pid"] != before["pid"] and after["served"] == 1


def test_a_hung_request_is_killed_at_its_timeout(pool: Pool, binary: Path) -> None:
    hung_pid = _call(pool, binary, "run")[0]["pid"]
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"no answer after 0\.5 s"):
        _call(pool, binary, "hang", timeout_s=0.5)
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)  # killed and reaped
    assert _call(pool, binary, "run")[0]["served"] == 1


def test_a_rebuilt_binary_gets_a_new_process(pool: Pool, binary: Path) -> None:
    old = _call(pool, binary, "run")[0]["pid"]
    os.utime(binary, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert _call(pool, binary, "run")[0]["pid"] != old


def test_the_least_recently_used_process_goes_beyond_the_limit(
    pool: Pool, binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness_process, "MAX_SERVERS", 2)
    copies = []
    for i in range(3):
        copy = tmp_path / f"conv2d_fake{i}"
        copy.write_bytes(binary.read_bytes())
        copy.chmod(binary.stat().st_mode)
        copies.append(copy)
    first_pid = _call(pool, copies[0], "run")[0]["pid"]
    _call(pool, copies[1], "run")
    _call(pool, copies[2], "run")
    assert len(pool.servers) == 2
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)


def test_arguments_that_would_break_the_line_protocol_are_refused(pool: Pool, binary: Path) -> None:
    with pytest.raises(HarnessError, match="tab or newline"):
        pool.call(binary, ["--input", "a\tb.npy"], 5)
