"""GPU tests: every CUDA kernel variant and cuDNN (PyTorch's pick and the cuDNN frontend's), verified on edge shapes
against the float64 reference.

Marked `gpu`; skipped cleanly where no NVIDIA GPU (or nvcc) is present. Run them on the GPU machine:
`python -m pytest -m gpu tests/test_gpu.py`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.cuda import known_variants, variant_info
from opbench.backends.cudnn import frontend_missing, torch_missing
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.ops import get_op
from opbench.verify import judge

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
]

# Edge shapes: C=3, K and C not multiples of any tile, odd H/W, stride 2, pad 0 and 3, 1x1 and 7x7, batch 1, dilation.
EDGE_LAYERS = {
    "c3_odd_7x7_s2_p3": {"h": 31, "w": 29, "c": 3, "k": 17, "r": 7, "s": 7, "stride": 2, "pad": 3},
    "k_c_odd_3x3": {"h": 13, "w": 11, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 1, "pad": 1},
    "pw_1x1_p0": {"h": 9, "w": 9, "c": 130, "k": 66, "r": 1, "s": 1, "stride": 1, "pad": 0},
    "s2_1x1": {"h": 15, "w": 15, "c": 64, "k": 129, "r": 1, "s": 1, "stride": 2, "pad": 0},
    "dil2_asym": {"h": 12, "w": 17, "c": 5, "k": 9, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1], "dilation": 2},
    "deep_7x7_small_out": {"h": 7, "w": 7, "c": 512, "k": 256, "r": 3, "s": 3, "stride": 1, "pad": 1},
}
BATCHES = (1, 3)
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
TOLERANCES = {"f32": 1e-4, "tf32": 2e-3, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
# The conv2d variants (tests/test_gpu_depthwise.py has the depthwise ones) and every (variant, dtype) they declare.
CONV2D_VARIANTS = [variant for variant in known_variants() if variant_info(variant).op == "conv2d"]
VARIANT_DTYPES = [(variant, dtype) for variant in CONV2D_VARIANTS for dtype in variant_info(variant).dtypes]


def _job(
    backend: str, variant: str, layer: dict, batch: int, artifact: Path | None, seed: int, dtype_name: str = "f32",
    layout: str = "nhwc_fhwc",
) -> Job:  # fmt: skip
    op = get_op("conv2d")
    shape = op.shape_from_layer(layer, batch)
    dtype = get_dtype(dtype_name)
    return Job(
        op="conv2d", shape=shape, dtype=dtype, layout=layout, variant=variant,
        inputs=op.make_inputs(shape, dtype, layout, seed), artifact=artifact, options={},
    )  # fmt: skip


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize(("variant", "dtype"), VARIANT_DTYPES)
def test_cuda_variant_verifies_on_edge_shapes(
    harness_mode: str, binaries: dict[str, Path], variant: str, dtype: str, layer: str, batch: int
) -> None:
    seed = zlib.crc32(f"{variant}{dtype}{layer}{batch}".encode())
    job = _job("cuda", variant, EDGE_LAYERS[layer], batch, binaries[variant], seed=seed, dtype_name=dtype)
    output = get_backend("cuda").run(job)
    reference = get_op("conv2d").reference(job.inputs, job.shape, job.layout)
    verdict = judge(output, reference, tolerance=TOLERANCES[get_backend("cuda").tolerance_key(job.dtype, variant)])
    assert verdict.status == "PASS", verdict.reason


@pytest.mark.parametrize("variant", CONV2D_VARIANTS)
def test_cuda_benchmark_reports_device_time(harness_mode: str, binaries: dict[str, Path], variant: str) -> None:
    job = _job("cuda", variant, EDGE_LAYERS["k_c_odd_3x3"], 3, binaries[variant], seed=7)
    result = get_backend("cuda").benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["bench_output_consistent"] is True
    assert result["inner"] >= 1 and "CUDA events" in result["method"]


@pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing()))
@pytest.mark.parametrize(("variant", "dtype"), [("fp32", "f32"), ("tf32", "f32"), ("fp16", "f16"), ("bf16", "bf16")])
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
def test_cudnn_verifies_on_edge_shapes(variant: str, dtype: str, layer: str) -> None:
    job = _job("cudnn", variant, EDGE_LAYERS[layer], 3, None, seed=11, dtype_name=dtype)
    output = get_backend("cudnn").run(job)
    reference = get_op("conv2d").reference(job.inputs, job.shape, job.layout)
    tolerance = TOLERANCES[get_backend("cudnn").tolerance_key(job.dtype, variant)]
    assert judge(output, reference, tolerance).status == "PASS"


@pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing()))
@pytest.mark.parametrize("layout", ["nhwc_fhwc", "nchw_fchw"])
def test_cudnn_benchmark_uses_graph_replay(layout: str) -> None:
    job = _job("cudnn", "fp32", EDGE_LAYERS["k_c_odd_3x3"], 3, None, seed=3, layout=layout)
    result = get_backend("cudnn").benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert "CUDA-graph" in result["method"] and result["torch"] and result["cudnn"]
    # Outputs rotate with the inputs (flush_l2: several buffer sets) and the timed ones equal a fresh run's.
    assert result["buffer_copies"] > 1 and "input and output copies" in result["method"]
    assert result["bench_output_consistent"] is True


FRONTEND_MODES = [
    ("frontend_fp32", "f32"), ("frontend_tf32", "f32"), ("frontend_fp16", "f16"), ("frontend_bf16", "bf16"),
]  # fmt: skip
needs_frontend = pytest.mark.skipif(
    torch_missing() is not None or frontend_missing() is not None, reason=str(torch_missing() or frontend_missing())
)


@needs_frontend
@pytest.mark.parametrize(("variant", "dtype"), FRONTEND_MODES)
@pytest.mark.parametrize(
    ("layer", "layout"),
    [*((layer, "nhwc_fhwc") for layer in sorted(EDGE_LAYERS)), ("c3_odd_7x7_s2_p3", "nchw_fchw"),
     ("dil2_asym", "nchw_fchw"), ("pw_1x1_p0", "nchw_fchw")],
)  # fmt: skip
def test_cudnn_frontend_verifies_on_edge_shapes(variant: str, dtype: str, layer: str, layout: str) -> None:
    """The chosen engine's output (run()) passes the verification at the math mode's tolerance, element-wise bound
    included: an fp32 row that ran on TF32 tensor cores would fail it."""
    job = _job("cudnn", variant, EDGE_LAYERS[layer], 3, None, seed=23, dtype_name=dtype, layout=layout)
    output = get_backend("cudnn").run(job)
    key = get_backend("cudnn").tolerance_key(job.dtype, variant)
    verdict = judge_job(job, output, TOLERANCES[key], key)
    assert verdict.status == "PASS", verdict.reason


@needs_frontend
@pytest.mark.parametrize(("variant", "dtype"), FRONTEND_MODES)
@pytest.mark.parametrize("layout", ["nhwc_fhwc", "nchw_fchw"])
def test_cudnn_frontend_benchmark_times_every_candidate_and_keeps_the_fastest(
    variant: str, dtype: str, layout: str
) -> None:
    job = _job("cudnn", variant, EDGE_LAYERS["k_c_odd_3x3"], 3, None, seed=29, dtype_name=dtype, layout=layout)
    result = get_backend("cudnn").benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert "CUDA-graph replay" in result["method"], result["method"]  # captured, not the eager fallback
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert result["torch"] and result["cudnn"] and result["cudnn_frontend"]
    candidates = result["candidates"]
    names = [c["name"] for c in candidates]
    assert len(names) == len(set(names)) and result["chosen"] in names
    valid = [c for c in candidates if c["valid"]]
    assert valid and all(c["ms"] > 0 and not c["reason"] for c in valid)
    assert all(c["reason"] for c in candidates if not c["valid"])
    chosen = next(c for c in candidates if c["name"] == result["chosen"])
    assert chosen["valid"] and chosen["ms"] == min(c["ms"] for c in valid)
    assert {m for c in candidates for m in c["modes"]} <= set(result["heuristic_modes"]) <= {"A", "B", "FALLBACK"}
    assert "A" in result["heuristic_modes"] and "OPENSOURCE" not in result["heuristic_modes"]
    # searched by this job (no run job before it), in a child process that finished within its deadline
    assert result["search"]["by"] == "benchmark job" and result["search"]["finished"] is True
    assert 0 < result["search"]["seconds"] < result["search"]["deadline_s"]


@needs_frontend
def test_cudnn_frontend_benchmark_times_the_run_jobs_choice() -> None:
    """A run job's choice is kept for the same point's benchmark job in the same process: one search a point."""
    job = _job("cudnn", "frontend_fp16", EDGE_LAYERS["k_c_odd_3x3"], 3, None, seed=31, dtype_name="f16")
    get_backend("cudnn").run(job)
    result = get_backend("cudnn").benchmark(job, SETTINGS)
    assert result["search"]["by"] == "run job" and result["bench_output_consistent"] is True
    again = get_backend("cudnn").benchmark(job, SETTINGS)  # taken once: this one searches
    assert again["search"]["by"] == "benchmark job" and again["chosen"] in [c["name"] for c in again["candidates"]]


def test_deliberately_wrong_kernel_output_fails(binaries: dict[str, Path]) -> None:
    """The harness output judged against a reference of different inputs must FAIL: the check can fail."""
    job = _job("cuda", "naive", EDGE_LAYERS["k_c_odd_3x3"], 1, binaries["naive"], seed=5)
    other = _job("cuda", "naive", EDGE_LAYERS["k_c_odd_3x3"], 1, binaries["naive"], seed=6)
    output = get_backend("cuda").run(job)
    wrong_reference = get_op("conv2d").reference(other.inputs, other.shape, other.layout)
    assert judge(output, wrong_reference, tolerance=1e-4).status == "FAIL"


@pytest.mark.parametrize("layer", ["c3_odd_7x7_s2_p3", "k_c_odd_3x3", "dil2_asym"])
@pytest.mark.parametrize("dtype", ["f16", "f32"])
def test_hopper_wgmma_tuning_candidates_agree(binaries: dict[str, Path], dtype: str, layer: str) -> None:
    """Every candidate the tuner timed, the channel-padded and row-window ones included, matched the first one's output.

    Only the chosen candidate's output is judged against the reference; a wrong alternative would otherwise only be
    rejected with a warning. Odd-C shapes must offer the padded gather path, and 16-bit shapes whose S x C values fit in
    a k-step (C = 3 7x7, C = 5 3x3 with dilation 2 and stride 1x2) the row-window rewrite.
    """
    job = _job("cuda", "hopper_wgmma", EDGE_LAYERS[layer], 3, binaries["hopper_wgmma"], seed=13, dtype_name=dtype)
    detail = get_backend("cuda").benchmark(job, SETTINGS)["detail"]
    candidates = detail["candidates"]
    assert [c for c in candidates if not c["valid"]] == []
    assert any(c["pad_c"] for c in candidates) and any(not c["pad_c"] for c in candidates)
    windows_fit = EDGE_LAYERS[layer]["s"] * EDGE_LAYERS[layer]["c"] <= 64
    assert any(c["windows"] for c in candidates) == (dtype != "f32" and windows_fit)
    assert detail["path"] in ("gather", "gather_padded_c", "tma_row_windows")


@pytest.mark.parametrize("dtype", ["f16", "f32"])
def test_hopper_wgmma_one_warpgroup_candidates_agree(binaries: dict[str, Path], dtype: str) -> None:
    """The 64-row tiles (one consumer warpgroup, one or two blocks per SM) are offered on the TMA path and agree."""
    layer = EDGE_LAYERS["deep_7x7_small_out"]
    job = _job("cuda", "hopper_wgmma", layer, 3, binaries["hopper_wgmma"], seed=19, dtype_name=dtype)
    candidates = get_backend("cuda").benchmark(job, SETTINGS)["detail"]["candidates"]
    assert {(c["bm"], c["blocks_per_sm"]) for c in candidates} >= {(128, 1), (64, 1), (64, 2)}
    assert [c for c in candidates if not c["valid"]] == []


@pytest.mark.parametrize("layer", ["deep_7x7_small_out", "k_c_odd_3x3", "pw_1x1_p0"])
@pytest.mark.parametrize("dtype", ["f16", "f32"])
def test_hopper_wgmma_stream_k_candidates_agree(binaries: dict[str, Path], dtype: str, layer: str) -> None:
    """The stream-K schedule is offered where the tiles leave SMs idle, and its output matches the data-parallel one.

    At batch 3 these shapes have a few tiles and many k-steps, so stream-K cuts every tile between several blocks
    (the 3x3 C=512 one between about sixteen): the partial-tile fixup runs on the TMA path (first shape) and on the
    gather path (the odd-C ones, staged and direct epilogues).
    """
    job = _job("cuda", "hopper_wgmma", EDGE_LAYERS[layer], 3, binaries["hopper_wgmma"], seed=17, dtype_name=dtype)
    candidates = get_backend("cuda").benchmark(job, SETTINGS)["detail"]["candidates"]
    assert any(c["stream_k"] for c in candidates) and any(not c["stream_k"] for c in candidates)
    assert [c for c in candidates if not c["valid"]] == []
