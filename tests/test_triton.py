"""The triton and inductor backends without a GPU (issue #22): settings schema and checks, SKIP reasons, tolerance
keys, the job options that make a changed tile rerun only its rows, the implicit-GEMM index math (gemm.py) as a NumPy
emulation of the kernel's two reduction walks checked against the float64 reference, the TMA gate, the autotune
search's choice, the facts read from generated PTX/TTGIR/SASS, Inductor's generated-code classification, and
config/triton.yaml's rows (SKIP here). The kernel itself runs in Triton's interpreter only where Triton and PyTorch
are importable (not in this project's venv); the GPU paths are tests/test_gpu_triton.py's.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml

from opbench.backends import Availability, BenchSettings, Problem, availability, get_backend
from opbench.backends import inductor as inductor_module
from opbench.backends.triton_conv import asm, gemm, launch
from opbench.backends.triton_variants import is_autotune, parse_options
from opbench.codedeps import module_files
from opbench.config import ConfigError, load, load_schema, validate
from opbench.dtypes import DTYPES, get_dtype
from opbench.matrix import expand, skip_reasons
from opbench.ops import get_op

REPO = Path(__file__).resolve().parent.parent
TRITON = get_backend("triton")
INDUCTOR = get_backend("inductor")
CONV = get_op("conv2d")
TINY = {
    "c3_odd": {"h": 9, "w": 7, "c": 3, "k": 5, "r": 3, "s": 3, "stride": 1, "pad": 1},
    "c37_k70_s2": {"h": 11, "w": 9, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 2, "pad": 1},
    "pw_s2": {"h": 8, "w": 10, "c": 16, "k": 12, "r": 1, "s": 1, "stride": 2, "pad": 0},
    "stem_7x7": {"h": 15, "w": 13, "c": 3, "k": 4, "r": 7, "s": 7, "stride": 2, "pad": 3},
    "dil2": {"h": 11, "w": 11, "c": 8, "k": 6, "r": 3, "s": 3, "stride": 1, "pad": 2, "dilation": 2},
    "asym": {"h": 12, "w": 17, "c": 16, "k": 9, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1], "dilation": 2},
}
CONFIG = {"block_m": 128, "block_n": 64, "block_k": 32, "num_warps": 4, "num_stages": 4}


def check_schema(backend: str, settings: dict[str, Any]) -> None:
    """A backend's settings against its schema, the config schema's $defs beside it (as the config sees it)."""
    jsonschema.validate(settings, {"$defs": load_schema()["$defs"], **get_backend(backend).settings_schema})


def shape_of(layer: str, batch: int = 2) -> Any:
    return CONV.shape_from_layer(TINY[layer], batch)


def problem(dtype: str = "f16", layout: str = "nhwc_fhwc", op: str = "conv2d", layer: str = "c3_odd") -> Problem:
    if op == "conv2d":
        shape = shape_of(layer)
    else:
        shape = get_op(op).shape_from_name("b1_h1_s64_d64" if op == "attention" else "n2_h9_w7_c6_r3_s3_st1_p1")
    return Problem(op=op, shape=shape, dtype=get_dtype(dtype), layout=layout)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return load()["backends"]["triton"]


# ---------------------------------------------------------------- settings


def test_config_yaml_declares_the_tiles_and_autotune_outside_the_default_matrix(raw: dict, settings: dict) -> None:
    variants = settings["variants"]
    tiles = [name for name, entry in variants.items() if not is_autotune(entry)]
    assert 3 <= len(tiles) <= 4 and set(variants["autotune"]["autotune"]) == set(tiles)
    for name in tiles:
        config = gemm.TileConfig.from_config(variants[name])
        assert gemm.config_name(config) == name  # the names say the tile
        for dtype in ("f16", "bf16", "f32"):
            assert gemm.fits(config, dtype) is None, (name, dtype)  # no shipped variant fails for lack of smem
    assert set(raw["backends"]["inductor"]["variants"]) == {"max_autotune", "triton_template"}
    assert all(not {"triton", "inductor"} & set(entry["backends"]) for entry in raw["matrix"])


@pytest.mark.parametrize(
    "bad",
    [
        {"m": {**CONFIG, "block_m": 48}},  # not a power of two
        {"m": {**CONFIG, "block_k": 8}},  # below tl.dot's 16
        {"m": {k: v for k, v in CONFIG.items() if k != "num_stages"}},
        {"m": {**CONFIG, "unroll": 2}},
        {"m": {**CONFIG, "num_warps": 3}},
        {"m": {**CONFIG, "tma": "yes"}},
        {"a": {"autotune": []}},
        {"a": {"autotune": ["m", "m"]}, "m": CONFIG},
        {"a": {"autotune": ["m"], "block_m": 64}, "m": CONFIG},
        {"m": ["--flag"]},
    ],
)
def test_the_schema_rejects_bad_variants(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_schema("triton", {"variants": bad})


def test_the_schema_takes_tiles_with_optional_keys_and_autotune_lists() -> None:
    good = {"m": {**CONFIG, "group_m": 4, "tma": False}, "n": CONFIG, "auto": {"autotune": ["m", "n"]}}
    check_schema("triton", {"variants": good})
    TRITON.check_settings({"variants": good})
    assert gemm.TileConfig.from_config(good["m"]).tma is False and gemm.TileConfig.from_config(CONFIG).group_m == 8


@pytest.mark.parametrize(
    ("variants", "key", "why"),
    [
        ({"auto": {"autotune": ["nope"]}}, "variants.auto.autotune[0]", "no triton variant"),
        ({"a": {"autotune": ["b"]}, "b": {"autotune": ["c"]}, "c": CONFIG}, "variants.a.autotune[0]", "autotune"),
        ({"big": {**CONFIG, "block_m": 256, "block_n": 256, "block_k": 128, "num_stages": 4}}, "variants.big",
         "KiB of shared memory"),
    ],
)  # fmt: skip
def test_check_settings_names_the_offending_key(raw: dict, variants: dict, key: str, why: str) -> None:
    config = copy.deepcopy(raw)
    config["backends"]["triton"]["variants"] = variants
    with pytest.raises(ConfigError, match=re.escape(f"backends.triton.{key}") + ".*" + why):
        validate(config)


def test_inductor_schema_takes_its_two_variants_only() -> None:
    check_schema("inductor", {"variants": {"max_autotune": [], "triton_template": []}})
    for bad in ({"variants": {"default": []}}, {"variants": {"max_autotune": ["-O3"]}}, {"variants": {}}):
        with pytest.raises(jsonschema.ValidationError):
            check_schema("inductor", bad)


# ---------------------------------------------------------------- SKIP reasons, tolerances, flags, job options


@pytest.mark.parametrize("backend", ["triton", "inductor"])
def test_unsupported_names_op_layout_and_dtype(backend: str, settings: dict) -> None:
    b = get_backend(backend)
    variant = "autotune" if backend == "triton" else "max_autotune"
    for dtype in ("f16", "bf16", "f32"):
        for layer in TINY:
            assert b.unsupported(problem(dtype, layer=layer), variant) is None
    assert "not nchw_fchw" in str(b.unsupported(problem("f16", "nchw_fchw"), variant))
    assert "not nhwc_hwcf" in str(b.unsupported(problem("f16", "nhwc_hwcf"), variant))
    assert "not f16_acc_f16" in str(b.unsupported(problem("f16_acc_f16"), variant))
    assert "conv2d only, not attention" in str(b.unsupported(problem("f16", "bhsd", "attention"), variant))
    assert set(DTYPES) == {"f32", "f16", "bf16", "f16_acc_f16"}  # every dtype is decided above


def test_triton_refuses_operands_beyond_32_bit_offsets() -> None:
    huge = CONV.shape_from_layer({"h": 1024, "w": 1024, "c": 2048, "k": 64, "r": 1, "s": 1}, 2)
    reason = TRITON.unsupported(Problem(op="conv2d", shape=huge, dtype=get_dtype("f16"), layout="nhwc_fhwc"), "x")
    assert "32-bit" in str(reason)


def test_inductor_names_an_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown inductor variant"):
        INDUCTOR.unsupported(problem(), "default")


@pytest.mark.parametrize("backend", ["triton", "inductor"])
def test_f32_rows_are_judged_as_tf32(backend: str) -> None:
    b = get_backend(backend)
    assert b.tolerance_key(get_dtype("f32"), "autotune") == "tf32"
    assert b.tolerance_key(get_dtype("f16"), "autotune") == "f16"
    assert b.tolerance_key(get_dtype("bf16"), "autotune") == "bf16"
    assert b.baseline_class("autotune") is None and b.device == "cuda" and b.build_scope == "none"


def test_variant_flags_describe_the_tile_or_the_candidates(settings: dict) -> None:
    assert TRITON.variant_flags(settings, "m128_n64_k32_w4_s4", problem()) == [
        "block=128x64x32", "warps=4", "stages=4", "group_m=8", "tma=auto",
    ]  # fmt: skip
    (flag,) = TRITON.variant_flags(settings, "autotune", problem())
    assert flag.startswith("autotune=") and "m128_n256_k32_w8_s3" in flag


def test_job_options_carry_the_configs_so_a_changed_tile_reruns_only_its_rows(settings: dict) -> None:
    p = problem()
    before = {v: TRITON.job_options(settings, v, p) for v in settings["variants"]}
    configs, autotune = parse_options(before["m128_n64_k32_w4_s4"], gemm.TileConfig.from_config)
    assert not autotune and configs == {"m128_n64_k32_w4_s4": gemm.TileConfig(**CONFIG)}
    configs, autotune = parse_options(before["autotune"], gemm.TileConfig.from_config)
    assert autotune and set(configs) == set(settings["variants"]["autotune"]["autotune"])
    changed = copy.deepcopy(settings)
    changed["variants"]["m128_n64_k32_w4_s4"]["num_stages"] = 3
    after = {v: TRITON.job_options(changed, v, p) for v in settings["variants"]}
    assert {v for v in before if before[v] != after[v]} == {"m128_n64_k32_w4_s4", "autotune"}


def test_the_rows_depend_on_the_backends_own_code() -> None:
    root = REPO / "opbench"
    triton_code = {p.relative_to(root).as_posix() for p in TRITON.code_files()}
    package = {f"backends/triton_conv/{m}.py" for m in ("__init__", "gemm", "kernel", "launch", "asm")}
    assert package <= triton_code and "gpu_timing.py" in triton_code
    inductor_code = {p.relative_to(root).as_posix() for p in INDUCTOR.code_files()}
    assert "backends/inductor.py" in inductor_code and not any("triton_conv" in f for f in inductor_code)
    assert "backends/inductor.py" not in triton_code
    assert set(module_files("opbench.backends.triton_conv")) == set(TRITON.code_files())


def test_importing_the_backends_imports_neither_torch_nor_triton() -> None:
    code = "import sys, opbench.backends; print('torch' in sys.modules, 'triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]


def test_without_a_gpu_or_torch_the_rows_are_skip() -> None:
    for b in (TRITON, INDUCTOR):
        assert availability(b, {"cpu"}) == Availability(
            runs=False, compiles=False, reason="no cuda device on this machine"
        )
    if importlib.util.find_spec("torch") is None:
        assert "PyTorch is not installed" in str(TRITON.requirement_missing())
        assert "PyTorch is not installed" in str(INDUCTOR.requirement_missing())
        assert not availability(TRITON, {"cpu", "cuda"}).runs


# ---------------------------------------------------------------- the index math


def test_output_pixel_and_reduction_index_invert_the_row_major_orders() -> None:
    n, p, q = 3, 5, 7
    for m in range(n * p * q):
        a, b, c = gemm.output_pixel(m, p, q)
        assert (a * p + b) * q + c == m and 0 <= b < p and 0 <= c < q
    r, s, c = 3, 5, 37
    for k in range(r * s * c):
        i, j, ch = gemm.reduction_index(k, s, c)
        assert (i * s + j) * c + ch == k and 0 <= j < s and 0 <= ch < c


def test_the_tap_walk_covers_each_tap_in_reduction_order() -> None:
    r, s, c, block_k = 3, 3, 64, 32
    for step in range(r * s * c // block_k):
        tap_r, tap_s, c0 = gemm.tap_step(step, s, c, block_k)
        assert gemm.reduction_index(step * block_k, s, c) == (tap_r, tap_s, c0)  # the same column of w2d
    assert gemm.reduction_walk(64, 32) == "tap" and gemm.reduction_walk(37, 32) == "flat"
    assert gemm.reduction_walk(3, 16) == "flat" and gemm.reduction_steps(shape_of("c3_odd"), 16) == 2


def emulate(x: np.ndarray, w: np.ndarray, shape: Any, block_m: int, block_n: int, block_k: int) -> np.ndarray:
    """The kernel's loop nest in NumPy, tile by tile, using gemm.py's index math: the GEMM rows of one program,
    each reduction step's A tile (masked input reads) and B tile (the [K, R*S*C] filter, masked), accumulated."""
    m_total, rsc = shape.n * shape.p * shape.q, shape.r * shape.s * shape.c
    w2d = w.reshape(shape.k, rsc).astype(np.float64)
    walk = gemm.reduction_walk(shape.c, block_k)
    y = np.zeros((m_total, shape.k))
    for m0 in range(0, m_total, block_m):
        for n0 in range(0, shape.k, block_n):
            acc = np.zeros((block_m, block_n))
            for step in range(-(-rsc // block_k)):
                a = np.zeros((block_m, block_k))
                for i in range(block_m):
                    if m0 + i >= m_total:
                        continue
                    img, p, q = gemm.output_pixel(m0 + i, shape.p, shape.q)
                    for j in range(block_k):
                        if walk == "tap":
                            r, s, c0 = gemm.tap_step(step, shape.s, shape.c, block_k)
                            c = c0 + j
                        else:
                            if step * block_k + j >= rsc:
                                continue
                            r, s, c = gemm.reduction_index(step * block_k + j, shape.s, shape.c)
                        ih, iw = gemm.input_coords(p, q, r, s, shape)
                        if 0 <= ih < shape.h and 0 <= iw < shape.w:
                            a[i, j] = x[img, ih, iw, c]
                b = np.zeros((block_n, block_k))
                rows, cols = min(block_n, shape.k - n0), min(block_k, rsc - step * block_k)
                b[:rows, :cols] = w2d[n0 : n0 + rows, step * block_k : step * block_k + cols]
                acc += a @ b.T
            rows, cols = min(block_m, m_total - m0), min(block_n, shape.k - n0)
            y[m0 : m0 + rows, n0 : n0 + cols] = acc[:rows, :cols]
    return y.reshape(shape.n, shape.p, shape.q, shape.k)


@pytest.mark.parametrize("layer", sorted(TINY))
@pytest.mark.parametrize("block_k", [4, 8, 16])
def test_the_emulated_kernel_computes_the_convolution(layer: str, block_k: int) -> None:
    shape = shape_of(layer)
    inputs = CONV.make_inputs(shape, get_dtype("f32"), "nhwc_fhwc", seed=7)
    reference = CONV.reference(inputs, shape, "nhwc_fhwc")
    got = emulate(inputs["input"], inputs["filter"], shape, block_m=16, block_n=8, block_k=block_k)
    np.testing.assert_allclose(got, reference, rtol=1e-9, atol=1e-9)
    assert got.shape == CONV.output_shape(shape, "nhwc_fhwc")


def test_both_walks_are_emulated() -> None:
    walks = {(layer, bk): gemm.reduction_walk(shape_of(layer).c, bk) for layer in TINY for bk in (4, 8, 16)}
    assert {"tap", "flat"} == set(walks.values())
    assert walks[("asym", 16)] == "tap" and walks[("c37_k70_s2", 8)] == "flat"


# ---------------------------------------------------------------- TMA, shared memory


def tma(**overrides: Any) -> tuple[bool, str]:
    kwargs: dict[str, Any] = {
        "config": gemm.TileConfig(**CONFIG), "dtype": "f16",
        "shape": CONV.shape_from_layer({"h": 14, "w": 14, "c": 64, "k": 64, "r": 3, "s": 3, "pad": 1}, 2),
        "triton_version": "3.5.0", "capability": (9, 0), "has_descriptors": True,
    }  # fmt: skip
    return gemm.tma_decision(**(kwargs | overrides))


def test_tma_is_used_on_hopper_with_a_recent_triton_and_aligned_rows() -> None:
    assert tma() == (True, "filter tiles [64, 32] through a TMA tensor descriptor")
    assert tma(capability=(10, 0))[0] and tma(triton_version="3.6.0+git1a2b")[0]


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"config": gemm.TileConfig(**CONFIG, tma=False)}, "tma: false"),
        ({"triton_version": "3.3.1"}, "Triton 3.3.1 has no host-side tensor descriptors"),
        ({"has_descriptors": False}, "no host-side tensor descriptors"),
        ({"capability": (8, 0)}, "sm_80 has no TMA"),
        ({"shape": shape_of("c3_odd")}, "not a multiple of 16 bytes"),
        ({"dtype": "f32", "config": gemm.TileConfig(**{**CONFIG, "block_k": 64})}, "256 bytes"),
    ],
)
def test_tma_is_refused_with_the_reason(overrides: dict, why: str) -> None:
    used, reason = tma(**overrides)
    assert not used and why in reason


