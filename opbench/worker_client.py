"""The client side of the GPU worker (opbench.worker): what a GPU run or benchmark job runs. Standard library only, so
that a job costs a Python start and a socket round trip, not the imports of NumPy, PyTorch and IREE.

One worker serves one GPU of one host for one version of the code: its socket's name is a hash of the host, the
job's CUDA_VISIBLE_DEVICES (Slurm's GPU binding), the Python interpreter and the content of every opbench module. The
first job that finds no worker starts one (under a lock: concurrent jobs start one); a worker of older code is never
used (its socket has another name) and exits when idle. A request that the worker does not answer within its timeout
(a hung kernel) has the worker killed with everything it started; a worker that dies under a request fails that
request alone; either way the next job starts a fresh worker.

Protocol: one JSON line per message over a Unix stream socket. The client sends {command, kwargs, cwd, env, phases,
sent}; the worker answers {"event": "started", "pid"} when it takes the request (requests queue while it serves
another), then {"event": "done", "ok", "log", "error", "phases", "answered"}. `phases` (opbench.phases): the job's
spans so far, the client's in the request, those with the worker's added in the answer; `sent` and `answered`: the
instants the message left (opbench.phases.now, one clock for the host), for the spans between the processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opbench import phases

PACKAGE = Path(__file__).resolve().parent
START_TIMEOUT_S = 120.0  # a cold start imports PyTorch and IREE


SETTINGS_ENV = "OPBENCH_GPU_WORKER"  # the config's gpu_worker section (and the worker log folder), set by the workflow
# The code fingerprint, computed once by the workflow (hashing the package costs a job ~30 ms; a job costs ~100)
CODE_ENV = "OPBENCH_CODE_FINGERPRINT"


def settings_to_env(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


def settings_from_env() -> dict[str, Any] | None:
    """The workflow's gpu_worker settings (None outside a workflow job: a job run by hand runs in its process)."""
    text = os.environ.get(SETTINGS_ENV)
    return json.loads(text) if text else None


class WorkerError(RuntimeError):
    """The worker could not serve a request; the message says why (and where its log is)."""


def code_fingerprint() -> str:
    """A hash of every opbench module's path and content: a worker runs exactly the code its clients have."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def runtime_dir() -> Path:
    """Where sockets and lock files live: short paths (a socket's path is limited to ~100 bytes), one per user."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    folder = Path(base) / f"opbench-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def worker_key() -> str:
    code = os.environ.get(CODE_ENV) or code_fingerprint()
    parts = [socket.gethostname(), os.environ.get("CUDA_VISIBLE_DEVICES", "<all>"), sys.executable, code]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def socket_path(key: str | None = None) -> Path:
    return runtime_dir() / f"worker-{key or worker_key()}.sock"


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


def _start(path: Path, *, log_dir: Path, timeout_s: float, idle_exit_s: float) -> socket.socket:
    """Start a worker (in its own session: it outlives the job that started it) and connect to it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{socket.gethostname()}-{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    path.unlink(missing_ok=True)  # a dead worker's socket (we hold the lock and nobody answered on it)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "opbench.worker", "--socket", str(path), "--timeout-s", str(timeout_s),
             "--idle-exit-s", str(idle_exit_s), "--log", str(log)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=PACKAGE.parent,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock
        if process.poll() is not None:
            raise WorkerError(f"the worker exited {process.returncode} while starting; its log: {log}\n{_tail(log)}")
        time.sleep(0.05)
    process.kill()
    raise WorkerError(f"the worker did not listen within {START_TIMEOUT_S:g} s; its log: {log}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def connect(*, log_dir: Path, timeout_s: float, idle_exit_s: float) -> socket.socket:
    """A connection to this GPU's worker, started if none answers."""
    path = socket_path()
    sock = _connect(path)
    if sock is not None:
        return sock
    with phases.span("start_worker"), open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter; the others find its worker once they hold the lock
        return _connect(path) or _start(path, log_dir=log_dir, timeout_s=timeout_s, idle_exit_s=idle_exit_s)


def send_message(sock: socket.socket, message: dict[str, Any]) -> bool:
    """One JSON line to the other end, unbuffered (a message the peer refused must not sit in a write buffer that
    closing the stream would flush into the same broken pipe); False where the other end went away."""
    try:
        sock.sendall(json.dumps(message).encode() + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def _read_message(stream: Any) -> dict[str, Any] | None:
    """The next message; None where the worker closed the connection (or its end went away with it)."""
    try:
        line = stream.readline()
    except ConnectionResetError:
        return None
    return json.loads(line) if line else None


def request(
    command: str, kwargs: dict[str, Any], *, log_dir: Path, timeout_s: float, idle_exit_s: float = 60.0
) -> dict[str, Any]:
    """Have the worker run `command` (opbench.worker.COMMANDS) with kwargs; returns its answer. A failure, a dead
    worker or a request past timeout_s (the worker is then killed) raise WorkerError. Inside a phases recording, the
    request carries its spans and the answer's (the worker's added) replace them, with `from_worker` added."""
    env = {k: v for k, v in os.environ.items() if k.startswith("OPBENCH_")}
    message = {"command": command, "kwargs": kwargs, "cwd": os.getcwd(), "env": env}
    job_phases = phases.current() or phases.Phases()
    for attempt in range(2):
        with phases.span("connect"):
            sock = connect(log_dir=log_dir, timeout_s=timeout_s, idle_exit_s=idle_exit_s)
        stream = sock.makefile("rb")
        # where sending fails, the worker is going away: no "started" comes
        send_message(sock, {**message, "phases": job_phases.to_dict(), "sent": phases.now()})
        started = _read_message(stream)  # waits while the worker serves requests queued before this one
        if started is not None:
            break
        # It closed the connection without taking the request: it exited when idle, or died, just then.
        stream.close()
        sock.close()
        if attempt == 1:
            raise WorkerError("two workers in a row closed the connection before taking the request")
    with sock, stream:
        sock.settimeout(timeout_s)
        try:
            done = _read_message(stream)
        except TimeoutError:
            _kill(started["pid"])
            raise WorkerError(
                f"no answer within the timeout ({timeout_s:g} s, the config's worker.timeout_s): a hung kernel? "
                f"The worker (pid {started['pid']}) and its processes were killed; the next job starts a fresh one"
            ) from None
    if done is None:
        raise WorkerError(
            f"the worker (pid {started['pid']}) died while serving this request (a crash in a library or a kernel); "
            f"its log: {started.get('log')}\n{_tail(Path(started['log'])) if started.get('log') else ''}"
        )
    job_phases.spans.update(done["phases"])
    job_phases.add("from_worker", phases.now() - done["answered"])
    if not done["ok"]:
        raise WorkerError(done["log"] + done["error"])
    return done


def _kill(pid: int) -> None:
    """Kill a worker and every process it started (its session: the persistent harness processes)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def shutdown(key: str | None = None) -> bool:
    """Ask this GPU's worker (or the one of `key`) to exit; False if none was running."""
    sock = _connect(socket_path(key))
    if sock is None:
        return False
    with sock, sock.makefile("rb") as stream:
        if not send_message(sock, {"command": "shutdown", "kwargs": {}, "cwd": os.getcwd(), "env": {}}):
            return True  # it was going away by itself
        while _read_message(stream) is not None:
            pass
    return True
