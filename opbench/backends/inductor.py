"""Backend `inductor`: PyTorch's compiler on the same convolution, torch.compile(torch.nn.functional.conv2d) with
mode "max-autotune-no-cudagraphs", channels_last (layout nhwc_fhwc: NHWC input, KRSC filter), f16, bf16 and f32 as
TF32 (its rows judged at the `tf32` tolerance).

Max-autotune lowers the convolution to a set of choices and times them when it compiles: ATen's convolution
(`extern_kernels.convolution`, i.e. cuDNN), for a 1x1 stride-1 layer ATen's matmul (`extern_kernels.conv1x1_via_mm`),
and Inductor's Triton convolution template (a `triton_tem_*` kernel), keeping the fastest. The row records which won:
the generated wrapper code is captured (torch._inductor.utils.run_and_get_code) and read (`generated_choice`), and
`chosen` says `triton_template`, `aten_convolution`, `aten_conv1x1_via_mm` or what else it found; `detail` lists the
kernels and extern calls, and the code is kept under compiled/inductor/code/ for reading.

Variants: `max_autotune` (ATen and Triton compete, Inductor's defaults) and `triton_template`
(max_autotune_conv_backends = "TRITON": the template alone, the Triton kernel Inductor would write, beside ours).

Why "-no-cudagraphs": our timing (opbench.gpu_timing.time_graph) already captures many calls in one CUDA graph and
replays it; Inductor's own CUDA graphs (cudagraph trees, mode "max-autotune") would copy inputs into static buffers
of its own graph and manage its own memory pool inside our capture, so the timed work would no longer be the
convolution alone and the rotating buffer copies would be bypassed. Without them the compiled call launches its
kernels, and our graph captures exactly those (guard checks and Python run at capture time, not in the replays).

Each job compiles afresh (torch._dynamo.reset(), as run_and_get_code does; FX graph cache off so the code is
always generated and seen) but Inductor's autotuning results and compiled Triton kernels are cached on disk under
compiled/inductor/ (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR): compile once, run many. PyTorch is imported when a
job runs, so machines without it import the package (the rows are SKIP: requirement_missing).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from opbench.backends.base import (
    Backend,
    BenchSettings,
    Job,
    Problem,
    named_variants_schema,
    register_backend,
    torch_missing,
)
from opbench.dtypes import DType
from opbench.gpu_timing import buffer_copies, time_graph, to_host, torch_dtype, verified_timing

OP = "conv2d"
LAYOUT = "nhwc_fhwc"
DTYPES = ("f16", "bf16", "f32")
MODE = "max-autotune-no-cudagraphs"
# variant -> Inductor config patched while it compiles
VARIANTS: dict[str, dict[str, Any]] = {
    "max_autotune": {},
    "triton_template": {"max_autotune_conv_backends": "TRITON"},
}
INDUCTOR_CACHE = "compiled/inductor/inductor-cache"
TRITON_CACHE = "compiled/inductor/triton-cache"
CODE_DIR = "compiled/inductor/code"

SETTINGS_SCHEMA = named_variants_schema(
    (
        "torch.compile(conv2d, mode='max-autotune-no-cudagraphs') in channels_last (layout nhwc_fhwc), f16, bf16 and "
        "f32 as TF32. Variants: max_autotune (ATen/cuDNN and Inductor's Triton template compete) and triton_template "
        "(max_autotune_conv_backends=TRITON). Variants take no flags."
    ),
    VARIANTS,
)


def unsupported_reason(problem: Problem) -> str | None:
    if problem.op != OP:
        return f"runs {OP} only, not {problem.op}"
    if problem.layout != LAYOUT:
        return f"compiles the channels_last convolution (layout {LAYOUT}) only, not {problem.layout}"
    if problem.dtype.name not in DTYPES:
        return f"implements {', '.join(DTYPES)} (f32 as TF32), not {problem.dtype.name}"
    return None


def generated_choice(codes: list[str]) -> dict[str, Any]:
    """What Inductor's generated code runs: Triton template kernels (`triton_tem_*`), other Triton kernels
    (pointwise `triton_poi_*`, reductions, e.g. layout copies) and extern calls (`extern_kernels.<name>(`), and the
    `chosen` implementation of the convolution they add up to."""
    text = "\n".join(codes)
    templates = sorted(set(re.findall(r"\b(triton_tem_\w+?)(?:\.run\(|\s*=)", text)))
    others = sorted(set(re.findall(r"\b(triton_(?:poi|red|per)_\w+?)(?:\.run\(|\s*=)", text)))
    extern = sorted(set(re.findall(r"\bextern_kernels\.(\w+)\(", text)))
    if not codes:
        chosen = "unknown (no generated code was captured)"
    elif "convolution" in extern:
        chosen = "aten_convolution"
    elif "conv1x1_via_mm" in extern:
        chosen = "aten_conv1x1_via_mm"
    elif templates:
        chosen = "triton_template"
    elif extern:
        chosen = "aten_" + "+".join(extern)
    else:
        chosen = "unknown (neither a template kernel nor an extern call in the generated code)"
    return {"chosen": chosen, "template_kernels": templates, "other_triton_kernels": others, "extern_calls": extern}


@register_backend
class Inductor(Backend):
    name = "inductor"
    device = "cuda"
    settings_schema: ClassVar[dict[str, Any]] = SETTINGS_SCHEMA
    table_note = (
        "`inductor` rows are torch.compile(conv2d, mode='max-autotune-no-cudagraphs') in channels_last; `chosen` says "
        "whether Inductor kept its Triton template or ATen (cuDNN)."
    )

    def unsupported(self, problem: Problem, variant: str) -> str | None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown inductor variant {variant!r} (known: {', '.join(VARIANTS)})")
        return unsupported_reason(problem)

    def requirement_missing(self) -> str | None:
        return torch_missing()

    def tolerance_key(self, dtype: DType, variant: str) -> str:
        """f32 is compiled with TF32 allowed (cuDNN's and the template's): judged as tf32."""
        return "tf32" if dtype.name == "f32" else dtype.tolerance_key

    def run(self, job: Job) -> np.ndarray:
        compiled = Compiled.setup(job)
        y = compiled.fn(*compiled.sets[0])
        compiled.torch.cuda.synchronize()
        return to_layout(y)

    def benchmark(self, job: Job, settings: BenchSettings) -> dict[str, Any]:
        compiled = Compiled.setup(job)
        torch = compiled.torch
        props = torch.cuda.get_device_properties(0)
        footprint = job.shape.min_bytes(job.dtype.itemsize, job.dtype.output_itemsize)  # X, W and Y once
        copies = buffer_copies(footprint, props.L2_cache_size, settings.flush_l2)
        compiled.rotate(copies)
        sets, fn = compiled.sets, compiled.fn
        launch = lambda i: fn(*sets[i])  # noqa: E731
        timing = time_graph(launch, copies, settings, noun="convolutions", poison_outputs=True)
        timed = verified_timing(timing, launch, job.dtype.name)
        choice = compiled.choice
        triton_version = compiled.triton_version()
        return {
            **timed,
            "method": (
                f"{timing.method}; torch.compile {MODE} ({job.variant}, PyTorch {torch.__version__}, Triton "
                f"{triton_version}) chose {choice['chosen']}"
            ),
            "device": props.name,
            "torch": torch.__version__,
            "cudnn": str(torch.backends.cudnn.version()),
            "triton": triton_version,
            "chosen": choice["chosen"],
            "detail": {
                **choice, "mode": MODE, "config_patch": VARIANTS[job.variant], "code_file": compiled.code_file,
                "torch": torch.__version__, "triton": triton_version,
            },
        }  # fmt: skip


# ---------------------------------------------------------------- the PyTorch side (imported when a job runs)


def to_layout(y: Any) -> np.ndarray:
    """The logical NKPQ output as NPQK (the nhwc_fhwc layout's output order), float32."""
    return np.ascontiguousarray(to_host(y.permute(0, 2, 3, 1)))


def set_cache_dirs() -> None:
    """Inductor's and Triton's caches under compiled/inductor/ (every job: a GPU worker serves other backends too)."""
    for env, path in (("TORCHINDUCTOR_CACHE_DIR", INDUCTOR_CACHE), ("TRITON_CACHE_DIR", TRITON_CACHE)):
        resolved = Path(path).resolve()
        resolved.mkdir(parents=True, exist_ok=True)
        os.environ[env] = str(resolved)


class Compiled:
    """One job's compiled convolution: the device operands (channels_last views of NHWC / KRSC memory, rotating
    copies), the torch.compile'd function after its first (compiling) call, and what Inductor chose."""

    def __init__(self, job: Job, torch: Any, fn: Callable[..., Any], sets: list[tuple[Any, Any]]) -> None:
        self.job, self.torch, self.fn, self.sets = job, torch, fn, sets
        self.choice: dict[str, Any] = {}
        self.code_file: str | None = None

    @classmethod
    def setup(cls, job: Job) -> Compiled:
        set_cache_dirs()
        import torch
        import torch._inductor.config as inductor_config
        from torch._inductor.utils import run_and_get_code

        tf32 = job.dtype.name == "f32"
        torch.backends.cudnn.enabled = True  # set by every job: a worker serves many
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        dtype = torch_dtype(torch, job.dtype.name)
        x = torch.from_numpy(job.inputs["input"]).permute(0, 3, 1, 2)  # NHWC memory as logical NCHW
        w = torch.from_numpy(job.inputs["filter"]).permute(0, 3, 1, 2)  # KRSC memory as logical KCRS

        def to_device(t: Any) -> Any:
            empty = torch.empty(tuple(t.shape), dtype=dtype, device="cuda", memory_format=torch.channels_last)
            return empty.copy_(t)

        shape = job.shape
        window = {"stride": shape.stride, "padding": shape.pad, "dilation": shape.dilation}

        def conv(x: Any, w: Any) -> Any:
            return torch.nn.functional.conv2d(x, w, **window)

        fn = torch.compile(conv, mode=MODE, dynamic=False, fullgraph=True)
        compiled = cls(job, torch, fn, [(to_device(x), to_device(w))])
        patch = {"fx_graph_cache": False, **VARIANTS[job.variant]}
        with inductor_config.patch(patch):
            _, codes = run_and_get_code(fn, *compiled.sets[0])  # resets dynamo, compiles, runs once
        torch.cuda.synchronize()
        compiled.choice = generated_choice(codes)
        compiled.code_file = compiled.keep_code(codes)
        return compiled

    def rotate(self, copies: int) -> None:
        """Buffer sets 1 .. copies-1: clones of set 0 (clone keeps the channels_last strides the guards expect)."""
        x, w = self.sets[0]
        self.sets = [(x, w)] + [(x.clone(), w.clone()) for _ in range(copies - 1)]

    def keep_code(self, codes: list[str]) -> str | None:
        """The generated code, under compiled/inductor/code/ (named by the point and the code's hash)."""
        if not codes:
            return None
        text = "\n\n# ---- next generated module\n\n".join(codes)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        job = self.job
        path = Path(CODE_DIR) / job.variant / job.dtype.name / f"{job.shape.name}-{digest}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    @staticmethod
    def triton_version() -> str | None:
        try:
            import triton
        except ImportError:
            return None
        return str(triton.__version__)


__all__ = ["MODE", "VARIANTS", "Inductor", "generated_choice", "torch_missing", "unsupported_reason"]