def test_version_tuple_reads_release_and_dev_versions() -> None:
    assert gemm.version_tuple("3.5.0") == (3, 5, 0) and gemm.version_tuple("3.4.0+git5389ed79") == (3, 4, 0)
    assert gemm.version_tuple("3.6.0rc1") == (3, 6, 0) and gemm.version_tuple("3.3") < gemm.TMA_MIN_TRITON


def test_shared_memory_estimate_and_fit() -> None:
    config = gemm.TileConfig(block_m=128, block_n=256, block_k=64, num_warps=8, num_stages=3)
    assert config.smem_bytes(2) == 3 * (128 + 256) * 64 * 2
    assert gemm.fits(config, "f16") is None and "for f32" in str(gemm.fits(config, "f32"))
    assert gemm.check_config(config) is None


# ---------------------------------------------------------------- the autotune search


def test_autotune_keeps_the_fastest_and_records_those_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {
        "fast": gemm.TileConfig(**CONFIG),
        "slow": gemm.TileConfig(**{**CONFIG, "block_n": 128}),
        "oom": gemm.TileConfig(**{**CONFIG, "block_n": 256}),
        "too_big_f32": gemm.TileConfig(block_m=256, block_n=256, block_k=64, num_warps=8, num_stages=3),
    }
    times = {64: 1.0, 128: 2.0}

    class OutOfResources(Exception):
        pass

    def time_config(conv: Any, launcher: Any, settings: BenchSettings) -> tuple[None, float]:
        assert settings == launch.AUTOTUNE_SETTINGS
        if launcher.config.block_n == 256:
            raise OutOfResources("out of resource: shared memory")
        return None, times[launcher.config.block_n]

    monkeypatch.setattr(launch, "time_config", time_config)
    launcher = lambda config: types.SimpleNamespace(config=config, use_tma=True, walk="tap")  # noqa: E731
    conv = types.SimpleNamespace(job=types.SimpleNamespace(dtype=get_dtype("f32")), launcher=launcher)
    result = launch.search(conv, configs)  # type: ignore[arg-type]
    assert result["chosen"] == "fast"
    by_name = {c["name"]: c for c in result["candidates"]}
    assert by_name["slow"]["ms"] == 2.0 and by_name["fast"]["tma"] is True
    assert by_name["oom"]["ms"] is None and "OutOfResources" in by_name["oom"]["reason"]
    assert by_name["too_big_f32"]["ms"] is None and "shared memory for f32" in by_name["too_big_f32"]["reason"]


