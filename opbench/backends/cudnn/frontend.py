"""cuDNN through NVIDIA's own frontend (`nvidia-cudnn-frontend` >= 1.32, its Python graph API `cudnn.pygraph`): the
variants frontend_fp32, frontend_tf32, frontend_fp16 and frontend_bf16. cuDNN as strong as cuDNN gets: every engine
configuration its heuristics offer is built, verified and timed, and the fastest verified one is kept.

The graph: one conv_fprop node (cross-correlation), X, W and Y in the job's dtype (io data type), computed and
accumulated in float32 (compute and intermediate data type FLOAT), strides from the layout (NHWC memory for
nhwc_fhwc, as PyTorch's channels_last views; NCHW otherwise; Y's strides are set explicitly, since the frontend would
default Y to NHWC), symmetric padding, stride and dilation from the shape.

The math mode is chosen by cuDNN's numerical notes, as PyTorch does for its own cuDNN calls: an f32 convolution on an
engine carrying CUDNN_NUMERICAL_NOTE_TENSOR_CORE reads its inputs as TF32, so fp32 deselects those engines
(pygraph.deselect_numeric_notes) and tf32 allows them; every mode deselects DOWN_CONVERT_INPUTS (inputs converted to a
narrower type), as PyTorch does. Deselected plans stay in the list and fail to build (listed as invalid, with the
reason). REDUCED_PRECISION_REDUCTION is not deselected: on an H100 (cuDNN 9.19) the engine PyTorch picks for
ResNet-50's first layer in f16 (eng63, a first-layer kernel that accumulates in f32 by its name) carries it and
passes the verification at the f32-accumulator error bound, at half the time of the best engine without the note;
the element-wise check below judges what the note would have guarded.

The candidates: one graph per heuristic mode the API offers (cudnn.heur_mode: A, B, FALLBACK; OPENSOURCE is left out,
as it adds no enumerable plan, only an entry that delegates to whichever plan the backend built last), each
create_execution_plans([mode]); the plans, deduplicated by name across modes, are each built (a plan that does not
build is listed as invalid), run once into a NaN-poisoned output, checked against PyTorch's conv2d in float64 on the
same inputs (finite, relative-norm error within the math mode's tolerance, every element within what rounding
explains: the verification's own tests, opbench.verify, computed on the GPU; else invalid), and timed briefly with
opbench.gpu_timing.time_graph (TRIAL); once SEARCH_BUDGET_S have passed with a valid one found, the rest are listed
as not tried, and each tried one records its search time (`search_s`). The fastest valid one is chosen: run() returns
its output; benchmark() times it with the job's settings and returns, besides what PyTorch's variants return,
`chosen` (the plan's engine name), `candidates` (name, the modes that offered it, ms, valid, reason, search_s,
build_s) and `search` (which job searched, its seconds, whether it finished).

The search runs in a child process under a wall-clock deadline (frontend_search, SEARCH_DEADLINE_S): one candidate's
build can take minutes, inside cuDNN where nothing interrupts it. The parent builds only the chosen candidate and
checks it again. A run job keeps its choice for the point's benchmark job when both run in one process (the GPU
worker), so a point is searched once; run as separate processes, each job searches, and whichever plan benchmark()
times passed the same check against float64.

Timing: each launch sets the handle's stream to torch's current stream (inside the CUDA-graph capture that is the
capture stream; cudnn.set_stream skips the backend call while the stream is unchanged) and executes the plan by index
on the buffer set's own X, W and Y (rotating like PyTorch's variants), the workspace allocated once. Where the
frontend's execution cannot be captured, time_graph times back-to-back eager launches instead and `method` says so.
The timed outputs must equal a fresh execution on each buffer set (gpu_timing.compare_outputs).

Requirements: PyTorch (the buffers and the float64 check) and the frontend (`pip install 'opbench[cudnn-frontend]'`);
without the frontend its rows are SKIP (Cudnn.variant_requirement_missing), and run() and benchmark() raise
RuntimeError(FRONTEND_MISSING) if called. The frontend dlopens libcudnn
(LD_LIBRARY_PATH, then site-packages' nvidia/cudnn/lib, then the loader's search) and libcudart (libcudart.so.12,
then .13): PyTorch's cu13 wheels keep them elsewhere, and two cuDNN libraries in one process would be two different
cuDNNs. So PyTorch is imported first and the frontend is pointed at the libraries PyTorch loaded (import_frontend).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opbench import phases
from opbench.backends.base import BenchSettings, Job
from opbench.backends.cudnn import frontend_search
from opbench.backends.cudnn.common import (
    TorchConv,
    device_operands,
    math_mode,
    memory_format,
    to_layout,
)
from opbench.gpu_timing import buffer_copies, time_graph, torch_dtype, verified_timing
from opbench.verify import INPUT_FACTOR, ErrorModel

FRONTEND_MISSING = "nvidia-cudnn-frontend is not installed: pip install 'opbench[cudnn-frontend]'"
# The brief timing of each candidate (time_graph with these settings; rotating buffers as the final timing).
TRIAL = BenchSettings(warmup_ms=1.0, repetitions=3, min_sample_ms=0.5, flush_l2=True)
# The trial's sub-millisecond samples rank the candidates; the FINALISTS fastest are timed again with longer samples
# before one is chosen. Run 1 of config/gpu-cudnn.yaml (H100, 59ffe12), which chose on the trial alone, was slower
# than PyTorch's pick on 14 of 23 layers, by up to 6%: trial noise, not a missing engine.
FINALISTS = 4
# Wall seconds the candidate search may take once one candidate is valid; the rest are listed as not tried. On an H100
# (commit 569c188) the search took 139 s and 149 s on one depthwise layer (28x28, 192 channels, stride 2, f16 and
# bf16: 25 configurations, several at 4 ms a launch), where it takes 0.5-4 s on the others.
SEARCH_BUDGET_S = 20.0
# Wall seconds the whole search may take, its child process's start included (frontend_search: one candidate's build or
# first run is a cuDNN call that can take minutes); searches take 2-16 s on the depthwise layers (H200, c17db17).
SEARCH_DEADLINE_S = 60.0
# A run job's search kept for the benchmark job of the same point in the same process (the GPU worker serves both):
# the benchmark times the plan that the run chose and whose output the verification checks, without a second search.
# At most this many are kept, the oldest dropped first.
SEARCHES_KEPT = 4
FINAL = BenchSettings(warmup_ms=5.0, repetitions=5, min_sample_ms=2.0, flush_l2=True)
SKIPPED_MODES = frozenset({"OPENSOURCE"})
# A candidate's output against float64: the relative-norm error within the math mode's tolerance (config.yaml's
# defaults) and every element within its rounding bound (opbench.verify.ErrorModel): what the verification asks.
CANDIDATE_TOLERANCE = {"fp32": 1e-4, "tf32": 2e-3, "fp16": 5e-3, "bf16": 3e-2}
# Numerical notes whose engines a math mode excludes.
EXCLUDED_NOTES = {
    "fp32": ("TENSOR_CORE", "DOWN_CONVERT_INPUTS"),
    "tf32": ("DOWN_CONVERT_INPUTS",),
    "fp16": ("DOWN_CONVERT_INPUTS",),
    "bf16": ("DOWN_CONVERT_INPUTS",),
}
_IO_TYPE = {"f32": "FLOAT", "f16": "HALF", "bf16": "BFLOAT16"}
# The name pygraph gives the entry that delegates to the backend's own choice (_pygraph.py get_plan_name_at_index): no
# engine configuration of its own, so not a candidate.
DELEGATING_PLAN = "backend_heuristics"


def frontend_missing() -> str | None:
    """Why the frontend variants cannot run here (the `cudnn` module is absent), or None."""
    return None if importlib.util.find_spec("cudnn") is not None else FRONTEND_MISSING


def loaded_library(maps: str, stem: str) -> str | None:
    """The path of the first library named `stem`.so[.N...] (libcudnn.so.9, not libcudnn_graph.so.9) mapped in a
    process, from the text of its /proc/<pid>/maps; None if there is none."""
    name = re.compile(rf"{re.escape(stem)}\.so(\.\d+)*")
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and name.fullmatch(os.path.basename(fields[5].strip())):
            return fields[5].strip()
    return None


def heuristic_modes(heur_mode: Any) -> list[Any]:
    """Every heuristic mode the API offers (its enum's members, in their order), but SKIPPED_MODES."""
    return [mode for name, mode in heur_mode.__members__.items() if name not in SKIPPED_MODES]


def candidate_problem(*, nonfinite: int, size: int, relerr: float, tolerance: float, elem_ratio: float) -> str | None:
    """Why a candidate's output is not the convolution (compared with float64), or None where it is: NaN/Inf, the
    relative-norm error over `tolerance`, or an element off by more than rounding explains (`elem_ratio`, the worst
    |out - ref| / bound, over 1)."""
    if nonfinite:
        return f"{nonfinite} of {size} output elements are NaN or Inf"
    if not relerr <= tolerance:
        return f"relative error {relerr:.3e} exceeds {tolerance:.1e}"
    if not elem_ratio <= 1.0:
        return f"an element is off by {elem_ratio:.3g}x what rounding explains"
    return None


def rounding_bound(torch: Any, reference: Any, scale: Any, terms: int, model: ErrorModel) -> Any:
    """opbench.verify.ErrorModel.bound on the GPU (torch tensors): the largest |out - ref| rounding explains."""
    per_product = INPUT_FACTOR * model.input_u + model.accumulate_u * terms
    per_result = 4.0 * model.input_u + 2.0 * model.output_u
    return per_product * scale + per_result * torch.abs(reference)


@dataclass(kw_only=True)
class Candidate:
    """One engine configuration: what the records show (to_dict) and where it is on the device."""

    name: str
    modes: list[str]
    ms: float | None = None  # the final timing for finalists, the trial's for the others
    trial_ms: float | None = None  # a finalist's trial time
    valid: bool = False
    reason: str = ""
    graph: Any = field(default=None, repr=False)
    tensors: tuple[Any, Any, Any] | None = field(default=None, repr=False)  # the graph's X, W, Y
    index: int = -1  # in its graph's plan list
    workspace_bytes: int = 0
    search_s: float | None = None  # wall seconds of its build, check and trial
    build_s: float | None = None  # wall seconds of its build alone

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "modes": self.modes, "ms": self.ms, "trial_ms": self.trial_ms, "valid": self.valid,
                "reason": self.reason, "search_s": self.search_s, "build_s": self.build_s}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Check:
    """What a candidate's output is held to: the float64 reference (torch, on the GPU), the largest error rounding
    explains per element, the reference's norm and the math mode's relative-norm tolerance."""

    reference: Any
    bound: Any
    ref_norm: float
    tolerance: float


