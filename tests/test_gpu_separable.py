"""GPU tests of separable_conv2d's baseline, the two-op sequence through PyTorch (cuDNN's pick, and PyTorch's own
kernels with cuDNN off): verified on edge shapes against the float64 reference, the element-wise bound with its
rounded-intermediate term included (the intermediate is stored in the dtype, as the op's bound allows).

Marked `gpu`; skipped cleanly where no NVIDIA GPU or no PyTorch is present.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.cudnn import torch_missing
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.verify import ErrorModel, Verdict, judge

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
    pytest.mark.skipif(torch_missing() is not None, reason=str(torch_missing())),
]

OP = get_op("separable_conv2d")
EDGE_LAYERS = {
    "c3_k5_odd": {"h": 13, "w": 11, "c": 3, "k": 5, "r": 3, "s": 3, "stride": 1, "pad": 1},
    "c37_k70_s2": {"h": 15, "w": 9, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 2, "pad": 1},
    "c96_k24_5x5": {"h": 14, "w": 14, "c": 96, "k": 24, "r": 5, "s": 5, "stride": 1, "pad": 2},
    "dil2": {"h": 12, "w": 17, "c": 8, "k": 16, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1], "dilation": 2},
}
TOLERANCES = {"f32": 1e-4, "tf32": 2e-3, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's
MODES = [("fp32", "f32"), ("tf32", "f32"), ("fp16", "f16"), ("bf16", "bf16")]
NATIVE = [("native_fp32", "f32"), ("native_fp16", "f16"), ("native_bf16", "bf16")]


def make_job(variant: str, layer: str, dtype: str, layout: str) -> Job:
    shape = OP.shape_from_layer(EDGE_LAYERS[layer], 3)
    seed = zlib.crc32(f"{variant}{layer}{dtype}{layout}".encode())
    the_dtype = get_dtype(dtype)
    return Job(
        op=OP.name, shape=shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=OP.make_inputs(shape, the_dtype, layout, seed), artifact=None, options={},
    )  # fmt: skip


def verdict(job: Job, output: np.ndarray) -> Verdict:
    reference = OP.reference(job.inputs, job.shape, job.layout)
    key = get_backend("cudnn").tolerance_key(job.dtype, job.variant)
    scale, terms = OP.product_scale(job.inputs, job.shape, job.layout)
    rounded = OP.rounded_intermediate_scale(job.inputs, job.shape, job.layout)
    bound = ErrorModel.of(job.dtype, key).bound(reference, scale, terms, rounded)
    return judge(output, reference, TOLERANCES[key], bound)


@pytest.mark.parametrize("layout", ["nhwc_hwc_kc", "nchw_chw_kc"])
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize(("variant", "dtype"), MODES + NATIVE)
def test_two_op_baseline_verifies_on_edge_shapes(variant: str, dtype: str, layer: str, layout: str) -> None:
    job = make_job(variant, layer, dtype, layout)
    result = verdict(job, get_backend("cudnn").run(job))
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("variant", ["fp16", "native_fp16"])
def test_two_op_baseline_benchmark_checks_the_timed_outputs(variant: str) -> None:
    job = make_job(variant, "c96_k24_5x5", "f16", "nhwc_hwc_kc")
    result = get_backend("cudnn").benchmark(
        job, BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)
    )
    assert result["bench_output_consistent"] is True and result["buffer_copies"] > 1
    assert len(result["samples_ms"]) == 3 and min(result["samples_ms"]) > 0
