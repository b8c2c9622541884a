"""GPU tests of our CUDA attention kernels (the cuda backend's attention variants): attention_fa2
(cuda/variants/attention_fa2.cu, FlashAttention-2-style on mma.sync) and attention_wgmma
(cuda/variants/attention_wgmma.cu, TMA + wgmma, sm_90a: skipped on other cards), each verified against the float64
reference with the workflow's verdict (the norm-wise tolerance and the element-wise bound with its term for P rounded
to the element type, as tests/test_gpu_attention.py judges the SDPA rows) on edge shapes: S = 1, 17, 100, 127, 129,
257 and 1024 (one key, partial query and key tiles on both sides of the 64- and 128-row tiles, several full ones),
D = 64 and 128 (the two compiled head dims, two tile configurations), causal and not, B x H = 3, f16 and bf16, each
as a process of its own and through one serving process. The benchmark's timed outputs match a fresh run. The
issue's negative tests: each kernel built with a bug injected (test-only -D macros of the variant file) FAILs the
verdict: -DOPBENCH_FAULT_DROP_CAUSAL (no causal mask on the diagonal tiles) and -DOPBENCH_FAULT_DROP_TAIL (the last
partial key tile dropped). A head dim a kernel does not compile is an error naming the variant.

Marked `gpu`; skipped cleanly where no NVIDIA GPU or no nvcc is present. Run on the GPU machine:
`python -m pytest -m gpu tests/test_gpu_attention_cuda.py`.
"""

from __future__ import annotations

import shutil
import subprocess
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
VARIANTS = ("attention_fa2", "attention_wgmma")
# What each variant's benchmark record says of its tiles: (block_keys, {head dim: block_queries}).
TILES = {"attention_fa2": (64, {64: 128, 128: 64}), "attention_wgmma": (128, {64: 128, 128: 128})}
# attention_wgmma's consumer schedules (its tuning candidates, in order).
WGMMA_SCHEDULES = ("lockstep", "pingpong", "overlap", "overlap_pingpong")
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
# The binaries built for the tests: the variant, and the variant with one bug injected (test-only macros).
FAULTS = {"correct": [], "drop_causal": ["-DOPBENCH_FAULT_DROP_CAUSAL"], "drop_tail": ["-DOPBENCH_FAULT_DROP_TAIL"]}
SEQUENCES = (1, 17, 100, 127, 129, 257, 1024)


def compute_capability() -> str:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, check=False
    ).stdout
    return out.strip().splitlines()[0] if out.strip() else ""


@pytest.fixture(scope="module", params=VARIANTS)
def kernel(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Path]]:
    """(variant, {fault: binary}): the variant built for its archs (as the workflow builds it, -O3), with each
    injected bug. The sm_90a variant is skipped on a card that is not compute capability 9.x."""
    variant = request.param
    archs = variant_archs(variant, ["sm_90", "sm_80"])
    if archs == ["sm_90a"] and not compute_capability().startswith("9."):
        pytest.skip(f"{variant} is sm_90a code; this GPU is compute capability {compute_capability()}")
    out = tmp_path_factory.mktemp(variant)
    binaries = {}
    for fault, defines in FAULTS.items():
        binaries[fault] = out / f"conv2d_{variant}_{fault}"
        build(variant=variant, archs=archs, flags=["-O3", *defines], out=binaries[fault])
    return variant, binaries