def no_valid_candidate(modes: dict[str, str], candidates: list[dict[str, Any]]) -> str:
    """The error of a search that found no valid candidate: the modes' plan counts and the first candidates' reasons."""
    reasons = "; ".join(f"{c['name']}: {c['reason']}" for c in candidates[:20]) or "no plans"
    return f"no cuDNN engine configuration built, ran and verified (modes: {modes}): {reasons}"


def over_budget(elapsed_s: float, candidates: list[Candidate]) -> bool:
    """Whether the search stops trying candidates: SEARCH_BUDGET_S spent and one of those tried is valid (without a
    valid one it goes on, so that a row is only FAIL where no configuration works)."""
    return elapsed_s > SEARCH_BUDGET_S and any(c.valid for c in candidates)


def fastest(candidates: list[Candidate]) -> Candidate | None:
    """The valid candidate with the lowest time (the first of equals), or None."""
    timed = [c for c in candidates if c.valid and c.ms is not None]
    return min(timed, key=lambda c: c.ms) if timed else None


def finalists(candidates: list[Candidate], count: int = FINALISTS) -> list[Candidate]:
    """The `count` valid candidates with the lowest trial times, fastest first."""
    timed = [c for c in candidates if c.valid and c.ms is not None]
    return sorted(timed, key=lambda c: c.ms or 0.0)[:count]