# ---------------------------------------------------------------- facts from the generated code

PTX_HOPPER = """
    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r1], [%rd2, {%r3, %r4}], [%r5];
    cp.async.cg.shared.global [ %r10 + 0 ], [ %rd11 + 0 ], 0x10, %r12;
    wgmma.fence.sync.aligned;
    wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%f1, %f2}, %rd20, %rd21, p, 1, 1, 0, 1;
    wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%f1, %f2}, %rd22, %rd23, p, 1, 1, 0, 1;
"""
PTX_AMPERE = """
    mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f1}, {%r1}, {%r2}, {%f1};
    cp.async.ca.shared.global [%r1], [%rd1], 4;
"""
TTGIR = """
    %0 = ttg.local_alloc : () -> !ttg.memdesc<3x128x32xf16, #shared, #smem, mutable>
    %1 = ttg.local_alloc : () -> !ttg.memdesc<3x64x32xf16, #shared1, #smem, mutable>
    %2 = ttg.local_alloc : () -> !ttg.memdesc<3xi64, #shared2, #smem, mutable>
    %3 = ttg.local_alloc %acc : (tensor<128x64xf16, #blocked>) -> !ttg.memdesc<128x64xf16, #shared3, #smem>
"""
SASS = """
        /*0400*/                   UTMALDG.2D [UR8], [UR4] ;
        /*0410*/                   LDGSTS.E.BYPASS.128 [R5], desc[UR6][R2.64] ;
        /*0420*/                   HGMMA.64x64x16.F32 R24, gdesc[UR8], R24 ;
        /*0430*/                   HGMMA.64x64x16.F32 R24, gdesc[UR12], R24, gsb0 ;
        /*0440*/                   STG.E.64 desc[UR6][R2.64], R24 ;
"""


