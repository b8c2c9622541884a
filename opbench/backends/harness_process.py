"""Calling a harness binary (cuda/common/harness.cu, the `cuda` and `cutlass` backends).

Outside the GPU worker each call starts the binary once. Inside it (opbench.worker calls `serve_persistently`), each
binary runs as one `--serve` process that answers request after request and keeps its CUDA context: a point's run and
benchmark then cost no process start, no context creation and no module load. A request that kills its process
(a CUDA error, a usage error) fails alone; the next request to that binary starts a fresh process. A request that
outlives its timeout (a hung kernel) has its process killed.

Phases (opbench.phases, in the job's recording): `harness_start` (a `--serve` process started: the Popen alone; its
CUDA context is created in its first request) and `harness_request` (a request's round trip; a one-shot call's
process start, CUDA context and module load included).
"""

from __future__ import annotations

import selectors
import subprocess
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from opbench import phases

SERVE_END = "opbench-harness: request done"  # harness.cu's kServeEnd: the request's stderr is complete
MAX_SERVERS = 8  # live --serve processes (each holds a CUDA context, ~0.5 GB of device memory); least recent goes


class HarnessError(RuntimeError):
    """A harness call failed: the message holds its command line, exit status or timeout, and its stderr."""


@dataclass
class _Server:
    """One `--serve` process of one binary (identified by path, size and mtime: a rebuilt binary gets a new one)."""

    binary: Path
    process: subprocess.Popen[str]
    stderr: IO[bytes]
    stderr_read: int = 0
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    @classmethod
    def start(cls, binary: Path) -> _Server:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close(): it lives as long as the process)
        process = subprocess.Popen(
            [str(binary), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            bufsize=1,
        )  # fmt: skip
        server = cls(binary=binary, process=process, stderr=stderr)
        assert process.stdout is not None
        server.selector.register(process.stdout, selectors.EVENT_READ)
        return server

    def new_stderr(self, wait_for_end: bool) -> str:
        """The stderr written since the last call; with wait_for_end, up to the harness's end-of-request line."""
        deadline = time.monotonic() + 2.0
        while True:
            self.stderr.seek(self.stderr_read)
            text = self.stderr.read().decode(errors="replace")
            if not wait_for_end or SERVE_END in text or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        self.stderr_read += len(text.encode())
        return text.replace(SERVE_END + "\n", "")

    def request(self, args: list[str], timeout_s: float | None) -> tuple[str, str]:
        """One request: the JSON line it printed and its stderr. A dead or hung process raises HarnessError (and is
        gone: the caller drops this server)."""
        if any("\t" in a or "\n" in a for a in args):
            raise HarnessError(f"a harness argument holds a tab or newline: {args}")
        assert self.process.stdin is not None and self.process.stdout is not None
        command = f"{self.binary} --serve <<< {' '.join(args)}"
        try:
            self.process.stdin.write("\t".join(args) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died before reading: the read below sees the end of stdout
        if not self.selector.select(timeout_s):
            messages = self.new_stderr(wait_for_end=False)
            self.close(kill=True)
            raise HarnessError(f"{command}: no answer after {timeout_s} s (a hung kernel?); killed\n{messages}")
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            raise HarnessError(f"{command} exited {status}:\n{self.new_stderr(wait_for_end=False)}")
        return line, self.new_stderr(wait_for_end=True)

    def close(self, *, kill: bool = False) -> None:
        if self.stderr.closed:
            return
        if kill:
            self.process.kill()
        elif self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()
        self.selector.close()


class Pool:
    """The live `--serve` processes, one per binary, least recently used first."""

    def __init__(self) -> None:
        self.servers: OrderedDict[tuple[str, int, int], _Server] = OrderedDict()

    def call(self, binary: Path, args: list[str], timeout_s: float | None) -> tuple[str, str]:
        stat = binary.stat()
        key = (str(binary.resolve()), stat.st_size, stat.st_mtime_ns)
        server = self.servers.pop(key, None)
        if server is None:
            with phases.span("harness_start"):
                server = _Server.start(binary)
        try:
            with phases.span("harness_request"):
                answer = server.request(args, timeout_s)
        except HarnessError:
            server.close(kill=True)
            raise
        self.servers[key] = server  # most recent last
        while len(self.servers) > MAX_SERVERS:
            self.servers.popitem(last=False)[1].close()
        return answer

    def close(self) -> None:
        while self.servers:
            self.servers.popitem()[1].close()


_pool: Pool | None = None
_timeout_s: float | None = None


def serve_persistently(enabled: bool = True, timeout_s: float | None = None) -> None:
    """From now on, run binaries as persistent `--serve` processes, each request killed after timeout_s (the
    worker); enabled=False stops them all."""
    global _pool, _timeout_s
    if _pool is not None:
        _pool.close()
    _pool, _timeout_s = (Pool() if enabled else None), timeout_s


def call_harness(binary: Path, args: list[str]) -> tuple[str, str]:
    """Run one harness request: its JSON line (stdout) and its stderr. Raises HarnessError on failure."""
    if _pool is not None:
        return _pool.call(binary, args, _timeout_s)
    cmd = [str(binary), *args]
    with phases.span("harness_request"):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout, proc.stderr