def _first_line(error: BaseException, limit: int = 300) -> str:
    text = str(error).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return f"{type(error).__name__}: {line}"[:limit]


_FRONTEND: Any = None
_HANDLES: dict[int, Any] = {}


def import_frontend() -> Any:
    """The frontend's `cudnn` module, loaded against the cuDNN and CUDA runtime PyTorch loaded.

    PyTorch is imported first and made to load its cuDNN; the directory of the libcudnn.so.9 it mapped leads
    LD_LIBRARY_PATH while `import cudnn` runs (the frontend's _dlopen_cudnn looks there first, and a dlopen of the
    same file returns the library already loaded), and CUDNN_FRONTEND_CUDART_LIB_NAME names PyTorch's libcudart
    (unless already set), which the frontend dlopens on first use.
    """
    global _FRONTEND
    if _FRONTEND is not None:
        return _FRONTEND
    missing = frontend_missing()
    if missing:
        raise RuntimeError(missing)
    import torch

    torch.backends.cudnn.version()  # loads PyTorch's libcudnn
    torch.cuda.init()
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    cudnn_lib, cudart_lib = loaded_library(maps, "libcudnn"), loaded_library(maps, "libcudart")
    if cudart_lib and "CUDNN_FRONTEND_CUDART_LIB_NAME" not in os.environ:
        os.environ["CUDNN_FRONTEND_CUDART_LIB_NAME"] = cudart_lib
    saved = os.environ.get("LD_LIBRARY_PATH")
    if cudnn_lib:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [os.path.dirname(cudnn_lib), saved]))
    try:
        import cudnn
    except ImportError as error:
        raise RuntimeError(f"nvidia-cudnn-frontend does not import: {error}") from error
    finally:
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved
    _FRONTEND = cudnn
    return cudnn