def test_ptx_facts_tell_wgmma_tma_and_cp_async_apart() -> None:
    hopper = asm.ptx_facts(PTX_HOPPER)
    assert hopper["wgmma"] and hopper["wgmma_count"] == 2 and hopper["tma_load"] and hopper["cp_async"]
    assert not hopper["mma_sync"] and not hopper["tma_store"]
    ampere = asm.ptx_facts(PTX_AMPERE)
    assert ampere["mma_sync"] and ampere["cp_async"] and not ampere["wgmma"] and not ampere["tma_load"]


def test_ttgir_buffers_and_sass_counts() -> None:
    assert asm.smem_buffers(TTGIR) == [3, 3]  # the barrier array and the epilogue's 2-D buffer are no pipeline
    assert asm.smem_buffers(TTGIR.replace("ttg.", "triton_gpu.")) == [3, 3]  # the dialect's older name
    counts = asm.sass_counts(SASS)
    assert counts == {"HGMMA": 2, "HMMA": 0, "UTMALDG": 1, "LDGSTS": 1, "LDG": 0, "STG": 1}


def test_kernel_facts_from_a_compiled_kernel_and_its_summary() -> None:
    class AsmDict(dict):  # Triton's: "sass" disassembled on first access (here: nvdisasm missing)
        def __missing__(self, key: str) -> str:
            raise FileNotFoundError("nvdisasm not found")

    compiled = types.SimpleNamespace(
        asm=AsmDict(ptx=PTX_HOPPER, ttgir=TTGIR, cubin=b""),
        metadata=types.SimpleNamespace(num_warps=4, num_stages=3, shared=98304),
        n_regs=168, n_spills=0,
    )  # fmt: skip
    facts = asm.kernel_facts(compiled)
    assert facts["wgmma"] and facts["tma_load"] and facts["smem_buffers"] == [3, 3]
    assert (facts["num_warps"], facts["num_stages"], facts["shared_bytes"], facts["registers"]) == (4, 3, 98304, 168)
    assert facts["sass"] is None and "nvdisasm" in facts["sass_error"]
    assert asm.summary(facts) == "wgmma, TMA loads, cp.async loads, 3 smem buffers"
    with_sass = asm.kernel_facts(types.SimpleNamespace(asm={"ptx": PTX_AMPERE, "sass": SASS}))
    assert with_sass["sass"]["HGMMA"] == 2 and with_sass["smem_buffers"] is None and with_sass["num_warps"] is None
    assert asm.summary(with_sass) == "mma.sync, cp.async loads"


