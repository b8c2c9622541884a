"""The CUTLASS backend without a GPU: its config section, its nvcc line and one real compile.

The compile test builds one small sm80 configuration of cuda/cutlass/conv2d_fprop.cu for sm_80 with the workflow's
command line (CUTLASS headers from the nvidia-cutlass wheel or $CUTLASS_DIR), checks ptxas reports no spills, and
that the binary rejects bad arguments before any CUDA call. Marked `slow` (about 1-2 minutes on 2 cores).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from opbench.backends import Problem, get_backend
from opbench.backends import cutlass as cutlass_backend
from opbench.backends.cutlass import KernelSpec, SpecError, cutlass_root, nvcc_command
from opbench.config import ConfigError, validate
from opbench.dtypes import get_dtype
from opbench.matrix import expand, make_problem

REPO = Path(__file__).resolve().parents[1]
SM80 = {"arch": "sm80", "tile": [128, 128, 32], "warps": [64, 64, 32], "stages": 4}
SM90 = {"arch": "sm90", "tile": [128, 128, 64], "stages": 0}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _with_variant(raw: dict, entry: dict) -> dict:
    config = copy.deepcopy(raw)
    config["backends"]["cutlass"]["variants"] = {"v": entry}
    return config


# ---------------------------------------------------------------- config


def test_shipped_config_has_cutlass_rows_for_every_gpu_layer(raw: dict) -> None:
    config = validate(raw)
    assert config["backends"]["cutlass"]["nvcc_flags"] == ["-O3", "-lineinfo"]  # the default, filled
    points = expand(config)
    variants = set(config["backends"]["cutlass"]["variants"])
    assert {"sm80", "sm90"} == {entry["arch"] for entry in config["backends"]["cutlass"]["variants"].values()}
    # Every conv2d (layer, batch, dtype) that has a cuDNN row has a row of every CUTLASS variant.
    cudnn = {(p.suite, p.layer, p.batch, p.dtype) for p in points if p.backend == "cudnn" and p.op == "conv2d"}
    for variant in variants:
        rows = {(p.suite, p.layer, p.batch, p.dtype) for p in points if p.backend == "cutlass" and p.variant == variant}
        assert rows == cudnn, variant


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ({**SM80, "tile": [128, 100, 32]}, "backends.cutlass.variants.v.tile[1]", "multiple of 16"),
        ({**SM80, "tile": [128, 128]}, "backends.cutlass.variants.v.tile", "too short"),
        ({**SM80, "warp": [64, 64, 32]}, "warp", "unknown config key"),
        ({**SM80, "arch": "sm75"}, "backends.cutlass.variants.v.arch", "sm75"),
        ({**SM80, "stages": 11}, "backends.cutlass.variants.v.stages", "11"),
        ({k: v for k, v in SM80.items() if k != "warps"}, "backends.cutlass.variants.v.warps", "required"),
        ({**SM80, "warps": [64, 48, 32]}, "backends.cutlass.variants.v.tile[1]", "not a multiple of warps[1]"),
        ({**SM80, "tile": [256, 256, 64], "warps": [32, 32, 32]}, "backends.cutlass.variants.v.warps", "at most 16"),
        ({**SM80, "stages": 1}, "backends.cutlass.variants.v.stages", "at least 2"),
        ({**SM80, "tile": [128, 128, 128], "warps": [64, 64, 128]}, "backends.cutlass.variants.v.tile[2]", "128 bytes"),
        ({**SM90, "warps": [64, 64, 64]}, "backends.cutlass.variants.v.warps", "no warp tile"),
        ({**SM90, "tile": [256, 128, 64]}, "backends.cutlass.variants.v.tile[0]", "64 or 128"),
        ({**SM90, "tile": [128, 272, 64]}, "backends.cutlass.variants.v.tile[1]", "up to 256"),
        ({**SM90, "stages": 1}, "backends.cutlass.variants.v.stages", "at least 2"),
    ],
)
def test_bad_variant_names_the_key(raw: dict, entry: dict, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(_with_variant(raw, entry))
    assert key in str(error.value) and message in str(error.value), str(error.value)


def test_spec_defines_and_flags() -> None:
    spec = KernelSpec.from_config(SM80)
    assert spec.defines("v") == [
        "-DOPBENCH_CUTLASS_SM=80", '-DOPBENCH_VARIANT="v"', "-DOPBENCH_TILE_M=128", "-DOPBENCH_TILE_N=128",
        "-DOPBENCH_TILE_K=32", "-DOPBENCH_WARP_M=64", "-DOPBENCH_WARP_N=64", "-DOPBENCH_WARP_K=32",
        "-DOPBENCH_STAGES=4",
    ]  # fmt: skip
    assert spec.describe() == ["arch=sm80", "tile=128x128x32", "warps=64x64x32", "stages=4"]
    sm90 = KernelSpec.from_config(SM90)
    assert not any("WARP" in d for d in sm90.defines("v"))
    assert sm90.describe() == ["arch=sm90", "tile=128x128x64", "stages=auto"]
    with pytest.raises(SpecError, match=r"^warps: "):
        KernelSpec.from_config({**SM90, "warps": [64, 64, 64]})


# ---------------------------------------------------------------- backend


def problem(dtype: str, layout: str) -> Problem:
    return make_problem(op="conv2d", shape="n1_h8_w8_c16_k16_r3_s3_st1_p1", dtype=dtype, layout=layout)


def test_backend_supports_and_judges_f32_as_tf32() -> None:
    backend = get_backend("cutlass")
    assert backend.device == "cuda" and backend.build_scope == "variant"
    for dtype in ("f16", "bf16", "f32"):
        assert backend.unsupported(problem(dtype, "nhwc_fhwc"), "v") is None
    assert "conv2d_fprop.cu implements" in backend.unsupported(problem("f16_acc_f16", "nhwc_fhwc"), "v")
    assert backend.unsupported(problem("f16", "nchw_fchw"), "v")
    assert backend.tolerance_key(get_dtype("f32"), "v") == "tf32"
    assert backend.tolerance_key(get_dtype("bf16"), "v") == "bf16"
    assert backend.variant_flags({"variants": {"v": SM90}}, "v", problem("f16", "nhwc_fhwc")) == [
        "arch=sm90",
        "tile=128x128x64",
        "stages=auto",
    ]


def test_cutlass_dir_overrides_and_missing_headers_are_a_skip_reason(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "include" / "cutlass").mkdir(parents=True)
    (tmp_path / "include" / "cutlass" / "version.h").write_text("#define CUTLASS_MAJOR 4\n")
    monkeypatch.setenv("CUTLASS_DIR", str(tmp_path))
    assert cutlass_root() == tmp_path
    assert get_backend("cutlass").requirement_missing() is None
    monkeypatch.setenv("CUTLASS_DIR", str(tmp_path / "nowhere"))
    reason = get_backend("cutlass").requirement_missing()
    assert reason is not None and "CUTLASS_DIR" in reason and "nvidia-cutlass" in reason


def test_nvcc_command_sm80_and_sm90(tmp_path: Path) -> None:
    root = tmp_path / "cutlass"
    cmd = nvcc_command(variant="v", spec=KernelSpec.from_config(SM80), flags=["-O3"], root=root, out=tmp_path / "b")
    assert cmd[:3] == ["nvcc", "-std=c++17", "-O3"]
    assert "--expt-relaxed-constexpr" in cmd and cmd[cmd.index("-Xptxas") + 1] == "-v"
    assert [a for a in cmd if a.startswith("-gencode")] == [
        "-gencode=arch=compute_90,code=sm_90", "-gencode=arch=compute_80,code=sm_80",
    ]  # fmt: skip
    assert f"-I{root / 'include'}" in cmd and f"-I{root / 'tools' / 'util' / 'include'}" in cmd
    assert "-DOPBENCH_WARP_K=32" in cmd and '-DOPBENCH_VARIANT="v"' in cmd
    assert cmd[-4:-2] == [str(REPO / "cuda" / "common" / "harness.cu"), str(cutlass_backend.SOURCE)]
    assert cutlass_backend.SOURCE == REPO / "cuda" / "cutlass" / "conv2d_fprop.cu"
    assert cmd[-2:] == ["-o", str(tmp_path / "b")]
    cmd90 = nvcc_command(variant="w", spec=KernelSpec.from_config(SM90), flags=[], root=root, out=tmp_path / "c")
    assert [a for a in cmd90 if a.startswith("-gencode")] == ["-gencode=arch=compute_90a,code=sm_90a"]
    assert "-DOPBENCH_CUTLASS_SM=90" in cmd90 and not any(a.startswith("-DOPBENCH_WARP") for a in cmd90)


def test_build_sources_are_harness_source_and_project_header() -> None:
    names = [p.name for p in cutlass_backend.build_sources()]
    assert names == ["conv2d.cuh", "harness.cu", "conv2d_fprop.cu"]


def test_benchmark_method_names_the_kernel_and_the_fallback(monkeypatch) -> None:
    def fake_benchmark(self, job, settings):
        return {"method": "CUDA events", "detail": {"kernel": "k_fallback", "fallback": True,
                                                    "main_kernel_passed_over": "k_main: C = 3"}}  # fmt: skip

    monkeypatch.setattr(cutlass_backend.CudaKernels, "benchmark", fake_benchmark)
    result = get_backend("cutlass").benchmark(None, None)  # type: ignore[arg-type]
    assert result["method"] == "CUDA events; kernel k_fallback (fallback: k_main: C = 3)"


# ---------------------------------------------------------------- one real compile (no GPU needed)


def _nvcc() -> str | None:
    return shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)


@pytest.mark.slow
def test_one_sm80_configuration_compiles_without_spills(tmp_path: Path, monkeypatch) -> None:
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    try:
        root = cutlass_root()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    monkeypatch.setitem(cutlass_backend.TARGETS, "sm80", ("sm_80",))  # one arch keeps CI's 2 cores quick
    spec = KernelSpec.from_config({"arch": "sm80", "tile": [64, 64, 32], "warps": [32, 32, 32], "stages": 3})
    binary = tmp_path / "conv2d_ci"
    cmd = nvcc_command(variant="ci", spec=spec, flags=["-O3"], root=root, out=binary)
    proc = subprocess.run([nvcc, *cmd[1:]], capture_output=True, text=True, timeout=900, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # The main kernel and the fallback, for f16, bf16 and f32: six kernels, none spilling.
    assert len(re.findall(r"Compiling entry function '[^']+' for 'sm_80'", log)) == 6, log[-4000:]
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    assert len(spills) == 6 and all(s == ("0", "0") for s in spills), spills
    # Bad arguments stop before any CUDA call (this machine may have no GPU): exit 2, the flag named.
    x, w = tmp_path / "x.npy", tmp_path / "w.npy"
    np.save(x, np.zeros((1, 5, 5, 8), np.float32))
    np.save(w, np.zeros((4, 3, 3, 8), np.float32))
    args = [str(binary), "--mode", "run", "--input", str(x), "--filter", str(w), "--output", str(tmp_path / "y.npy"),
            "--n", "1", "--h", "5", "--w", "5", "--c", "8", "--k", "4", "--r", "3", "--s", "3",
            "--stride-h", "1", "--stride-w", "1", "--pad-h", "1"]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--pad-w" in proc.stderr and proc.stdout == "", proc.stderr
    proc = subprocess.run([*args, "--pad-w", "1", "--dtype", "f8"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--dtype" in proc.stderr, proc.stderr
