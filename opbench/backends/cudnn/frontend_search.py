"""The cuDNN frontend's engine search (frontend.Session.select) in a child process under a wall-clock deadline.

Building or first running one engine configuration is a call into cuDNN that Python cannot interrupt, and on a few
shapes one of them takes minutes: on an H200 (cuDNN 9.19, commit c17db17) `eng1_k2=4_k3=0` (heuristic modes B and
FALLBACK, 2.5 ms a launch) took 161 s of a 162 s search on MobileNetV2's dw06 (28x28, 192 channels, stride 2, f16,
batch 32), where it takes 1-2.5 s on the other layers, and the search on dw09 (14x14, 576 channels, stride 2) passed
the GPU worker's 300 s timeout. So the search runs in a child process that reports each candidate as it goes (JSON
lines on its stdout); at the deadline the child is killed, the candidate it was on is listed as not finished and the
ones after it as not tried, and the fastest valid candidate reported so far is the choice; a child that dies on a
candidate (a crash inside cuDNN) is handled the same way, its exit status the reason. The parent then builds only
that one (frontend.choose).

    python -m opbench.backends.cudnn.frontend_search JOB.pkl      (started by search_in_child)
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opbench.backends.base import Job

# A line of the child's stdout that carries an event starts with this; anything else (a library's own printing) is not
# read.
EVENT_PREFIX = "@opbench-search "


@dataclass
class SearchOutcome:
    """What the child reported: every candidate's record (frontend.Candidate.to_dict), the heuristic modes' plan
    counts, the chosen candidate's name (None where no candidate is valid) and whether the search finished."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    chosen: str | None = None
    finished: bool = False
    seconds: float = 0.0
    stderr_tail: str = ""

    def apply(self, event: dict[str, Any]) -> None:
        """Take one event of the child: `plans` (every candidate, untried), `tried` (one candidate's outcome),
        `chosen` (the final records, after the finalists were timed again)."""
        kind = event.get("event")
        if kind == "plans":
            self.candidates, self.modes = list(event["candidates"]), dict(event["modes"])
        elif kind == "tried":
            record = event["candidate"]
            self.candidates = [record if c["name"] == record["name"] else c for c in self.candidates]
        elif kind == "chosen":
            self.candidates, self.chosen, self.finished = list(event["candidates"]), event["name"], True

    def stop(self, why: str, trying: str | None) -> None:
        """The child stopped before its choice (`why`: killed at the deadline, or its exit status): the candidate it
        was on is not finished, the untried ones are not tried, and the choice is the fastest valid one reported (its
        trial time)."""
        for record in self.candidates:
            if record["name"] == trying:
                record["reason"] = f"not finished: {why} while cuDNN built, ran or timed it"
            elif not record["valid"] and not record["reason"]:
                record["reason"] = f"not tried: {why}"
        valid = [c for c in self.candidates if c["valid"] and c["ms"] is not None]
        self.chosen = min(valid, key=lambda c: c["ms"])["name"] if valid else None


def search_in_child(job: Job, deadline_s: float, command: list[str] | None = None) -> SearchOutcome:
    """Run the engine search for `job` in a child process (`command` + the job's pickle path; default: this
    module's main under the running Python) and read its events until it exits or `deadline_s` pass (then kill it).
    Raises RuntimeError where the child failed before it listed the candidates."""
    command = command or [sys.executable, "-m", "opbench.backends.cudnn.frontend_search"]
    outcome = SearchOutcome()
    trying: list[str | None] = [None]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="opbench-search-") as tmp:
        job_file, err_file = Path(tmp) / "job.pkl", Path(tmp) / "stderr.txt"
        job_file.write_bytes(pickle.dumps(job))
        with err_file.open("w") as err:
            child = subprocess.Popen(
                [*command, str(job_file)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True
            )

            def read_events() -> None:
                assert child.stdout is not None
                for line in child.stdout:
                    if line.startswith(EVENT_PREFIX):
                        event = json.loads(line[len(EVENT_PREFIX) :])
                        trying[0] = event.get("name") if event.get("event") == "trying" else None
                        outcome.apply(event)

            reader = threading.Thread(target=read_events, daemon=True)
            reader.start()
            killed = False
            try:
                child.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                killed = True
            reader.join()
        outcome.seconds = round(time.monotonic() - started, 3)
        outcome.stderr_tail = err_file.read_text(errors="replace")[-2000:]
    if not outcome.finished:
        if not outcome.candidates:
            raise RuntimeError(
                f"the cuDNN engine search (a child process) ended without listing candidates (exit {child.returncode}"
                f", {outcome.seconds:g} s): {outcome.stderr_tail.strip()[-600:] or 'no error output'}"
            )
        if killed:
            outcome.stop(f"the search's deadline of {deadline_s:g} s passed", trying[0])
        else:
            outcome.stop(f"the search process ended (exit {child.returncode})", trying[0])
    return outcome


def emit(event: dict[str, Any]) -> None:
    """One event line on stdout, flushed at once (the parent reads them as they come)."""
    print(EVENT_PREFIX + json.dumps(event), flush=True)


def main(argv: list[str]) -> int:
    from opbench.backends.cudnn import frontend

    job = pickle.loads(Path(argv[0]).read_bytes())
    session = frontend.Session(job, flush_l2=frontend.TRIAL.flush_l2)
    try:
        name: str | None = session.select(report=emit).name
    except RuntimeError as error:  # no valid candidate: the records say why
        print(error, file=sys.stderr)
        name = None
    emit({"event": "chosen", "name": name, "candidates": [c.to_dict() for c in session.candidates]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