class Session:
    """One job's convolution on the device: buffers (rotating copies of X, W and Y), the float64 reference, the
    candidates, and how to execute one of them."""

    def __init__(self, job: Job, flush_l2: bool) -> None:
        cudnn = import_frontend()  # first: without the frontend, its error and nothing else
        import torch

        self.torch, self.cudnn, self.job = torch, cudnn, job
        self.mode = math_mode(job.variant)
        device = torch.cuda.current_device()
        if device not in _HANDLES:
            _HANDLES[device] = self.cudnn.create_handle()
        self.handle = _HANDLES[device]
        x, w = device_operands(torch, job)  # conv2d and depthwise_conv2d: input and filter
        shape, self.conv = job.shape, TorchConv.of(job)
        y = torch.empty(
            (shape.n, self.conv.out_channels, shape.p, shape.q), dtype=torch_dtype(torch, job.dtype.name),
            device="cuda", memory_format=memory_format(torch, job.layout),
        )  # fmt: skip
        self.props = torch.cuda.get_device_properties(device)
        footprint = (x.numel() + w.numel() + y.numel()) * x.element_size()
        self.copies = buffer_copies(footprint, self.props.L2_cache_size, flush_l2)
        self.xs = [x] + [x.clone() for _ in range(self.copies - 1)]
        self.ws = [w] + [w.clone() for _ in range(self.copies - 1)]
        self.ys = [y] + [torch.empty_like(y) for _ in range(self.copies - 1)]
        self.modes: dict[str, str] = {}  # heuristic mode -> how many plans it offered, or why none
        self.candidates: list[Candidate] = []

    # ---- the graph
    def _graph(self) -> tuple[Any, tuple[Any, Any, Any]]:
        cudnn, shape = self.cudnn, self.job.shape
        io = getattr(cudnn.data_type, _IO_TYPE[self.job.dtype.name])
        fp32 = cudnn.data_type.FLOAT
        graph = cudnn.pygraph(
            name="opbench_conv2d", io_data_type=io, intermediate_data_type=fp32, compute_data_type=fp32,
            handle=self.handle, is_cuda_graph_replay_expected=True,
        )  # fmt: skip
        x, w, y = self.xs[0], self.ws[0], self.ys[0]
        tx = graph.tensor(name="X", dim=list(x.shape), stride=list(x.stride()), data_type=io)
        tw = graph.tensor(name="W", dim=list(w.shape), stride=list(w.stride()), data_type=io)
        ty = graph.conv_fprop(
            image=tx, weight=tw, pre_padding=list(shape.pad), post_padding=list(shape.pad), stride=list(shape.stride),
            dilation=list(shape.dilation), compute_data_type=fp32, name="conv",
        )  # fmt: skip
        ty.set_output(True).set_data_type(io).set_dim(list(y.shape)).set_stride(list(y.stride()))
        note = cudnn.numerical_note
        notes = [getattr(note, name) for name in EXCLUDED_NOTES[self.mode] if hasattr(note, name)]
        graph.deselect_numeric_notes(notes)
        graph.validate()
        graph.build_operation_graph()
        return graph, (tx, tw, ty)

    def plan(self) -> list[Candidate]:
        """One graph per heuristic mode; its plans, each engine configuration once (by name)."""
        by_name: dict[str, Candidate] = {}
        for mode in heuristic_modes(self.cudnn.heur_mode):
            mode_name = getattr(mode, "name", str(mode))
            try:
                graph, tensors = self._graph()
                graph.create_execution_plans([mode])
                count = graph.get_execution_plan_count()
                names = [graph.get_plan_name_at_index(i) for i in range(count)]
            except Exception as error:
                self.modes[mode_name] = f"no plans: {_first_line(error)}"
                continue
            self.modes[mode_name] = f"{count} plans"
            for index, name in enumerate(names):
                if name == DELEGATING_PLAN:
                    continue
                if name in by_name:
                    if mode_name not in by_name[name].modes:
                        by_name[name].modes.append(mode_name)
                else:
                    by_name[name] = Candidate(name=name, modes=[mode_name], graph=graph, tensors=tensors, index=index)
        self.candidates = list(by_name.values())
        return self.candidates

    # ---- execution
    def execute(self, cand: Candidate, x: Any, w: Any, y: Any, workspace: Any) -> Any:
        """Enqueue the plan on torch's current stream (the capture stream while capturing); return y."""
        self.cudnn.set_stream(self.handle, self.torch.cuda.current_stream().cuda_stream)
        assert cand.tensors is not None
        tx, tw, ty = cand.tensors
        cand.graph.execute_plan_at_index({tx: x, tw: w, ty: y}, workspace, index=cand.index, handle=self.handle)
        return y

    def launch(self, cand: Candidate, i: int, workspace: Any) -> Any:
        """Buffer set i: its own X, W and Y."""
        return self.execute(cand, self.xs[i], self.ws[i], self.ys[i], workspace)

    def fresh(self, cand: Candidate, i: int, workspace: Any) -> Any:
        """The plan executed eagerly on buffer set i into a new NaN-poisoned output, finished."""
        out = self.torch.full_like(self.ys[i], float("nan"))
        self.execute(cand, self.xs[i], self.ws[i], out, workspace)
        self.torch.cuda.synchronize()
        return out

    def workspace(self, nbytes: int) -> Any:
        return self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda") if nbytes else None

    # ---- choosing
    def trial(self, cand: Candidate, check: Check) -> None:
        """Build one candidate, check its output against float64 and time it briefly (TRIAL); on any failure its
        `reason` says which step failed."""
        torch = self.torch
        started = time.monotonic()
        try:
            cand.graph.build_plan_at_index(cand.index)
            cand.workspace_bytes = int(cand.graph.get_workspace_size())
        except Exception as error:
            cand.reason = f"did not build: {_first_line(error)}"
            return
        finally:
            cand.build_s = round(time.monotonic() - started, 3)
        try:
            workspace = self.workspace(cand.workspace_bytes)
            out = self.fresh(cand, 0, workspace)
        except Exception as error:
            cand.reason = f"did not run: {_first_line(error)}"
            return
        error = (out.double() - check.reference).abs_()
        ratio = torch.where(error == 0, torch.zeros_like(error), error / check.bound)
        problem = candidate_problem(
            nonfinite=int((~torch.isfinite(out)).sum()), size=out.numel(),
            relerr=float(error.norm()) / check.ref_norm if check.ref_norm > 0 else float(error.norm()),
            tolerance=check.tolerance, elem_ratio=float(ratio.max()),
        )  # fmt: skip
        del error, ratio, out
        if problem:
            cand.reason = f"wrong output: {problem}"
            return
        try:
            timing = time_graph(lambda i: self.launch(cand, i, workspace), self.copies, TRIAL, eager_fallback=True)
        except Exception as error:
            cand.reason = f"failed while timed: {_first_line(error)}"
            return
        cand.ms = float(np.median(timing.samples_ms))
        cand.valid = math.isfinite(cand.ms) and cand.ms > 0
        if not cand.valid:
            cand.reason = f"timed at {cand.ms} ms"

    def check(self) -> Check:
        """The float64 reference of buffer set 0 and what a candidate's output is held to."""
        torch, shape, dtype = self.torch, self.job.shape, self.job.dtype
        x0, w0 = self.xs[0].double().contiguous(), self.ws[0].double().contiguous()

        def conv(x: Any, w: Any) -> Any:
            return torch.nn.functional.conv2d(
                x, w, stride=shape.stride, padding=shape.pad, dilation=shape.dilation, groups=self.conv.groups
            )

        # The float64 reference and, per element, sqrt(sum of its products' squares) (the op's product_scale).
        reference, scale = conv(x0, w0), conv(x0 * x0, w0 * w0).sqrt_()
        del x0, w0
        precision = "tf32" if self.mode == "tf32" else dtype.tolerance_key
        bound = rounding_bound(torch, reference, scale, self.conv.terms, ErrorModel.of(dtype, precision))
        return Check(reference=reference, bound=bound, ref_norm=float(reference.norm()),
                     tolerance=CANDIDATE_TOLERANCE[self.mode])  # fmt: skip

    def select(self, report: Callable[[dict[str, Any]], None] | None = None) -> Candidate:
        """Build, verify and time every candidate; the fastest valid one (RuntimeError where none is). `report`
        (frontend_search's child) is told each step: `plans`, then `trying` and `tried` per candidate."""
        check = self.check()
        tell = report or (lambda event: None)
        self.plan()
        tell({"event": "plans", "candidates": [c.to_dict() for c in self.candidates], "modes": self.modes})
        started = time.monotonic()
        for cand in self.candidates:
            if over_budget(time.monotonic() - started, self.candidates):
                cand.reason = f"not tried: the search's budget of {SEARCH_BUDGET_S:.0f} s was spent"
            else:
                tell({"event": "trying", "name": cand.name})
                tried = time.monotonic()
                self.trial(cand, check)
                cand.search_s = round(time.monotonic() - tried, 3)
            tell({"event": "tried", "candidate": cand.to_dict()})
        for cand in finalists(self.candidates):
            workspace = self.workspace(cand.workspace_bytes)
            timing = time_graph(
                lambda i, cand=cand, workspace=workspace: self.launch(cand, i, workspace),
                self.copies, FINAL, eager_fallback=True,
            )  # fmt: skip
            cand.trial_ms, cand.ms = cand.ms, float(np.median(timing.samples_ms))
        chosen = fastest(finalists(self.candidates, FINALISTS))
        if chosen is None:
            raise RuntimeError(no_valid_candidate(self.modes, [c.to_dict() for c in self.candidates]))
        return chosen

    def rebuild(self, name: str) -> Candidate:
        """The candidate named `name` (a search's choice) built and checked in this process (RuntimeError where it is
        not offered or not valid here)."""
        by_name = {c.name: c for c in self.plan()}
        if name not in by_name:
            raise RuntimeError(f"the engine search chose {name}, which the heuristics did not offer here")
        cand = by_name[name]
        self.trial(cand, self.check())
        if not cand.valid:
            raise RuntimeError(f"the engine search chose {name}, which did not pass here: {cand.reason}")
        return cand

    def versions(self) -> dict[str, str]:
        return {
            "torch": self.torch.__version__,
            "cudnn": str(self.cudnn.backend_version()),
            "cudnn_frontend": str(getattr(self.cudnn, "__version__", "")),
        }


