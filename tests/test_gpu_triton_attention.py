"""GPU tests of the triton-attention backend (our fused FlashAttention-2-style forward kernel in Triton: every tile
configuration of config.yaml and the autotune variant), verified against the float64 reference with the workflow's
verdict (the norm-wise tolerance and the element-wise bound with its term for P rounded to the element type, as
tests/test_gpu_attention.py judges the SDPA rows and tests/test_gpu_attention_cuda.py our CUDA kernel's) on edge
shapes: S = 1, 17, 100, 127, 129, 257 and 1024 (one key; partial query and key blocks on both sides of the 64- and
128-row tiles; several whole ones), D = 64 and 128, causal and not, B x H = 3 (either way round), f16 and bf16,
layouts bhsd and bshd. Also: head dims that are no power of two (the padded, masked head dim); a dropped causal
mask and a perturbed element FAIL; the benchmark's timed outputs match a fresh run and the row records the Triton
and PyTorch versions and what the compiled kernel is made of; the autotune choice is shared by the run and the
benchmark job; Triton's cache is under compiled/.

Marked `gpu`; skipped cleanly where no NVIDIA GPU (or PyTorch, Triton) is present. Run them on the GPU machine:
`python -m pytest -m gpu tests/test_gpu_triton_attention.py`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.triton_attention import NAME, tiles
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
    pytest.mark.skipif(triton_missing() is not None, reason=str(triton_missing())),
]

OP = get_op("attention")
BACKEND = get_backend(NAME)
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
SEQUENCES = (1, 17, 100, 127, 129, 257, 1024)
CONFIG = load()
BACKEND_SETTINGS = CONFIG["backends"][NAME]
VARIANTS = list(BACKEND_SETTINGS["variants"])  # every tile configuration and autotune


def edge_shape(s: int, d: int, causal: bool) -> str:
    """B x H = 3 either way round (the grid's batch and head index, the layouts' batch and head strides)."""
    name = f"b3_h1_s{s}_d{d}" if s in (17, 129) else f"b1_h3_s{s}_d{d}"
    return name + ("_causal" if causal else "")


def make_job(variant: str, shape: str, dtype: str, layout: str, *, seed_shape: str | None = None) -> Job:
    """A job of the workflow's kind: its options from config.yaml's settings. Inputs are seeded by `seed_shape`
    (default: the shape without _causal), so a problem and its causal twin share inputs."""
    the_shape, the_dtype = OP.shape_from_name(shape), get_dtype(dtype)
    seed = zlib.crc32(f"{seed_shape or shape.removesuffix('_causal')}{dtype}{layout}".encode())
    problem = make_problem(op=OP.name, shape=shape, dtype=dtype, layout=layout)
    return Job(
        op=OP.name, shape=the_shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=OP.make_inputs(the_shape, the_dtype, layout, seed), artifact=None,
        options=BACKEND.job_options(BACKEND_SETTINGS, variant, problem),
    )  # fmt: skip


def verdict(job: Job, output: np.ndarray) -> Verdict:
    """The workflow's verdict (as tests/test_gpu_attention.py computes it for the SDPA rows)."""
    key = BACKEND.tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in its own working directory: its compiled/ (Triton's cache, the autotune choices) is its own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- correctness


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("s", SEQUENCES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_verifies_on_edge_shapes(
    variant: str, s: int, d: int, causal: bool, dtype: str, layout: str
) -> None:
    job = make_job(variant, edge_shape(s, d, causal), dtype, layout)
    output = BACKEND.run(job)
    assert output.shape == OP.output_shape(job.shape, layout)
    result = verdict(job, output)
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("d", [16, 40, 80, 96, 256])
def test_head_dims_that_need_padding_or_are_small_or_large(d: int, causal: bool, layout: str) -> None:
    """D = 40, 80, 96 take the padded, masked head dim (BLOCK_D 64 or 128); 16 and 256 the ends of the range. A
    256-wide tile that Triton cannot fit is an error naming the variant (OutOfResources), not a wrong result."""
    job = make_job("m64_n64_w4_s4", f"b1_h2_s129_d{d}" + ("_causal" if causal else ""), "f16", layout)
    assert (tiles.padded_head_dim(d) == d) == (d in (16, 256))
    try:
        output = BACKEND.run(job)
    except RuntimeError as error:
        if d == 256 and "does not fit this card" in str(error):
            pytest.skip(str(error))
        raise
    result = verdict(job, output)
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("d", [64, 128])
def test_a_dropped_causal_mask_fails(d: int, layout: str) -> None:
    """The kernel run without its mask (the non-causal twin, the same inputs) judged against the causal reference:
    the verdict must catch it, and the causal run passes."""
    causal = make_job("m128_n64_w4_s3", f"b1_h3_s100_d{d}_causal", "f16", layout)
    dropped = make_job("m128_n64_w4_s3", f"b1_h3_s100_d{d}", "f16", layout)
    assert np.array_equal(causal.inputs["q"], dropped.inputs["q"])
    assert verdict(causal, BACKEND.run(causal)).status == "PASS"
    result = verdict(causal, BACKEND.run(dropped))
    assert result.status == "FAIL", result


def test_a_wrong_output_fails() -> None:
    job = make_job("m128_n64_w4_s3", "b1_h3_s257_d128_causal", "bf16", "bshd")
    output = BACKEND.run(job)
    assert verdict(job, output).status == "PASS"
    wrong = output.copy()
    wrong.flat[wrong.size // 2] += 0.05 * float(np.sqrt(np.mean(np.square(output))))
    assert verdict(job, wrong).status == "FAIL"


# ---------------------------------------------------------------- benchmark, autotune, cache, kernel facts


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_benchmark_is_consistent_and_records_versions_and_facts(variant: str, layout: str) -> None:
    import torch
    import triton

    job = make_job(variant, "b2_h1_s257_d128_causal", "f16", layout)
    result = BACKEND.benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert "CUDA-graph" in result["method"] and f"Triton {triton.__version__} fused attention" in result["method"]
    assert result["triton"] == triton.__version__ and result["torch"] == torch.__version__
    detail = result["detail"]
    assert detail["triton"] == triton.__version__ and result["chosen"] == detail["config_name"]
    assert detail["strides"] == list(tiles.layout_strides(layout, job.shape)) and detail["block_d"] == 128
    facts = detail["kernel"]
    for key in ("wgmma", "mma_sync", "cp_async", "smem_buffers", "num_warps", "num_stages", "registers", "sass"):
        assert key in facts, key
    assert facts["wgmma"] or facts["mma_sync"]  # the dots became tensor-core MMAs
    if variant != "autotune":
        assert result["chosen"] == variant
        assert facts["num_warps"] == BACKEND_SETTINGS["variants"][variant]["num_warps"]


@pytest.mark.parametrize("d", [64, 128])
def test_on_hopper_the_dots_are_wgmma(d: int) -> None:
    """What docs/triton.md expects of the generated code, asserted where it must hold (sm_90+, four warps and
    more): a failure here is a finding about the generated code (detail.kernel says what was found), not a wrong
    result."""
    import torch

    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("needs sm_90+ (wgmma)")
    result = BACKEND.benchmark(make_job("m128_n64_w4_s3", f"b2_h2_s1024_d{d}", "f16", "bhsd"), SETTINGS)
    facts = result["detail"]["kernel"]
    assert facts["wgmma"], facts


def test_autotune_times_every_candidate_and_run_and_benchmark_agree(in_tmp: Path) -> None:
    job = make_job("autotune", "b1_h3_s1024_d64_causal", "bf16", "bshd")
    result = BACKEND.benchmark(job, SETTINGS)
    auto = result["detail"]["autotune"]
    assert {c["name"] for c in auto["candidates"]} == set(BACKEND_SETTINGS["variants"]["autotune"]["autotune"])
    assert auto["chosen"] == result["chosen"] and auto["source"] == "searched"
    timed = [c for c in auto["candidates"] if c["ms"] is not None]
    assert min(timed, key=lambda c: c["ms"])["name"] == auto["chosen"]
    stored = list((in_tmp / "compiled" / NAME / "autotune" / "bf16" / "bshd").glob(f"{job.shape.name}-*.json"))
    assert len(stored) == 1
    output = BACKEND.run(job)  # the run job finds the same choice and verifies it
    assert verdict(job, output).status == "PASS"
    again = BACKEND.benchmark(job, SETTINGS)
    assert again["detail"]["autotune"]["source"].startswith("stored") and again["chosen"] == result["chosen"]


def test_tritons_cache_is_under_compiled(in_tmp: Path) -> None:
    """A configuration no other test compiles (block 32 x 16, two warps, one stage), so this process compiles it
    here."""
    job = make_job("m64_n64_w4_s4", "b1_h3_s100_d64", "f16", "bhsd")
    probe = {"block_m": 32, "block_n": 16, "num_warps": 2, "num_stages": 1}
    job = dataclasses.replace(job, options={"configs": json.dumps({"cache_probe": probe}), "autotune": "0"})
    assert verdict(job, BACKEND.run(job)).status == "PASS"
    cache = (in_tmp / "compiled" / NAME / "triton-cache").resolve()
    assert os.environ["TRITON_CACHE_DIR"] == str(cache)
    assert any(cache.rglob("*.cubin")), sorted(str(p) for p in cache.rglob("*"))[:20]
