"""GPU tests of separable_conv2d: the baseline, the two-op sequence through PyTorch (cuDNN's pick, and PyTorch's own
kernels with cuDNN off), and our fused CUDA kernel (cuda/variants/separable_fused.cu), verified on edge shapes against
the float64 reference, the element-wise bound with its rounded-intermediate term included (the intermediate is stored
in the dtype, or kept on chip rounded to it, as the op's bound allows).

Marked `gpu`; skipped cleanly where no NVIDIA GPU (or nvcc for the CUDA kernel, PyTorch for the baseline) is present.
Run them on the GPU machine: `python -m pytest -m gpu tests/test_gpu_separable.py`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.cuda import variant_info
from opbench.backends.cudnn import torch_missing
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.ops import get_op
from opbench.verify import Verdict

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
]
needs_torch = pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing()))

OP = get_op("separable_conv2d")
EDGE_LAYERS = {
    "c3_k5_odd": {"h": 13, "w": 11, "c": 3, "k": 5, "r": 3, "s": 3, "stride": 1, "pad": 1},
    "c37_k70_s2": {"h": 15, "w": 9, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 2, "pad": 1},
    "c96_k24_5x5": {"h": 14, "w": 14, "c": 96, "k": 24, "r": 5, "s": 5, "stride": 1, "pad": 2},
    "dil2": {"h": 12, "w": 17, "c": 8, "k": 16, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1], "dilation": 2},
}
# The fused kernel's constant-size 3x3 paths (C a multiple of 8): which configuration each takes is in the comment
# (chunk = channels per step, 64 when C > 32; K tiles of at most 64). The layers above all take its generic path.
FUSED_LAYERS = {
    **EDGE_LAYERS,
    # stride 1, chunk 64, C = 144 = 2.25 chunks (a partial last chunk), K = 24 in one 32-wide tile, odd H and W
    "c144_k24_s1_odd": {"h": 13, "w": 11, "c": 144, "k": 24, "r": 3, "s": 3, "stride": 1, "pad": 1},
    # stride 2, chunk 64, K = 40 in one 64-wide tile (24 columns of it past K), H, W not multiples of the 8x8 tile
    "c96_k40_s2": {"h": 15, "w": 17, "c": 96, "k": 40, "r": 3, "s": 3, "stride": 2, "pad": 1},
    # stride 1, K = 136 > the widest K tile: three K tiles of 64 (the last one 8 wide), a 20-wide row (3 column tiles)
    "c64_k136_s1": {"h": 9, "w": 20, "c": 64, "k": 136, "r": 3, "s": 3, "stride": 1, "pad": 1},
    # stride 2, pad 0, C = 32: the 32-channel chunk (128 threads), K = 16 (half of its 32-wide tile)
    "c32_k16_s2_p0": {"h": 16, "w": 16, "c": 32, "k": 16, "r": 3, "s": 3, "stride": 2, "pad": 0},
    # stride 1, C = 24 (chunk 32, 8 channels past C), K = 70: three 32-wide K tiles, K % 8 != 0 (pair stores)
    "c24_k70_s1": {"h": 10, "w": 9, "c": 24, "k": 70, "r": 3, "s": 3, "stride": 1, "pad": 1},
    # stride 1 at MobileNetV2's 7x7: one 8x8 tile per image (15 of its 64 pixels past the image), K = 96 in two tiles
    "c960_k96_7x7": {"h": 7, "w": 7, "c": 960, "k": 96, "r": 3, "s": 3, "stride": 1, "pad": 1},
}
FUSED_PATHS = {
    "c144_k24_s1_odd": "3x3 stride 1", "c96_k40_s2": "3x3 stride 2", "c64_k136_s1": "3x3 stride 1",
    "c32_k16_s2_p0": "3x3 stride 2", "c24_k70_s1": "3x3 stride 1", "c960_k96_7x7": "3x3 stride 1",
    **{layer: "generic" for layer in EDGE_LAYERS},
}  # fmt: skip
FUSED = "separable_fused"
BATCHES = (1, 3)
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
TOLERANCES = {"f32": 1e-4, "tf32": 2e-3, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
MODES = [("fp32", "f32"), ("tf32", "f32"), ("fp16", "f16"), ("bf16", "bf16")]
NATIVE = [("native_fp32", "f32"), ("native_fp16", "f16"), ("native_bf16", "bf16")]


def make_job(variant: str, layer: str, dtype: str, layout: str, batch: int = 3, artifact: Path | None = None) -> Job:
    shape = OP.shape_from_layer(FUSED_LAYERS[layer], batch)
    seed = zlib.crc32((f"{variant}{layer}{dtype}{layout}" + (f"{batch}" if batch != 3 else "")).encode())
    the_dtype = get_dtype(dtype)
    return Job(
        op=OP.name, shape=shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=OP.make_inputs(shape, the_dtype, layout, seed), artifact=artifact, options={},
    )  # fmt: skip


def verdict(job: Job, output: np.ndarray, backend: str = "cudnn") -> Verdict:
    key = get_backend(backend).tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


@needs_torch
@pytest.mark.parametrize("layout", ["nhwc_hwc_kc", "nchw_chw_kc"])
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize(("variant", "dtype"), MODES + NATIVE)
def test_two_op_baseline_verifies_on_edge_shapes(variant: str, dtype: str, layer: str, layout: str) -> None:
    job = make_job(variant, layer, dtype, layout)
    result = verdict(job, get_backend("cudnn").run(job))
    assert result.status == "PASS", result.reason


@needs_torch
@pytest.mark.parametrize("variant", ["fp16", "native_fp16"])
def test_two_op_baseline_benchmark_checks_the_timed_outputs(variant: str) -> None:
    job = make_job(variant, "c96_k24_5x5", "f16", "nhwc_hwc_kc")
    result = get_backend("cudnn").benchmark(
        job, BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
    )
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert len(result["samples_ms"]) == 3 and min(result["samples_ms"]) > 0


def fused_job(binaries: dict[str, Path], layer: str, dtype: str, batch: int = 3) -> Job:
    return make_job(FUSED, layer, dtype, "nhwc_hwc_kc", batch, binaries[FUSED])


def test_the_fused_variant_declares_the_op_and_its_dtypes() -> None:
    info = variant_info(FUSED)
    assert info.op == "separable_conv2d" and set(info.dtypes) == {"f16", "bf16"}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("layer", sorted(FUSED_LAYERS))
@pytest.mark.parametrize("dtype", variant_info(FUSED).dtypes)
def test_fused_kernel_verifies_on_edge_shapes(
    harness_mode: str, binaries: dict[str, Path], dtype: str, layer: str, batch: int
) -> None:
    job = fused_job(binaries, layer, dtype, batch)
    result = verdict(job, get_backend("cuda").run(job), "cuda")
    assert result.status == "PASS", result.reason


def test_fused_kernel_takes_the_paths_the_layers_name(binaries: dict[str, Path]) -> None:
    """Each layer runs the path its comment names (so the edge tests cover the constant-size and generic paths)."""
    paths = {}
    for layer in FUSED_PATHS:
        job = fused_job(binaries, layer, "f16", 1)
        paths[layer] = get_backend("cuda").benchmark(job, SETTINGS)["detail"]["path"]
    assert paths == FUSED_PATHS


@pytest.mark.parametrize("layer", ["c144_k24_s1_odd", "c96_k40_s2", "c64_k136_s1", "c37_k70_s2"])
def test_fused_kernel_benchmark_is_consistent(binaries: dict[str, Path], layer: str) -> None:
    job = fused_job(binaries, layer, "f16")
    result = get_backend("cuda").benchmark(job, SETTINGS)
    assert len(result["samples_ms"]) == SETTINGS.repetitions and min(result["samples_ms"]) > 0
    assert result["bench_output_consistent"] is True and result["problem"]["op"] == "separable_conv2d"


def test_a_wrong_fused_output_fails(binaries: dict[str, Path]) -> None:
    """One output element moved by a small fraction of the output's RMS FAILs: the element-wise check can fail."""
    job = fused_job(binaries, "c144_k24_s1_odd", "f16")
    output = get_backend("cuda").run(job)
    assert verdict(job, output, "cuda").status == "PASS"
    wrong = output.copy()
    wrong.flat[wrong.size // 2] += 0.05 * float(np.sqrt(np.mean(np.square(output))))
    assert verdict(job, wrong, "cuda").status == "FAIL"
