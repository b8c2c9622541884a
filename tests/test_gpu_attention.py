"""GPU tests of the sdpa backend (PyTorch's scaled_dot_product_attention, each SDPA backend forced): every variant in
every dtype it implements, causal and not, both layouts, on edge shapes (S = 100 and 257: no multiple of 64 or 128;
D = 64 and 128; B x H = 2) verified against the float64 reference with the workflow's verdict (the element-wise
bound with the term for P rounded to the element type); a dropped causal mask FAILs; the benchmark's timed outputs
match a fresh run; a head dim flash refuses is an error naming the variant.

Marked `gpu`; skipped cleanly where no NVIDIA GPU or no PyTorch is present. Where the card's cuDNN refuses a shape
for the cudnn variant (its version's limits), that case is skipped with PyTorch's reasons, as the workflow's row
would fail saying so.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, Problem, get_backend
from opbench.backends.sdpa import VARIANTS, SdpaKernelUnavailable, torch_missing
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.ops import get_op
from opbench.verify import Verdict

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
    pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing())),
]

OP = get_op("attention")
SDPA = get_backend("sdpa")
EDGE_SHAPES = ["b1_h2_s100_d64", "b2_h1_s257_d128"]
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
MODES = [(variant, dtype) for variant, spec in VARIANTS.items() for dtype in spec.dtypes]


def make_job(variant: str, shape: str, dtype: str, layout: str, *, causal: bool) -> Job:
    the_shape = OP.shape_from_name(shape + ("_causal" if causal else ""))
    seed = zlib.crc32(f"{shape}{dtype}{layout}".encode())  # a variant and its dropped-mask twin share inputs
    the_dtype = get_dtype(dtype)
    return Job(
        op=OP.name, shape=the_shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=OP.make_inputs(the_shape, the_dtype, layout, seed), artifact=None, options={},
    )  # fmt: skip


def verdict(job: Job, output: np.ndarray) -> Verdict:
    key = SDPA.tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


def run(job: Job) -> np.ndarray:
    """The variant's output; a cudnn case the card's cuDNN refuses is skipped with PyTorch's reasons."""
    try:
        return SDPA.run(job)
    except SdpaKernelUnavailable as error:
        if job.variant == "cudnn":
            pytest.skip(str(error))
        raise


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", EDGE_SHAPES)
@pytest.mark.parametrize(("variant", "dtype"), MODES)
def test_sdpa_verifies_on_edge_shapes(variant: str, dtype: str, shape: str, causal: bool, layout: str) -> None:
    job = make_job(variant, shape, dtype, layout, causal=causal)
    output = run(job)
    assert output.shape == OP.output_shape(job.shape, layout)
    result = verdict(job, output)
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_dropped_causal_mask_fails(variant: str, layout: str) -> None:
    """The variant run without the mask (is_causal False) on a causal problem's inputs, judged against the causal
    reference: the verdict must catch it."""
    causal = make_job(variant, "b1_h2_s100_d64", "f16", layout, causal=True)
    dropped = make_job(variant, "b1_h2_s100_d64", "f16", layout, causal=False)
    assert np.array_equal(causal.inputs["q"], dropped.inputs["q"])
    assert verdict(causal, run(causal)).status == "PASS"
    result = verdict(causal, run(dropped))
    assert result.status == "FAIL", result


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_benchmark_checks_the_timed_outputs(variant: str, layout: str) -> None:
    job = make_job(variant, "b2_h1_s257_d128", "f16", layout, causal=True)
    settings = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
    try:
        result = SDPA.benchmark(job, settings)
    except SdpaKernelUnavailable as error:
        if variant == "cudnn":
            pytest.skip(str(error))
        raise
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert len(result["samples_ms"]) == 3 and min(result["samples_ms"]) > 0
    assert "CUDA-graph replay" in result["method"], result["method"]
    assert result["torch"] and result["cudnn"] and result["sdpa_backend"] == f"SDPBackend.{VARIANTS[variant].backend}"


def test_flash_refuses_a_head_dim_over_256_naming_the_variant() -> None:
    """The limit `unsupported` plans with (such points are SKIP rows) is the one PyTorch enforces at run time."""
    job = make_job("flash", "b1_h1_s64_d512", "f16", "bhsd", causal=False)
    problem = Problem(op=job.op, shape=job.shape, dtype=job.dtype, layout=job.layout)
    assert SDPA.unsupported(problem, "flash") is not None
    with pytest.raises(SdpaKernelUnavailable, match=r"sdpa flash \(SDPBackend\.FLASH_ATTENTION\) cannot run"):
        SDPA.run(job)
