"""GPU tests of the triton backend (our Triton implicit-GEMM conv2d: every tile configuration of config.yaml and the
autotune variant) and the inductor backend (torch.compile max-autotune), in f16, bf16 and f32 (TF32), verified
against the float64 reference with the workflow's verdict (norm-wise tolerance and the element-wise rounding bound)
on edge shapes: C = 3, odd C and K (37, 70), 1x1 stride 2, 7x7 stride 2 pad 3, dilation 2, asymmetric stride, and
shapes whose C takes the kernel's `tap` walk. Also: the timed outputs' consistency, the autotune choice shared by the
run and the benchmark job, the Triton cache under compiled/, what the compiled kernel is made of on Hopper (wgmma,
TMA), and Inductor recording its choice.

Marked `gpu`; skipped cleanly where no NVIDIA GPU (or PyTorch, Triton) is present. Run them on the GPU machine:
`python -m pytest -m gpu tests/test_gpu_triton.py`.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.inductor import VARIANTS as INDUCTOR_VARIANTS
from opbench.backends.inductor import torch_missing
from opbench.backends.triton_conv import gemm
from opbench.backends.triton_variants import triton_missing
from opbench.config import load
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.matrix import make_problem
from opbench.ops import get_op
from opbench.verify import Verdict

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
]
needs_triton = pytest.mark.skipif(triton_missing() is not None, reason=str(triton_missing()))
needs_torch = pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing()))

OP = get_op("conv2d")
LAYOUT = "nhwc_fhwc"
# Which reduction walk each layer takes with BLOCK_K = 32 is in the comment (tap: C % BLOCK_K == 0).
EDGE_LAYERS = {
    "c3_odd": {"h": 13, "w": 11, "c": 3, "k": 5, "r": 3, "s": 3, "stride": 1, "pad": 1},  # flat; TMA refused (row)
    "c37_k70_s2": {"h": 15, "w": 9, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 2, "pad": 1},  # flat
    "pw_s2": {"h": 14, "w": 14, "c": 64, "k": 96, "r": 1, "s": 1, "stride": 2, "pad": 0},  # tap
    "stem_7x7": {"h": 30, "w": 26, "c": 3, "k": 64, "r": 7, "s": 7, "stride": 2, "pad": 3},  # flat
    "dil2": {"h": 12, "w": 17, "c": 32, "k": 40, "r": 3, "s": 3, "stride": 1, "pad": 2, "dilation": 2},  # tap
    "asym": {"h": 12, "w": 17, "c": 16, "k": 24, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1]},  # flat
    "c128_k136": {"h": 9, "w": 10, "c": 128, "k": 136, "r": 3, "s": 3, "stride": 1, "pad": 1},  # tap, K past tiles
}
BATCH = 3
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
TOLERANCES = {"f32": 1e-4, "tf32": 2e-3, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
DTYPES = ("f16", "bf16", "f32")
CONFIG = load()
TRITON_SETTINGS = CONFIG["backends"]["triton"]
TRITON_VARIANTS = list(TRITON_SETTINGS["variants"])  # every tile configuration and autotune


def make_job(backend: str, variant: str, layer: str, dtype: str, batch: int = BATCH) -> Job:
    shape = OP.shape_from_layer(EDGE_LAYERS[layer], batch)
    the_dtype = get_dtype(dtype)
    seed = zlib.crc32(f"{layer}{dtype}{batch}".encode())  # every backend and variant sees the same inputs
    problem = make_problem(op=OP.name, shape=shape.name, dtype=dtype, layout=LAYOUT)
    settings = CONFIG["backends"][backend] if backend == "triton" else {}
    options = get_backend(backend).job_options(settings, variant, problem) if settings else {}
    return Job(
        op=OP.name, shape=shape, dtype=the_dtype, layout=LAYOUT, variant=variant,
        inputs=OP.make_inputs(shape, the_dtype, LAYOUT, seed), artifact=None, options=options,
    )  # fmt: skip


def verdict(backend: str, job: Job, output: np.ndarray) -> Verdict:
    """The workflow's verdict: the norm-wise tolerance and every element within its rounding bound."""
    key = get_backend(backend).tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in its own working directory: its compiled/ (Triton's cache, the autotune choices) is its own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- triton: correctness


@needs_triton
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", TRITON_VARIANTS)
def test_triton_verifies_on_edge_shapes(variant: str, dtype: str, layer: str) -> None:
    job = make_job("triton", variant, layer, dtype)
    output = get_backend("triton").run(job)
    assert output.shape == OP.output_shape(job.shape, LAYOUT)
    result = verdict("triton", job, output)
    assert result.status == "PASS", result.reason


@needs_triton
def test_the_edge_shapes_take_both_walks() -> None:
    walks = {layer: gemm.reduction_walk(spec["c"], 32) for layer, spec in EDGE_LAYERS.items()}
    assert set(walks.values()) == {"tap", "flat"}


@needs_triton
def test_a_wrong_output_fails() -> None:
    job = make_job("triton", "m128_n64_k32_w4_s4", "c128_k136", "f16")
    output = get_backend("triton").run(job)
    assert verdict("triton", job, output).status == "PASS"
    wrong = output.copy()
    wrong.flat[wrong.size // 2] += 0.05 * float(np.sqrt(np.mean(np.square(output))))
    assert verdict("triton", job, wrong).status == "FAIL"


# ---------------------------------------------------------------- triton: benchmark, autotune, cache, kernel facts


@needs_triton
@pytest.mark.parametrize("variant", TRITON_VARIANTS)
def test_triton_benchmark_is_consistent_and_records_versions_and_facts(variant: str) -> None:
    import torch
    import triton

    job = make_job("triton", variant, "c128_k136", "f16")
    result = get_backend("triton").benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert "CUDA-graph" in result["method"] and f"Triton {triton.__version__}" in result["method"]
    assert result["triton"] == triton.__version__ and result["torch"] == torch.__version__
    detail = result["detail"]
    assert detail["triton"] == triton.__version__ and detail["reduction_walk"] == "tap"
    assert result["chosen"] == detail["config_name"]
    facts = detail["kernel"]
    for key in ("wgmma", "mma_sync", "tma_load", "cp_async", "smem_buffers", "num_warps", "num_stages", "sass"):
        assert key in facts, key
    assert facts["wgmma"] or facts["mma_sync"]  # the dot became a tensor-core MMA
    if variant != "autotune":
        assert facts["num_warps"] == TRITON_SETTINGS["variants"][variant]["num_warps"]


@needs_triton
def test_autotune_times_every_candidate_and_run_and_benchmark_agree(in_tmp: Path) -> None:
    backend = get_backend("triton")
    job = make_job("triton", "autotune", "dil2", "bf16")
    result = backend.benchmark(job, SETTINGS)
    auto = result["detail"]["autotune"]
    names = {c["name"] for c in auto["candidates"]}
    assert names == set(TRITON_SETTINGS["variants"]["autotune"]["autotune"])
    assert auto["chosen"] == result["chosen"] and auto["source"] == "searched"
    timed = [c for c in auto["candidates"] if c["ms"] is not None]
    assert min(timed, key=lambda c: c["ms"])["name"] == auto["chosen"]
    stored = list((in_tmp / "compiled" / "triton" / "autotune" / "bf16").glob(f"{job.shape.name}-*.json"))
    assert len(stored) == 1
    again = backend.benchmark(job, SETTINGS)  # the run job, or a rerun, finds the same choice
    assert again["detail"]["autotune"]["source"].startswith("stored") and again["chosen"] == result["chosen"]


@needs_triton
def test_tritons_cache_is_under_compiled(in_tmp: Path) -> None:
    """A configuration no other test compiles (group_m 3: a new constant), so this process compiles it here."""
    import os

    job = make_job("triton", "m128_n64_k32_w4_s4", "c3_odd", "f16")
    probe = {**TRITON_SETTINGS["variants"]["m128_n64_k32_w4_s4"], "group_m": 3}
    job = dataclasses.replace(job, options={"configs": json.dumps({"cache_probe": probe}), "autotune": "0"})
    assert verdict("triton", job, get_backend("triton").run(job)).status == "PASS"
    cache = (in_tmp / "compiled" / "triton" / "triton-cache").resolve()
    assert os.environ["TRITON_CACHE_DIR"] == str(cache)
    assert any(cache.rglob("*.cubin")), sorted(str(p) for p in cache.rglob("*"))[:20]


def hopper_with_descriptors() -> bool:
    import torch
    import triton

    return (
        torch.cuda.get_device_capability() >= (9, 0) and gemm.version_tuple(triton.__version__) >= gemm.TMA_MIN_TRITON
    )


@needs_triton
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_on_hopper_the_filter_comes_through_tma_and_the_dot_is_wgmma(dtype: str) -> None:
    """What docs/triton.md plans to read from the generated code, asserted where it must hold: sm_90+, Triton >= 3.4,
    a 16-bit tap-walk layer (aligned filter rows), four warps. A failure here is a finding about the generated code
    (detail.kernel says what was found), not a wrong result."""
    if not hopper_with_descriptors():
        pytest.skip("needs sm_90+ and Triton >= 3.4 (host-side tensor descriptors)")
    result = get_backend("triton").benchmark(make_job("triton", "m128_n128_k64_w4_s3", "c128_k136", dtype), SETTINGS)
    detail = result["detail"]
    assert detail["tma"] is True, detail["tma_reason"]
    facts = detail["kernel"]
    assert facts["tma_load"], facts
    assert facts["wgmma"], facts
    assert facts["smem_buffers"] and max(facts["smem_buffers"]) >= 2, facts  # pipelined


@needs_triton
def test_tma_is_refused_for_unaligned_filter_rows_and_the_row_says_why() -> None:
    result = get_backend("triton").benchmark(make_job("triton", "m128_n64_k32_w4_s4", "c3_odd", "f16"), SETTINGS)
    detail = result["detail"]
    assert detail["tma"] is False and detail["tma_reason"]
    assert "filter by pointer loads" in result["method"]


# ---------------------------------------------------------------- inductor


@needs_torch
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", list(INDUCTOR_VARIANTS))
def test_inductor_verifies_on_edge_shapes(variant: str, dtype: str, layer: str) -> None:
    job = make_job("inductor", variant, layer, dtype)
    result = verdict("inductor", job, get_backend("inductor").run(job))
    assert result.status == "PASS", result.reason


KNOWN_CHOICES = {"triton_template", "aten_convolution", "aten_conv1x1_via_mm"}


@needs_torch
@pytest.mark.parametrize("variant", list(INDUCTOR_VARIANTS))
@pytest.mark.parametrize("layer", ["c128_k136", "pw_s2"])
def test_inductor_records_its_choice(variant: str, layer: str) -> None:
    result = get_backend("inductor").benchmark(make_job("inductor", variant, layer, "f16"), SETTINGS)
    detail: dict[str, Any] = result["detail"]
    assert result["bench_output_consistent"] is True and "CUDA-graph" in result["method"]
    assert result["chosen"] == detail["chosen"] and result["chosen"] in KNOWN_CHOICES, detail
    assert result["chosen"] in result["method"] and detail["mode"] == "max-autotune-no-cudagraphs"
    if result["chosen"] == "triton_template":
        assert detail["template_kernels"]
    else:
        assert detail["extern_calls"]
    assert detail["code_file"] and Path(detail["code_file"]).is_file()
    if variant == "triton_template":
        assert result["chosen"] == "triton_template", detail  # the template alone was offered