# ---------------------------------------------------------------- Inductor's choice

WRAPPER_TEMPLATE = """
triton_tem_fused_convolution_0 = async_compile.triton('triton_tem_fused_convolution_0', '''
@triton_heuristics.template(num_stages=2, num_warps=4)
@triton.jit
def triton_tem_fused_convolution_0(arg_X, arg_W, out_ptr0):
    pass
''')
def call(args):
    buf0 = empty_strided_cuda((2, 5, 9, 7), (315, 1, 35, 5), torch.float16)
    triton_tem_fused_convolution_0.run(arg0_1, arg1_1, buf0, grid=grid(64), stream=stream0)
    return (buf0, )
"""
WRAPPER_ATEN = """
def call(args):
    buf0 = extern_kernels.convolution(arg1_1, arg0_1, stride=(1, 1), padding=(1, 1), dilation=(1, 1),
        transposed=False, output_padding=(0, 0), groups=1, bias=None)
    return (buf0, )
"""
WRAPPER_MM = """
triton_poi_fused_convolution_0 = async_compile.triton('triton_poi_fused_convolution_0', '''...''')
def call(args):
    extern_kernels.conv1x1_via_mm(arg0_1, arg1_1, out=buf0)
    triton_poi_fused_convolution_0.run(buf0, buf1, 1000, grid=grid(1000), stream=stream0)
"""


