"""GPU tests of depthwise_conv2d: our CUDA depthwise variants, cuDNN (PyTorch's pick and the frontend's engines) and
PyTorch's own depthwise kernel, verified on edge shapes against the float64 reference, element-wise bound included.

Marked `gpu`; skipped cleanly where no NVIDIA GPU (or nvcc, PyTorch, the cuDNN frontend) is present. Run them on the
GPU machine: `python -m pytest -m gpu tests/test_gpu_depthwise.py`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.cuda import known_variants, variant_info
from opbench.backends.cudnn import frontend_missing, torch_missing
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.ops import get_op
from opbench.verify import Verdict

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
]

OP = get_op("depthwise_conv2d")
# Edge shapes: which of depthwise_smem's paths each takes is in the comment (3x3/5x5 with stride 1 or 2 compiled
# with constant sizes where C is a multiple of its channels per thread, else the runtime-size path).
EDGE_LAYERS = {
    "c3_odd_3x3": {"h": 13, "w": 11, "c": 3, "r": 3, "s": 3, "stride": 1, "pad": 1},  # runtime (C = 3)
    "c96_3x3": {"h": 14, "w": 14, "c": 96, "r": 3, "s": 3, "stride": 1, "pad": 1},  # 3x3 stride 1
    "c36_3x3_s2_odd": {"h": 15, "w": 9, "c": 36, "r": 3, "s": 3, "stride": 2, "pad": 1},  # 3x3 stride 2
    "c37_3x3_s2": {"h": 15, "w": 9, "c": 37, "r": 3, "s": 3, "stride": 2, "pad": 1},  # runtime (C odd)
    "c64_5x5": {"h": 9, "w": 9, "c": 64, "r": 5, "s": 5, "stride": 1, "pad": 2},  # 5x5 stride 1
    "c20_5x5_s2": {"h": 17, "w": 15, "c": 20, "r": 5, "s": 5, "stride": 2, "pad": 2},  # 5x5 stride 2
    "c130_7x7_p0": {"h": 10, "w": 10, "c": 130, "r": 7, "s": 7, "stride": 1, "pad": 0},  # runtime (7x7)
    "dil2_asym": {"h": 12, "w": 17, "c": 8, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1], "dilation": 2},
    "wide_c12": {"h": 5, "w": 70, "c": 12, "r": 3, "s": 3, "stride": 1, "pad": 1},  # several column tiles
    "c600_7x7_in": {"h": 7, "w": 7, "c": 600, "r": 3, "s": 3, "stride": 1, "pad": 1},  # several channel tiles
    "c40_3x3_s2_odd": {"h": 13, "w": 11, "c": 40, "r": 3, "s": 3, "stride": 2, "pad": 1},  # 3x3 s2, 8-channel vectors
}
BATCHES = (1, 3)
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
TOLERANCES = {"f32": 1e-4, "tf32": 2e-3, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
DEPTHWISE_VARIANTS = [v for v in known_variants() if variant_info(v).op == "depthwise_conv2d"]
VARIANT_DTYPES = [(variant, dtype) for variant in DEPTHWISE_VARIANTS for dtype in variant_info(variant).dtypes]


def make_job(variant: str, layer: str, batch: int, artifact: Path | None, dtype: str, layout: str = "nhwc_hwc") -> Job:
    shape = OP.shape_from_layer(EDGE_LAYERS[layer], batch)
    the_dtype = get_dtype(dtype)
    seed = zlib.crc32(f"{variant}{dtype}{layer}{batch}{layout}".encode())
    return Job(
        op=OP.name, shape=shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=OP.make_inputs(shape, the_dtype, layout, seed), artifact=artifact, options={},
    )  # fmt: skip


def verdict(backend: str, job: Job, output: np.ndarray) -> Verdict:
    """The workflow's verdict: the norm-wise tolerance and every element within its rounding bound."""
    key = get_backend(backend).tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


def test_there_are_depthwise_variants() -> None:
    assert {"depthwise_naive", "depthwise_smem", "depthwise_async", "depthwise_stream", "depthwise_direct"} <= set(
        DEPTHWISE_VARIANTS
    )


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize(("variant", "dtype"), VARIANT_DTYPES)
def test_cuda_depthwise_verifies_on_edge_shapes(
    harness_mode: str, binaries: dict[str, Path], variant: str, dtype: str, layer: str, batch: int
) -> None:
    job = make_job(variant, layer, batch, binaries[variant], dtype)
    result = verdict("cuda", job, get_backend("cuda").run(job))
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("layer", ["c96_3x3", "c37_3x3_s2", "c20_5x5_s2"])
@pytest.mark.parametrize("variant", DEPTHWISE_VARIANTS)
def test_cuda_depthwise_benchmark_is_consistent(binaries: dict[str, Path], variant: str, layer: str) -> None:
    job = make_job(variant, layer, 3, binaries[variant], "f16")
    result = get_backend("cuda").benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["bench_output_consistent"] is True and result["problem"]["op"] == "depthwise_conv2d"


