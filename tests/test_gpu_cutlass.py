"""GPU tests of the CUTLASS backend: every config variant and dtype verified on edge shapes against float64.

Marked `gpu`; skipped cleanly where no NVIDIA GPU is present, and a variant is skipped where its binary can neither
be found under compiled/cutlass/ (newer than its sources) nor built (no nvcc or no CUTLASS headers). sm90 variants
(sm_90a code) need a compute capability 9.0 card. Run on the GPU machine:
`python -m pytest -m gpu tests/test_gpu_cutlass.py`.
"""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
import yaml

from opbench import hardware
from opbench.backends import BenchSettings, Job, get_backend
from opbench.backends.cutlass import KernelSpec, build, build_sources, cutlass_root
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.verify import judge

REPO = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)"),
]

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
VARIANTS: dict[str, dict] = CONFIG["backends"]["cutlass"]["variants"]
TOLERANCES = {dtype: CONFIG["tolerances"]["tf32" if dtype == "f32" else dtype] for dtype in ("f16", "bf16", "f32")}
# Edge shapes, each with whether the variants' main kernel runs it (C a multiple of 8 and K of 4 covers every
# dtype's 16-byte rows) or the analytic fallback does.
DIL2_ASYM = {"h": 12, "w": 17, "c": 4, "k": 6, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1], "dilation": 2}
EDGE_LAYERS: dict[str, tuple[dict, bool]] = {
    "c3_odd_7x7_s2_p3": ({"h": 31, "w": 29, "c": 3, "k": 17, "r": 7, "s": 7, "stride": 2, "pad": 3}, False),
    "k_c_odd_3x3": ({"h": 13, "w": 11, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 1, "pad": 1}, False),
    "c4_k6_dil2_asym": (DIL2_ASYM, False),
    "c8_k12_s2_odd": ({"h": 12, "w": 11, "c": 8, "k": 12, "r": 3, "s": 3, "stride": 2, "pad": 1}, True),
    "pw_1x1_p0": ({"h": 9, "w": 9, "c": 16, "k": 8, "r": 1, "s": 1, "stride": 1, "pad": 0}, True),
    "c64_k72_3x3": ({"h": 10, "w": 9, "c": 64, "k": 72, "r": 3, "s": 3, "stride": 1, "pad": 1}, True),
    "c128_k136_s2_3x3": ({"h": 17, "w": 15, "c": 128, "k": 136, "r": 3, "s": 3, "stride": 2, "pad": 1}, True),
    "deep_7x7": ({"h": 7, "w": 7, "c": 512, "k": 256, "r": 3, "s": 3, "stride": 1, "pad": 1}, True),
}
BATCHES = (1, 3)
SETTINGS = BenchSettings(warmup_ms=5, repetitions=3, min_sample_ms=1, flush_l2=True)


def _compute_capability() -> str:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, check=False
    ).stdout
    return out.strip().splitlines()[0] if out.strip() else ""


@pytest.fixture(scope="session")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each config variant's binary: compiled/cutlass/<v>/conv2d_<v> if newer than its sources, else built now."""
    out = tmp_path_factory.mktemp("cutlass")
    paths = {}
    newest_source = max(p.stat().st_mtime for p in build_sources())
    for variant, entry in VARIANTS.items():
        built = REPO / "compiled" / "cutlass" / variant / f"conv2d_{variant}"
        if built.exists() and built.stat().st_mtime > newest_source:
            paths[variant] = built
            continue
        if not shutil.which("nvcc"):
            pytest.skip("nvcc not on PATH and no up-to-date binaries under compiled/cutlass/")
        try:
            cutlass_root()
        except FileNotFoundError as error:
            pytest.skip(str(error))
        paths[variant] = out / f"conv2d_{variant}"
        build(variant=variant, spec=KernelSpec.from_config(entry), flags=["-O3"], out=paths[variant])
    return paths


def _runnable(variant: str) -> None:
    if VARIANTS[variant]["arch"] == "sm90" and _compute_capability() != "9.0":
        pytest.skip(f"{variant} is sm_90a code; this GPU is compute capability {_compute_capability()}")


def _job(variant: str, layer: dict, batch: int, dtype: str, artifact: Path) -> Job:
    op = get_op("conv2d")
    shape = op.shape_from_layer(layer, batch)
    seed = zlib.crc32(f"{variant}/{layer}/{batch}/{dtype}".encode())
    return Job(
        op="conv2d", shape=shape, dtype=get_dtype(dtype), layout="nhwc_fhwc", variant=variant,
        inputs=op.make_inputs(shape, get_dtype(dtype), "nhwc_fhwc", seed), artifact=artifact, options={},
    )  # fmt: skip


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("layer", sorted(EDGE_LAYERS))
@pytest.mark.parametrize("dtype", sorted(TOLERANCES))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cutlass_variant_verifies_on_edge_shapes(
    harness_mode: str, binaries: dict[str, Path], variant: str, dtype: str, layer: str, batch: int
) -> None:
    _runnable(variant)
    job = _job(variant, EDGE_LAYERS[layer][0], batch, dtype, binaries[variant])
    output = get_backend("cutlass").run(job)
    reference = get_op("conv2d").reference(job.inputs, job.shape, "nhwc_fhwc")
    verdict = judge(output, reference, TOLERANCES[dtype])
    assert verdict.status == "PASS", (variant, dtype, layer, batch, verdict.reason, verdict.relerr)


@pytest.mark.parametrize("layer", ["c3_odd_7x7_s2_p3", "c64_k72_3x3"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cutlass_bench_names_the_kernel_it_ran(
    harness_mode: str, binaries: dict[str, Path], variant: str, layer: str
) -> None:
    """Timed launches reproduce the verified output; the record names the kernel and says when it is the fallback."""
    _runnable(variant)
    layer_entry, main_kernel = EDGE_LAYERS[layer]
    result = get_backend("cutlass").benchmark(_job(variant, layer_entry, 2, "f16", binaries[variant]), SETTINGS)
    detail = result["detail"]
    assert result["bench_output_consistent"] is True
    assert detail["fallback"] is (not main_kernel), detail
    expected = "analytic" if not main_kernel else ("tma" if VARIANTS[variant]["arch"] == "sm90" else "optimized")
    assert expected in detail["kernel"], detail
    assert f"kernel {detail['kernel']}" in result["method"]
    if main_kernel:
        assert detail["tile"] == VARIANTS[variant]["tile"]
    else:
        assert "C = 3" in detail["main_kernel_passed_over"], detail