def test_inductor_reads_its_choice_from_the_generated_code() -> None:
    template = inductor_module.generated_choice([WRAPPER_TEMPLATE])
    assert template["chosen"] == "triton_template"
    assert template["template_kernels"] == ["triton_tem_fused_convolution_0"] and template["extern_calls"] == []
    aten = inductor_module.generated_choice([WRAPPER_ATEN])
    assert aten["chosen"] == "aten_convolution" and aten["extern_calls"] == ["convolution"]
    mm = inductor_module.generated_choice([WRAPPER_MM])
    assert mm["chosen"] == "aten_conv1x1_via_mm" and mm["other_triton_kernels"] == ["triton_poi_fused_convolution_0"]
    assert inductor_module.generated_choice([])["chosen"].startswith("unknown")
    assert inductor_module.generated_choice(["def call(args): pass"])["chosen"].startswith("unknown")


# ---------------------------------------------------------------- config/triton.yaml


def test_config_triton_yaml_validates_and_its_rows_are_skip_here() -> None:
    config = load(REPO / "config" / "triton.yaml")
    points = expand(config)
    names = {(p.backend, p.variant, p.dtype) for p in points}
    tiles = [v for v, e in config["backends"]["triton"]["variants"].items() if not is_autotune(e)]
    for variant in [*tiles, "autotune"]:
        assert ("triton", variant, "f16") in names
    assert {("triton", "autotune", "bf16"), ("triton", "autotune", "f32"), ("inductor", "max_autotune", "f32")} <= names
    assert {("cudnn", "fp16", "f16"), ("cudnn", "bf16", "bf16"), ("cudnn", "tf32", "f32")} <= names
    assert {("iree-cuda", "default", "f16"), ("iree-cuda", "tuned", "f16")} <= names
    resnet = [p for p in points if p.suite == "resnet50"]
    assert {p.batch for p in resnet} == {16} and {p.layout for p in points} == {"nhwc_fhwc"}
    assert len({p.layer for p in resnet}) == len(config["suites"]["resnet50"]["layers"])
    here = {name: availability(get_backend(name), {"cpu"}) for name in config["backends"]}
    skipped = skip_reasons(points, here)
    for p in points:
        if p.backend in ("triton", "inductor", "cudnn"):
            assert skipped[p] == "no cuda device on this machine", (p, skipped.get(p))
    assert all(p not in skipped for p in points if p.backend == "iree-cuda")  # compiled here, run on the GPU