def make_job(variant: str, shape: str, dtype: str, artifact: Path, *, causal: bool) -> Job:
    the_shape = OP.shape_from_name(shape + ("_causal" if causal else ""))
    seed = zlib.crc32(f"{shape}{dtype}".encode())  # a problem and its causal twin share inputs
    the_dtype = get_dtype(dtype)
    return Job(
        op=OP.name, shape=the_shape, dtype=the_dtype, layout="bhsd", variant=variant,
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
def test_the_kernel_verifies_on_edge_shapes(
    harness_mode: str, kernel: tuple[str, dict[str, Path]], s: int, d: int, causal: bool, dtype: str
) -> None:
    variant, binaries = kernel
    job = make_job(variant, edge_shape(s, d), dtype, binaries["correct"], causal=causal)
    output = CUDA.run(job)
    assert output.shape == OP.output_shape(job.shape, "bhsd")
    result = verdict(job, output)
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize(("b", "h", "s", "causal"), [(2, 1, 257, True), (1, 2, 1000, False)])
@pytest.mark.parametrize("d", [64, 128])
def test_the_benchmark_is_consistent(
    kernel: tuple[str, dict[str, Path]], d: int, b: int, h: int, s: int, causal: bool
) -> None:
    """Timed outputs equal a fresh run. S = 257 causal: blocks of 1, 2 and 3 key tiles of 128; S = 1000: 8 (six
    unmasked, as attention_wgmma's overlap schedules step through them, then the partial one)."""
    variant, binaries = kernel
    job = make_job(variant, f"b{b}_h{h}_s{s}_d{d}", "f16", binaries["correct"], causal=causal)
    result = CUDA.benchmark(job, SETTINGS)
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["problem"] == {"op": "attention", "b": b, "heads": h, "s": s, "d": d, "causal": causal,
                                 "dtype": "f16"}  # fmt: skip
    detail = result["detail"]
    block_keys, block_queries = TILES[variant]
    assert detail["head_dim"] == d and detail["fault"] == "none" and detail["block_keys"] == block_keys
    assert detail["block_queries"] == block_queries[d]
    if variant == "attention_wgmma":  # schedules of the same arithmetic, timed in variant_prepare: the same bits
        candidates = detail["candidates"]
        assert [c["schedule"] for c in candidates] == list(WGMMA_SCHEDULES), candidates
        assert all(c["valid"] and c["max_rel_diff_vs_first"] == 0 for c in candidates), candidates
        assert detail["schedule"] in WGMMA_SCHEDULES


@pytest.mark.parametrize("d", [64, 128])
def test_a_dropped_causal_mask_fails(kernel: tuple[str, dict[str, Path]], d: int) -> None:
    """The kernel built without its causal mask (-DOPBENCH_FAULT_DROP_CAUSAL) on a causal problem: FAIL."""
    variant, binaries = kernel
    shape = f"b1_h3_s100_d{d}"
    correct = make_job(variant, shape, "f16", binaries["correct"], causal=True)  # assert rewriting breaks a walrus
    assert verdict(correct, CUDA.run(correct)).status == "PASS"
    faulty = make_job(variant, shape, "f16", binaries["drop_causal"], causal=True)
    result = verdict(faulty, CUDA.run(faulty))
    assert result.status == "FAIL", result


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", ["b1_h3_s100_d64", "b3_h1_s129_d128", "b1_h2_s300_d64"])
def test_a_dropped_last_partial_tile_fails(kernel: tuple[str, dict[str, Path]], shape: str, causal: bool) -> None:
    """The kernel built to skip the last partial key tile (-DOPBENCH_FAULT_DROP_TAIL): FAIL (S = 300: a partial
    tile after two full ones of 128 keys, after four of 64)."""
    variant, binaries = kernel
    correct = make_job(variant, shape, "f16", binaries["correct"], causal=causal)  # assert rewriting breaks a walrus
    assert verdict(correct, CUDA.run(correct)).status == "PASS"
    faulty = make_job(variant, shape, "f16", binaries["drop_tail"], causal=causal)
    result = verdict(faulty, CUDA.run(faulty))
    assert result.status == "FAIL", result


def test_a_head_dim_it_does_not_compile_is_an_error_naming_the_variant(kernel: tuple[str, dict[str, Path]]) -> None:
    variant, binaries = kernel
    job = make_job(variant, "b1_h1_s64_d80", "f16", binaries["correct"], causal=False)
    with pytest.raises(HarnessError, match=rf"{variant} compiles head dims 64 and 128 only, not --d 80"):
        CUDA.run(job)