@pytest.mark.parametrize("variant", ["depthwise_smem", "depthwise_async", "depthwise_stream"])
def test_the_tiled_depthwise_variants_take_the_constant_size_paths(binaries: dict[str, Path], variant: str) -> None:
    """The shapes the comments above name take the paths they name (so the edge tests cover every path)."""
    paths = {}
    for layer in ("c96_3x3", "c36_3x3_s2_odd", "c64_5x5", "c20_5x5_s2", "c37_3x3_s2"):
        job = make_job(variant, layer, 1, binaries[variant], "f32")
        paths[layer] = get_backend("cuda").benchmark(job, SETTINGS)["detail"]["path"]
    assert paths == {
        "c96_3x3": "3x3 stride 1", "c36_3x3_s2_odd": "3x3 stride 2", "c64_5x5": "5x5 stride 1",
        "c20_5x5_s2": "5x5 stride 2", "c37_3x3_s2": "runtime sizes, 1 channel per thread",
    }  # fmt: skip


def test_depthwise_direct_takes_its_path_where_c_holds_whole_16_byte_vectors(binaries: dict[str, Path]) -> None:
    """depthwise_direct runs its own kernel on 3x3 layers whose C is a multiple of its vector (8 channels in 16 bits,
    4 in f32) and depthwise_async's elsewhere, so the edge tests above cover both, at both strides."""
    found = {}
    for layer, dtype in (("c96_3x3", "f16"), ("c40_3x3_s2_odd", "bf16"), ("c36_3x3_s2_odd", "f16"),
                         ("c36_3x3_s2_odd", "f32"), ("c64_5x5", "f16")):  # fmt: skip
        detail = get_backend("cuda").benchmark(make_job("depthwise_direct", layer, 1, binaries["depthwise_direct"],
                                                        dtype), SETTINGS)["detail"]  # fmt: skip
        found[layer, dtype] = (detail["path"], detail["channels_per_thread"], detail["tile_load"].split(":")[0])
    assert found == {
        ("c96_3x3", "f16"): ("3x3 stride 1", 8, "none"),
        ("c40_3x3_s2_odd", "bf16"): ("3x3 stride 2", 8, "none"),
        ("c36_3x3_s2_odd", "f16"): ("3x3 stride 2", 4, "depthwise_async's kernel"),  # 36 = 4 x 8 + 4
        ("c36_3x3_s2_odd", "f32"): ("3x3 stride 2", 4, "none"),
        ("c64_5x5", "f16"): ("5x5 stride 1", 2, "depthwise_async's kernel"),
    }


def test_a_wrong_depthwise_output_fails(binaries: dict[str, Path]) -> None:
    """One output element moved by a small fraction of the output's RMS FAILs: the element-wise check can fail."""
    job = make_job("depthwise_smem", "c96_3x3", 3, binaries["depthwise_smem"], "f16")
    output = get_backend("cuda").run(job)
    assert verdict("cuda", job, output).status == "PASS"
    wrong = output.copy()
    wrong.flat[wrong.size // 2] += 0.05 * float(np.sqrt(np.mean(np.square(output))))
    assert verdict("cuda", job, wrong).status == "FAIL"


needs_torch = pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing()))
PYTORCH_MODES = [("fp32", "f32"), ("tf32", "f32"), ("fp16", "f16"), ("bf16", "bf16")]
NATIVE_MODES = [("native_fp32", "f32"), ("native_fp16", "f16"), ("native_bf16", "bf16")]


@needs_torch
@pytest.mark.parametrize("layout", ["nhwc_hwc", "nchw_chw"])
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize(("variant", "dtype"), PYTORCH_MODES + NATIVE_MODES)
def test_pytorch_depthwise_verifies_on_edge_shapes(variant: str, dtype: str, layer: str, layout: str) -> None:
    job = make_job(variant, layer, 3, None, dtype, layout)
    result = verdict("cudnn", job, get_backend("cudnn").run(job))
    assert result.status == "PASS", result.reason


@needs_torch
@pytest.mark.parametrize("variant", ["fp16", "native_fp16"])
def test_pytorch_depthwise_benchmark_checks_the_timed_outputs(variant: str) -> None:
    job = make_job(variant, "c96_3x3", 3, None, "f16")
    result = get_backend("cudnn").benchmark(job, SETTINGS)
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert "CUDA-graph" in result["method"]


needs_frontend = pytest.mark.skipif(
    torch_missing() is not None or frontend_missing() is not None, reason=str(torch_missing() or frontend_missing())
)


@needs_frontend
@pytest.mark.parametrize("layout", ["nhwc_hwc", "nchw_chw"])
@pytest.mark.parametrize("layer", ["c3_odd_3x3", "c96_3x3", "c20_5x5_s2", "dil2_asym"])
@pytest.mark.parametrize(("variant", "dtype"), [("frontend_fp32", "f32"), ("frontend_fp16", "f16")])
def test_cudnn_frontend_depthwise_verifies(variant: str, dtype: str, layer: str, layout: str) -> None:
    """cuDNN's graph API takes the grouped convolution (filter [C, 1, R, S]); its chosen engine verifies."""
    job = make_job(variant, layer, 3, None, dtype, layout)
    result = verdict("cudnn", job, get_backend("cudnn").run(job))
    assert result.status == "PASS", result.reason