def test_config_triton_yaml_asks_for_no_gpu_and_documents_itself() -> None:
    text = (REPO / "config" / "triton.yaml").read_text()
    assert text.startswith("# ") and "docs/triton.md" in text
    assert "gpu" not in yaml.safe_load(text)  # auto: SKIP rows without a GPU


# ---------------------------------------------------------------- the kernel in Triton's interpreter


def interpreter_missing() -> str | None:
    for module in ("torch", "triton"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable here (not a project dependency): the interpreter test needs both"
    return None


@pytest.mark.skipif(interpreter_missing() is not None, reason=str(interpreter_missing()))
def test_the_kernel_in_tritons_interpreter(tmp_path: Path) -> None:
    """The real kernel on the CPU (TRITON_INTERPRET=1, set before Triton is imported: a fresh process), both walks."""
    script = """
import json, sys
import numpy as np, torch
from opbench.backends.triton_conv.kernel import conv2d_nhwc_krsc
from opbench.backends.triton_conv import gemm
from opbench.dtypes import get_dtype
from opbench.ops import get_op
conv = get_op("conv2d")
layers = json.loads(sys.argv[1])
for name, layer in layers.items():
    shape = conv.shape_from_layer(layer, 2)
    inputs = conv.make_inputs(shape, get_dtype("f32"), "nhwc_fhwc", 3)
    x, w = (torch.from_numpy(inputs[k]) for k in ("input", "filter"))
    y = torch.empty((shape.n, shape.p, shape.q, shape.k), dtype=torch.float32)
    bm, bn, bk = 16, 16, 16
    grid = (-(-shape.n * shape.p * shape.q // bm) * -(-shape.k // bn),)
    conv2d_nhwc_krsc[grid](x, w, None, y, shape.n, shape.h, shape.w, shape.c, shape.k, shape.p, shape.q, shape.r,
        shape.s, *shape.stride, *shape.pad, *shape.dilation, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=4,
        TAP_WALK=gemm.reduction_walk(shape.c, bk) == "tap", USE_TMA=False, INPUT_PRECISION="ieee")
    ref = conv.reference(inputs, shape, "nhwc_fhwc")
    assert np.allclose(y.numpy(), ref, rtol=1e-4, atol=1e-4), name
print("ok")
"""
    layers = {name: TINY[name] for name in ("c3_odd", "asym", "pw_s2", "dil2")}  # flat, tap, tap, flat walks
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(layers)], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
