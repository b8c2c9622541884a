"""GPU tests of our FlashAttention-2-style CUDA kernel (cuda/variants/attention_fa2.cu, the cuda backend's attention
variant): verified against the float64 reference with the workflow's verdict (the norm-wise tolerance and the
element-wise bound with its term for P rounded to the element type, as tests/test_gpu_attention.py judges the SDPA
rows) on edge shapes: S = 1, 17, 100, 127, 129, 257 and 1024 (one key, partial query and key tiles on both sides of
the 64- and 128-row tiles, several full ones), D = 64 and 128 (the two compiled head dims, two tile configurations),
causal and not, B x H = 3, f16 and bf16, each as a process of its own and through one serving process. The benchmark's
timed outputs match a fresh run. The issue's negative tests: the kernel built with a bug injected (test-only -D
macros of the variant file) FAILs the verdict: -DOPBENCH_FAULT_DROP_CAUSAL (no causal mask on the diagonal tiles) and
-DOPBENCH_FAULT_DROP_TAIL (the last partial key tile dropped). A head dim the kernel does not compile is an error
naming the variant.

Marked `gpu`; skipped cleanly where no NVIDIA GPU or no nvcc is present. Run on the GPU machine:
`python -m pytest -m gpu tests/test_gpu_attention_cuda.py`.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.cuda import build, variant_archs
from opbench.backends.harness_process import HarnessError
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.ops import get_op
from opbench.verify import Verdict

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH"),
]

OP = get_op("attention")
CUDA = get_backend("cuda")
VARIANT = "attention_fa2"
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
# The binaries built for the tests: the variant, and the variant with one bug injected (test-only macros).
FAULTS = {"correct": [], "drop_causal": ["-DOPBENCH_FAULT_DROP_CAUSAL"], "drop_tail": ["-DOPBENCH_FAULT_DROP_TAIL"]}
SEQUENCES = (1, 17, 100, 127, 129, 257, 1024)


@pytest.fixture(scope="module")
def fa2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{fault: binary}: attention_fa2 built for its archs (as the workflow builds it, -O3), with each injected bug."""
    out = tmp_path_factory.mktemp("attention_fa2")
    archs = variant_archs(VARIANT, ["sm_90", "sm_80"])
    binaries = {}
    for fault, defines in FAULTS.items():
        binaries[fault] = out / f"conv2d_{VARIANT}_{fault}"
        build(variant=VARIANT, archs=archs, flags=["-O3", *defines], out=binaries[fault])
    return binaries


def make_job(shape: str, dtype: str, artifact: Path, *, causal: bool) -> Job:
    the_shape = OP.shape_from_name(shape + ("_causal" if causal else ""))
    seed = zlib.crc32(f"{shape}{dtype}".encode())  # a problem and its causal twin share inputs
    the_dtype = get_dtype(dtype)
    return Job(
        op=OP.name, shape=the_shape, dtype=the_dtype, layout="bhsd", variant=VARIANT,
        inputs=OP.make_inputs(the_shape, the_dtype, "bhsd", seed), artifact=artifact, options={},
    )  # fmt: skip


def verdict(job: Job, output: np.ndarray) -> Verdict:
    """The workflow's verdict (as tests/test_gpu_attention.py computes it for the SDPA rows)."""
    key = CUDA.tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


def edge_shape(s: int, d: int) -> str:
    """B x H = 3 either way round (the grid's batch*head index and the head offsets)."""
    return f"b3_h1_s{s}_d{d}" if s in (17, 129) else f"b1_h3_s{s}_d{d}"


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("s", SEQUENCES)
def test_attention_fa2_verifies_on_edge_shapes(
    harness_mode: str, fa2: dict[str, Path], s: int, d: int, causal: bool, dtype: str
) -> None:
    job = make_job(edge_shape(s, d), dtype, fa2["correct"], causal=causal)
    output = CUDA.run(job)
    assert output.shape == OP.output_shape(job.shape, "bhsd")
    result = verdict(job, output)
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("d", [64, 128])
def test_attention_fa2_benchmark_is_consistent(fa2: dict[str, Path], d: int) -> None:
    job = make_job(f"b2_h1_s257_d{d}", "f16", fa2["correct"], causal=True)
    result = CUDA.benchmark(job, SETTINGS)
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["problem"] == {"op": "attention", "b": 2, "heads": 1, "s": 257, "d": d, "causal": True,
                                 "dtype": "f16"}  # fmt: skip
    detail = result["detail"]
    assert detail["head_dim"] == d and detail["fault"] == "none" and detail["block_keys"] == 64
    assert detail["block_queries"] == (128 if d == 64 else 64)


@pytest.mark.parametrize("d", [64, 128])
def test_a_dropped_causal_mask_fails(fa2: dict[str, Path], d: int) -> None:
    """The kernel built without its causal mask (-DOPBENCH_FAULT_DROP_CAUSAL) on a causal problem: FAIL."""
    shape = f"b1_h3_s100_d{d}"
    correct = make_job(shape, "f16", fa2["correct"], causal=True)  # pytest's assert rewriting breaks a walrus
    assert verdict(correct, CUDA.run(correct)).status == "PASS"
    faulty = make_job(shape, "f16", fa2["drop_causal"], causal=True)
    result = verdict(faulty, CUDA.run(faulty))
    assert result.status == "FAIL", result


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", ["b1_h3_s100_d64", "b3_h1_s129_d128"])
def test_a_dropped_last_partial_tile_fails(fa2: dict[str, Path], shape: str, causal: bool) -> None:
    """The kernel built to skip the last partial key tile (-DOPBENCH_FAULT_DROP_TAIL): FAIL."""
    correct = make_job(shape, "f16", fa2["correct"], causal=causal)  # pytest's assert rewriting breaks a walrus
    assert verdict(correct, CUDA.run(correct)).status == "PASS"
    faulty = make_job(shape, "f16", fa2["drop_tail"], causal=causal)
    result = verdict(faulty, CUDA.run(faulty))
    assert result.status == "FAIL", result


def test_a_head_dim_it_does_not_compile_is_an_error_naming_the_variant(fa2: dict[str, Path]) -> None:
    job = make_job("b1_h1_s64_d80", "f16", fa2["correct"], causal=False)
    with pytest.raises(HarnessError, match=r"attention_fa2 compiles head dims 64 and 128 only, not --d 80"):
        CUDA.run(job)