_SEARCHES: OrderedDict[tuple[str, ...], tuple[Candidate, frontend_search.SearchOutcome]] = OrderedDict()


def search_key(job: Job) -> tuple[str, ...]:
    """What a search's choice is for: the op, variant (math mode), shape, dtype and layout."""
    return (job.op, job.variant, repr(job.shape), job.dtype.name, job.layout)


@dataclass(frozen=True, kw_only=True)
class Choice:
    """The candidate a job runs, built in this process, and the search that chose it (`searched_by`: this job's own
    search, or the run job's before it in this process)."""

    candidate: Candidate
    search: frontend_search.SearchOutcome
    searched_by: str

    def fields(self) -> dict[str, Any]:
        """What a benchmark record says about the choice."""
        return {
            "chosen": self.candidate.name,
            "candidates": self.search.candidates,
            "heuristic_modes": self.search.modes,
            "search": {
                "by": self.searched_by,
                "seconds": self.search.seconds,
                "finished": self.search.finished,
                "deadline_s": SEARCH_DEADLINE_S,
            },
            "workspace_bytes": self.candidate.workspace_bytes,
        }


def choose(session: Session, searched_by: str, reuse: bool = False) -> Choice:
    """The candidate `session`'s job runs: with `reuse`, the choice of the same point's run job in this process where
    one is kept; else the engine search's, run in a child process under SEARCH_DEADLINE_S
    (frontend_search.search_in_child) and rebuilt and checked here."""
    kept = _SEARCHES.pop(search_key(session.job), None) if reuse else None
    if kept is not None:
        return Choice(candidate=kept[0], search=kept[1], searched_by="run job")
    with phases.span("engine_search"):  # the child's start (PyTorch, CUDA, the frontend) included
        search = frontend_search.search_in_child(session.job, SEARCH_DEADLINE_S)
    if search.chosen is None:
        raise RuntimeError(no_valid_candidate(search.modes, search.candidates))
    return Choice(candidate=session.rebuild(search.chosen), search=search, searched_by=searched_by)


