"""The GPU worker: one long-lived process per GPU that runs the workflow's GPU run and benchmark jobs (its thin
clients: opbench.worker_client) with the CUDA context, PyTorch, IREE and the loaded harness binaries kept between
them. It serves one request at a time (a GPU point is timed alone), exits after `idle_exit_s` without a request or on
`shutdown`, and stops every harness process it started when it exits.

    python -m opbench.worker --socket PATH --timeout-s T --idle-exit-s S --log FILE   (started by the client)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opbench import jobs, phases
from opbench.backends import BenchSettings, harness_process
from opbench.worker_client import send_message

HARNESS_TIMEOUT_FRACTION = 0.9  # a hung harness binary is killed by the worker first: the worker survives it


def _run(**kwargs: Any) -> None:
    jobs.run(**_paths(kwargs))


def _benchmark(*, settings: dict[str, Any], **kwargs: Any) -> None:
    jobs.benchmark(settings=BenchSettings(**settings), **_paths(kwargs))


def _paths(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: Path(v) if k in ("inputs", "artifact", "out") and v is not None else v for k, v in kwargs.items()}


COMMANDS: dict[str, Callable[..., None]] = {"run": _run, "benchmark": _benchmark, "ping": lambda: None}


def serve_one(request: dict[str, Any], received: float) -> dict[str, Any]:
    """Run one request in this process; its printed output becomes the answer's log. `received`: when its line was
    read (opbench.phases.now). The answer's phases are the request's (the client's) with the worker's added: its trip
    to the worker (`to_worker`: from the client's sending, waiting behind earlier requests included), from then to the
    command's call (`worker_setup`) and what the command recorded (opbench.jobs' spans)."""
    log = io.StringIO()
    started = time.monotonic()
    with phases.recording() as job_phases:
        job_phases.spans.update(request.get("phases", {}))
        if "sent" in request:
            job_phases.add("to_worker", received - request["sent"])
        try:
            os.chdir(request["cwd"])
            os.environ.update(request["env"])
            command = COMMANDS[request["command"]]
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                job_phases.add("worker_setup", phases.now() - received)
                command(**request["kwargs"])
            error = ""
        except Exception:  # the request fails, the worker goes on
            error = traceback.format_exc()
    return {"event": "done", "ok": not error, "log": log.getvalue(), "error": error, "pid": os.getpid(),
            "seconds": time.monotonic() - started, "phases": job_phases.to_dict(),
            "answered": phases.now()}  # fmt: skip


def _send(connection: socket.socket, message: dict[str, Any]) -> bool:
    """One message to a client; False where it went away (its job was killed): the worker serves the next one."""
    if not send_message(connection, message):
        print("the client went away before the answer", flush=True)
        return False
    return True


def serve(path: Path, *, timeout_s: float, idle_exit_s: float, log: Path) -> None:
    """Accept requests on the socket until idle for idle_exit_s or told to shut down."""
    harness_process.serve_persistently(True, timeout_s=HARNESS_TIMEOUT_FRACTION * timeout_s)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    inode = path.stat().st_ino
    listener.listen(256)
    listener.settimeout(idle_exit_s)
    print(f"worker {os.getpid()} listening on {path} (timeout {timeout_s:g} s, idle exit {idle_exit_s:g} s)",
          flush=True)  # fmt: skip
    served = 0
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                print(f"idle for {idle_exit_s:g} s after {served} requests: exiting", flush=True)
                return
            with connection, connection.makefile("rb") as stream:
                line = stream.readline()
                received = phases.now()
                if not line:
                    continue
                request = json.loads(line)
                if not _send(connection, {"event": "started", "pid": os.getpid(), "log": str(log)}):
                    continue
                if request["command"] == "shutdown":
                    print(f"shutdown after {served} requests", flush=True)
                    return
                answer = serve_one(request, received)
                served += 1
                status = "ok" if answer["ok"] else "FAILED\n" + answer["log"] + answer["error"]
                print(f"{request['command']} {request['kwargs'].get('out', '')}: {answer['seconds']:.3f} s {status}",
                      flush=True)  # fmt: skip
                _send(connection, answer)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == inode:  # still ours (not a newer worker's)
                path.unlink()
        harness_process.serve_persistently(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opbench.worker", description=__doc__)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--timeout-s", type=float, required=True, help="a request's limit (the client's)")
    parser.add_argument("--idle-exit-s", type=float, required=True)
    parser.add_argument("--log", type=Path, required=True, help="this worker's log (named in failed requests)")
    a = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # runs the finally blocks: harness processes stop
    serve(a.socket, timeout_s=a.timeout_s, idle_exit_s=a.idle_exit_s, log=a.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