def run(job: Job) -> np.ndarray:
    """The output of the fastest verified engine configuration (NaN-poisoned output, buffer set 0); the choice is kept
    for the point's benchmark job."""
    session = Session(job, flush_l2=TRIAL.flush_l2)
    choice = choose(session, "run job")
    _SEARCHES[search_key(job)] = (choice.candidate, choice.search)
    while len(_SEARCHES) > SEARCHES_KEPT:
        _SEARCHES.popitem(last=False)
    out = session.fresh(choice.candidate, 0, session.workspace(choice.candidate.workspace_bytes))
    return to_layout(out, job.layout)


def benchmark(job: Job, settings: BenchSettings) -> dict[str, Any]:
    """Time the fastest verified engine configuration (the run job's choice where this process kept it) with the
    job's settings; check the timed outputs."""
    session = Session(job, flush_l2=settings.flush_l2)
    choice = choose(session, "benchmark job", reuse=True)
    chosen = choice.candidate
    workspace = session.workspace(chosen.workspace_bytes)
    timing = time_graph(
        lambda i: session.launch(chosen, i, workspace), session.copies, settings, noun="convolutions",
        poison_outputs=True, eager_fallback=True,
    )  # fmt: skip
    return {
        **verified_timing(timing, lambda i: session.fresh(chosen, i, workspace), job.dtype.name),
        "device": session.props.name,
        **session.versions(),
        **choice.fields(),
    }
