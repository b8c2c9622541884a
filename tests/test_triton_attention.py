"""The triton-attention backend without a GPU (issue #22): settings schema and checks naming the bad key, SKIP
reasons, the job options that make a changed tile rerun only its rows, the code its rows depend on, the tiling's
index math (tiles.py) as a NumPy emulation of the kernel's programs and key loops (reading Q, K, V through the
layouts' strides) judged against the float64 reference with the workflow's verdict, and emulations with the causal
mask, the partial last key block or the rescaling dropped judged FAIL; the launch wiring (grid, strides, constants)
through a stand-in kernel; the autotune search's choice and its stored result; a benchmark's record fields; and the
config/attention.yaml's rows (SKIP here). The kernel itself runs in Triton's interpreter
only where Triton and PyTorch are importable (not in this project's venv); the GPU paths are
tests/test_gpu_triton_attention.py's.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
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
from snakemake.utils import update_config

from opbench.backends import Availability, BenchSettings, Job, Problem, availability, get_backend
from opbench.backends.triton_attention import launch, tiles
from opbench.backends.triton_variants import autotune_key, is_autotune, parse_options
from opbench.codedeps import module_files
from opbench.config import ConfigError, load, load_schema, validate
from opbench.dtypes import DTYPES, get_dtype, round_to
from opbench.jobs import judge_job
from opbench.matrix import expand, skip_reasons
from opbench.ops import get_op
from opbench.ops.attention.layouts import INPUT_PERM
from opbench.records import make_record

REPO = Path(__file__).resolve().parent.parent
NAME = "triton-attention"
BACKEND = get_backend(NAME)
OP = get_op("attention")
CONFIG = {"block_m": 64, "block_n": 32, "num_warps": 4, "num_stages": 3}
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's


def check_schema(settings: dict[str, Any]) -> None:
    """The backend's settings against its schema, the config schema's $defs beside it (as the config sees it)."""
    jsonschema.validate(settings, {"$defs": load_schema()["$defs"], **BACKEND.settings_schema})


def problem(dtype: str = "f16", layout: str = "bhsd", shape: str = "b2_h3_s37_d64", op: str = "attention") -> Problem:
    if op == "conv2d":
        layer = {"h": 9, "w": 7, "c": 6, "k": 4, "r": 3, "s": 3, "stride": 1, "pad": 1}
        return Problem(op=op, shape=get_op(op).shape_from_layer(layer, 2), dtype=get_dtype(dtype), layout="nhwc_fhwc")
    return Problem(op=op, shape=OP.shape_from_name(shape), dtype=get_dtype(dtype), layout=layout)


def make_job(shape: str, dtype: str = "f16", layout: str = "bhsd", seed: int = 11, **options: str) -> Job:
    the_shape, the_dtype = OP.shape_from_name(shape), get_dtype(dtype)
    return Job(
        op="attention", shape=the_shape, dtype=the_dtype, layout=layout, variant="v",
        inputs=OP.make_inputs(the_shape, the_dtype, layout, seed), artifact=None, options=dict(options),
    )  # fmt: skip


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return load()["backends"][NAME]


# ---------------------------------------------------------------- settings


def test_config_yaml_declares_the_tiles_and_autotune_outside_the_default_matrix(raw: dict, settings: dict) -> None:
    variants = settings["variants"]
    tiles_ = [name for name, entry in variants.items() if not is_autotune(entry)]
    assert 3 <= len(tiles_) <= 4 and set(variants["autotune"]["autotune"]) == set(tiles_)
    for name in tiles_:
        config = tiles.TileConfig.from_config(variants[name])
        assert tiles.config_name(config) == name  # the names say the tile
        assert tiles.check_config(config) is None
    assert all(NAME not in entry["backends"] for entry in raw["matrix"])


@pytest.mark.parametrize(
    "bad",
    [
        {"m": {**CONFIG, "block_m": 48}},  # not a power of two
        {"m": {**CONFIG, "block_n": 8}},  # below tl.dot's 16
        {"m": {**CONFIG, "block_n": 256}},  # past the largest key block
        {"m": {k: v for k, v in CONFIG.items() if k != "num_stages"}},
        {"m": {**CONFIG, "block_k": 32}},  # conv2d's key, not this kernel's
        {"m": {**CONFIG, "num_warps": 3}},
        {"m": {**CONFIG, "num_stages": 0}},
        {"a": {"autotune": []}},
        {"a": {"autotune": ["m", "m"]}, "m": CONFIG},
        {"a": {"autotune": ["m"], "block_m": 64}, "m": CONFIG},
        {"m": []},
    ],
)
def test_the_schema_rejects_bad_variants(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_schema({"variants": bad})


def test_the_schema_takes_tiles_and_autotune_lists() -> None:
    good = {"m": CONFIG, "n": {**CONFIG, "block_m": 128, "num_warps": 8}, "auto": {"autotune": ["m", "n"]}}
    check_schema({"variants": good})
    BACKEND.check_settings({"variants": good})
    assert BACKEND.candidates({"variants": good}, "auto") == {
        "m": tiles.TileConfig(**CONFIG), "n": tiles.TileConfig(**{**CONFIG, "block_m": 128, "num_warps": 8}),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("variants", "key", "why"),
    [
        ({"auto": {"autotune": ["nope"]}}, "variants.auto.autotune[0]", "'nope' is no triton-attention variant"),
        ({"a": {"autotune": ["b"]}, "b": {"autotune": ["c"]}, "c": CONFIG}, "variants.a.autotune[0]",
         "'b' is an autotune variant"),
        ({"wide": {**CONFIG, "block_m": 32, "block_n": 64}}, "variants.wide", "block_n (64) exceeds block_m (32)"),
    ],
)  # fmt: skip
def test_check_settings_names_the_offending_key(raw: dict, variants: dict, key: str, why: str) -> None:
    config = copy.deepcopy(raw)
    config["backends"][NAME]["variants"] = variants
    with pytest.raises(ConfigError, match=re.escape(f"backends.{NAME}.{key}") + ".*" + re.escape(why)):
        validate(config)


def test_the_config_rejects_a_bad_value_naming_it(raw: dict) -> None:
    config = copy.deepcopy(raw)
    config["backends"][NAME]["variants"]["m128_n64_w4_s3"]["num_warps"] = 3
    with pytest.raises(ConfigError, match=r"triton-attention.*m128_n64_w4_s3"):
        validate(config)


# ---------------------------------------------------------------- SKIP reasons, flags, job options, code


def test_unsupported_names_op_layout_dtype_and_head_dim() -> None:
    for dtype in ("f16", "bf16"):
        for layout in ("bhsd", "bshd"):
            for shape in ("b2_h3_s37_d64", "b1_h1_s1_d128_causal", "b1_h2_s100_d40", "b1_h1_s17_d256"):
                assert BACKEND.unsupported(problem(dtype, layout, shape), "autotune") is None, (dtype, layout, shape)
    assert "not f32" in str(BACKEND.unsupported(problem("f32"), "autotune"))
    assert "implements f16, bf16" in str(BACKEND.unsupported(problem("f32"), "autotune"))
    assert "not f16_acc_f16" in str(BACKEND.unsupported(problem("f16_acc_f16"), "autotune"))
    assert "attention only, not conv2d" in str(BACKEND.unsupported(problem(op="conv2d"), "autotune"))
    assert "not bsdh" in str(BACKEND.unsupported(problem(layout="bsdh"), "autotune"))
    assert "head dims up to 256, not 257" in str(BACKEND.unsupported(problem(shape="b1_h1_s64_d257"), "autotune"))
    huge = problem(shape="b1024_h64_s8192_d64")  # 2^35 elements per tensor
    assert "32-bit" in str(BACKEND.unsupported(huge, "autotune"))
    assert set(DTYPES) == {"f32", "f16", "bf16", "f16_acc_f16"}  # every dtype is decided above
    assert set(INPUT_PERM) == {"bhsd", "bshd"}  # every layout is decided above


def test_no_baseline_and_the_dtypes_own_tolerance() -> None:
    assert BACKEND.baseline_class("autotune") is None and BACKEND.device == "cuda" and BACKEND.build_scope == "none"
    assert BACKEND.tolerance_key(get_dtype("f16"), "autotune") == "f16"
    assert BACKEND.tolerance_key(get_dtype("bf16"), "autotune") == "bf16"
    assert NAME in BACKEND.table_note


def test_variant_flags_describe_the_tile_or_the_candidates(settings: dict) -> None:
    assert BACKEND.variant_flags(settings, "m128_n64_w4_s3", problem()) == ["block=128x64", "warps=4", "stages=3"]
    (flag,) = BACKEND.variant_flags(settings, "autotune", problem())
    assert flag == "autotune=" + ",".join(settings["variants"]["autotune"]["autotune"])


def test_job_options_carry_the_configs_so_a_changed_tile_reruns_only_its_rows(settings: dict) -> None:
    p = problem()
    before = {v: BACKEND.job_options(settings, v, p) for v in settings["variants"]}
    configs, autotune = parse_options(before["m128_n64_w4_s3"], tiles.TileConfig.from_config)
    assert not autotune and configs == {"m128_n64_w4_s3": tiles.TileConfig(block_m=128, block_n=64, num_warps=4,
                                                                           num_stages=3)}  # fmt: skip
    configs, autotune = parse_options(before["autotune"], tiles.TileConfig.from_config)
    assert autotune and set(configs) == set(settings["variants"]["autotune"]["autotune"])
    changed = copy.deepcopy(settings)
    changed["variants"]["m128_n64_w4_s3"]["num_stages"] = 2
    after = {v: BACKEND.job_options(changed, v, p) for v in settings["variants"]}
    assert {v for v in before if before[v] != after[v]} == {"m128_n64_w4_s3", "autotune"}


def test_the_rows_depend_on_the_backends_own_code_and_the_asm_reader_only() -> None:
    root = REPO / "opbench"
    code = {p.relative_to(root).as_posix() for p in BACKEND.code_files()}
    package = {f"backends/triton_attention/{m}.py" for m in ("__init__", "tiles", "kernel", "launch")}
    assert package <= code and "gpu_timing.py" in code and "backends/triton_conv/asm.py" in code
    assert not {f for f in code if f.startswith("backends/triton_conv/")} - {"backends/triton_conv/asm.py"}
    assert "backends/sdpa.py" not in code
    conv = {p.relative_to(root).as_posix() for p in get_backend("triton").code_files()}
    assert not any("triton_attention" in f for f in conv)  # editing this kernel reruns no conv2d row
    assert set(module_files("opbench.backends.triton_attention")) == set(BACKEND.code_files())


def test_importing_the_backend_imports_neither_torch_nor_triton() -> None:
    code = (
        "import sys, opbench.backends.triton_attention as b; "
        "print(b.NAME, 'torch' in sys.modules, 'triton' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == [NAME, "False", "False"]


def test_without_a_gpu_torch_or_triton_the_rows_are_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    assert availability(BACKEND, {"cpu"}) == Availability(
        runs=False, compiles=False, reason="no cuda device on this machine"
    )
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert "PyTorch is not installed" in str(BACKEND.requirement_missing())
    assert not availability(BACKEND, {"cpu", "cuda"}).runs
    # PyTorch present, Triton not: the reason names Triton
    fake_spec = types.SimpleNamespace(name="torch")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: fake_spec if name == "torch" else None if name == "triton"
        else real(name, *a)
    )  # fmt: skip
    assert BACKEND.requirement_missing() == "Triton is not installed (pip install triton)"
    assert availability(BACKEND, {"cpu", "cuda"}).reason == "Triton is not installed (pip install triton)"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake_spec)
    assert BACKEND.requirement_missing() is None and availability(BACKEND, {"cuda"}).runs


# ---------------------------------------------------------------- the index math


def test_padded_head_dim_and_the_base_2_scale() -> None:
    assert [tiles.padded_head_dim(d) for d in (1, 16, 17, 40, 64, 80, 128, 129, 256)] == [
        16, 16, 32, 64, 64, 128, 128, 256, 256,
    ]  # fmt: skip
    for d in (16, 64, 80, 128):
        assert np.isclose(2.0 ** (tiles.softmax_scale_log2(d) * 3.0), np.exp(3.0 / np.sqrt(d)), rtol=1e-14)


@pytest.mark.parametrize("layout", sorted(INPUT_PERM))
def test_layout_strides_address_the_inputs_memory(layout: str) -> None:
    shape = OP.shape_from_name("b2_h3_s5_d7")
    inputs = OP.make_inputs(shape, get_dtype("f32"), layout, seed=3)
    sb, sh, ss = tiles.layout_strides(layout, shape)
    flat = inputs["q"].ravel()
    canonical = inputs["q"].transpose(np.argsort(INPUT_PERM[layout]))  # [B,H,S,D] view
    for b, h, s, d in np.ndindex(*shape.qkv_shape_bhsd()):
        assert flat[b * sb + h * sh + s * ss + d] == canonical[b, h, s, d]
    expected = {"bhsd": (3 * 5 * 7, 5 * 7, 7), "bshd": (5 * 3 * 7, 7, 3 * 7)}[layout]
    assert (sb, sh, ss) == expected


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_every_program_owns_one_query_block_of_one_head(causal: bool) -> None:
    shape = OP.shape_from_name("b2_h3_s100_d64" + ("_causal" if causal else ""))
    num_m = tiles.query_blocks(shape.s, 32)
    assert num_m == 4 and tiles.program_count(shape, 32) == 4 * 2 * 3
    seen = [tiles.program_tile(pid, num_m, shape.h, causal) for pid in range(tiles.program_count(shape, 32))]
    assert sorted(seen) == sorted((m, b, h) for m in range(4) for b in range(2) for h in range(3))  # each once
    first_head = [m for m, b, h in seen[:num_m]]
    assert {(b, h) for _, b, h in seen[:num_m]} == {(0, 0)}  # consecutive programs share a head
    assert first_head == ([3, 2, 1, 0] if causal else [0, 1, 2, 3])  # causal: the longest first


@pytest.mark.parametrize(("s", "block_m", "block_n"), [(1, 16, 16), (17, 32, 16), (100, 64, 32), (129, 64, 64)])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_key_ranges_split_the_visible_keys_into_unmasked_and_masked_blocks(
    s: int, block_m: int, block_n: int, causal: bool
) -> None:
    for m_block in range(tiles.query_blocks(s, block_m)):
        m0 = m_block * block_m
        unmasked_end, masked_end = tiles.key_ranges(m0, s, block_m, block_n, causal)
        assert unmasked_end % block_n == 0 and unmasked_end <= masked_end <= s
        queries = [i for i in range(m0, m0 + block_m) if i < s]
        for i in queries:
            visible = set(range(i + 1)) if causal else set(range(s))
            assert visible <= set(range(masked_end)), (i, masked_end)  # nothing visible is left out
            assert set(range(unmasked_end)) <= visible  # the unmasked blocks need no mask for any query
        loaded = -(-(masked_end - unmasked_end) // block_n) * block_n if masked_end > unmasked_end else 0
        assert loaded <= (block_m if causal else block_n)  # causal: only the diagonal is masked
        if causal:
            assert masked_end <= m0 + block_m  # stops at the diagonal: no key after the block's last query


# ---------------------------------------------------------------- the kernel's programs, emulated in NumPy


def emulate(job: Job, config: tiles.TileConfig, fault: str | None = None) -> np.ndarray:
    """The kernel's programs in NumPy (float64, P and O rounded to the element type as the kernel rounds them),
    using tiles.py's index math: each program's query block, its key loops (unmasked, then masked), Q, K, V read
    from the layout's flat memory through tiles.layout_strides (zero past S and past D up to BLOCK_D), and the output
    written through the same strides. `fault`: drop_causal (the masked loop ignores the causal mask), drop_tail (the
    non-causal masked loop is skipped), no_rescale (alpha = 1). Each output element must be written exactly once,
    and no NaN may arise (np.errstate raises on -inf - -inf)."""
    shape, element = job.shape, job.dtype.element
    bm, bn = config.block_m, config.block_n
    sb, sh, ss = tiles.layout_strides(job.layout, shape)
    flat = {name: job.inputs[name].ravel().astype(np.float64) for name in ("q", "k", "v")}
    out = np.full(flat["q"].size, np.nan)
    block_d = tiles.padded_head_dim(shape.d)
    scale = tiles.softmax_scale_log2(shape.d)
    num_m = tiles.query_blocks(shape.s, bm)

    def rows(name: str, base: int, index: np.ndarray) -> np.ndarray:
        tile = np.zeros((len(index), block_d))
        for r, i in enumerate(index):
            if i < shape.s:
                tile[r, : shape.d] = flat[name][base + i * ss : base + i * ss + shape.d]
        return tile

    with np.errstate(invalid="raise"):
        for pid in range(tiles.program_count(shape, bm)):
            m_block, b, h = tiles.program_tile(pid, num_m, shape.h, shape.causal)
            base, m0 = b * sb + h * sh, m_block * bm
            offs_m = m0 + np.arange(bm)
            q = rows("q", base, offs_m)
            m_i, l_i, acc = np.full(bm, -np.inf), np.zeros(bm), np.zeros((bm, block_d))
            unmasked_end, masked_end = tiles.key_ranges(m0, shape.s, bm, bn, shape.causal)
            for lo, hi, masked in ((0, unmasked_end, False), (unmasked_end, masked_end, True)):
                if masked and fault == "drop_tail" and not shape.causal:
                    continue
                for n0 in range(lo, hi, bn):
                    keys = n0 + np.arange(bn)
                    scores = q @ rows("k", base, keys).T * scale
                    if masked:
                        visible = keys[None, :] < shape.s
                        if shape.causal and fault != "drop_causal":
                            visible = visible & (keys[None, :] <= offs_m[:, None])
                        scores = np.where(visible, scores, -np.inf)
                    else:
                        assert keys.max() < shape.s  # the unmasked loop never reads past S
                    m_new = np.maximum(m_i, scores.max(axis=1))
                    alpha = np.ones(bm) if fault == "no_rescale" else np.exp2(m_i - m_new)
                    p = np.exp2(scores - m_new[:, None])
                    l_i = l_i * alpha + p.sum(axis=1)
                    acc = acc * alpha[:, None] + round_to(p, element).astype(np.float64) @ rows("v", base, keys)
                    m_i = m_new
            o = round_to(acc / l_i[:, None], element)
            for r, i in enumerate(offs_m):
                if i < shape.s:
                    where = slice(base + i * ss, base + i * ss + shape.d)
                    assert np.isnan(out[where]).all()  # written once
                    out[where] = o[r, : shape.d]
    assert not np.isnan(out).any()  # written everywhere
    return out.reshape(job.inputs["q"].shape)


def verdict(job: Job, output: np.ndarray) -> Any:
    key = BACKEND.tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


EMULATED = [
    ("b1_h2_s1_d64", (16, 16)), ("b2_h1_s17_d40", (32, 16)), ("b1_h2_s100_d64", (64, 32)),
    ("b1_h1_s129_d16", (32, 32)), ("b1_h1_s127_d80", (64, 16)),
]  # fmt: skip


@pytest.mark.parametrize("layout", sorted(INPUT_PERM))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize(("shape", "blocks"), EMULATED, ids=[s for s, _ in EMULATED])
def test_the_emulated_kernel_passes_the_verdict(
    shape: str, blocks: tuple, dtype: str, causal: bool, layout: str
) -> None:
    job = make_job(shape + ("_causal" if causal else ""), dtype, layout)
    config = tiles.TileConfig(block_m=blocks[0], block_n=blocks[1], num_warps=4, num_stages=2)
    output = emulate(job, config)
    assert output.shape == OP.output_shape(job.shape, layout)
    result = verdict(job, output)
    assert result.status == "PASS", result.reason


@pytest.mark.parametrize("layout", sorted(INPUT_PERM))
@pytest.mark.parametrize(
    ("fault", "shape"),
    [("drop_causal", "b1_h2_s100_d64_causal"), ("drop_tail", "b1_h2_s100_d64"), ("no_rescale", "b1_h2_s100_d64")],
)
def test_an_emulated_kernel_with_a_bug_fails_the_verdict(fault: str, shape: str, layout: str) -> None:
    """The verdict catches what the kernel's masks and rescaling are for (the same inputs PASS without the bug)."""
    job = make_job(shape, "f16", layout)
    config = tiles.TileConfig(block_m=64, block_n=32, num_warps=4, num_stages=2)  # S = 100: a partial key block
    assert verdict(job, emulate(job, config)).status == "PASS"
    result = verdict(job, emulate(job, config, fault))
    assert result.status == "FAIL", result


# ---------------------------------------------------------------- the launch wiring, with a stand-in kernel


class FakeTensor:
    def __init__(self, shape: tuple[int, ...], dtype: str = "float16") -> None:
        self.shape, self.dtype, self.device = shape, dtype, "cuda"

    def clone(self) -> FakeTensor:
        return FakeTensor(self.shape, self.dtype)


class FakeKernel:
    """`kernel[grid](*args, **constants)` recorded; returns a stand-in CompiledKernel."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[tuple, tuple, dict]] = []
        self.error = error

    def __getitem__(self, grid: tuple) -> Any:
        def launch(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                raise self.error
            self.calls.append((grid, args, kwargs))
            return types.SimpleNamespace(asm={}, metadata=None)

        return launch


def fake_attention(job: Job) -> launch.Attention:
    torch = types.SimpleNamespace(empty=lambda shape, dtype, device: FakeTensor(tuple(shape), dtype))
    q = FakeTensor(job.inputs["q"].shape)
    return launch.Attention(job=job, torch=torch, triton=types.SimpleNamespace(__version__="3.6.0"),
                            sets=[(q, q.clone(), q.clone())], capability=(9, 0))  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "layout", "strides", "block_d", "even_d"),
    [
        ("b2_h3_s100_d64_causal", "bshd", (100 * 3 * 64, 64, 3 * 64), 64, True),
        ("b1_h2_s17_d40", "bhsd", (2 * 17 * 40, 17 * 40, 40), 64, False),
    ],
)
def test_a_launch_passes_the_layouts_strides_and_the_tiles_constants(
    shape: str, layout: str, strides: tuple, block_d: int, even_d: bool
) -> None:
    job = make_job(shape, "f16", layout)
    attn = fake_attention(job)
    kernel = FakeKernel()
    config = tiles.TileConfig(block_m=64, block_n=32, num_warps=8, num_stages=3)
    launcher = launch.Launcher(attn, "m64_n32_w8_s3", config, kernel)
    out = launcher.launch(0)
    assert out.shape == job.inputs["q"].shape  # O stored like Q, in the layout's order
    ((grid, args, kwargs),) = kernel.calls
    s = job.shape
    assert grid == (-(-s.s // 64) * s.b * s.h,)
    q, k, v, o = args[:4]
    assert (q, k, v) == attn.sets[0] and o is out
    assert args[4:] == (s.h, s.s, s.d, *strides, tiles.softmax_scale_log2(s.d), -(-s.s // 64))
    assert kwargs == {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_D": block_d, "CAUSAL": s.causal, "EVEN_D": even_d,
                      "num_warps": 8, "num_stages": 3}  # fmt: skip
    assert launcher.compiled is not None and launcher.describe()["strides"] == list(strides)


def test_a_configuration_that_does_not_fit_is_an_error_naming_it() -> None:
    class OutOfResources(Exception):
        pass

    job = make_job("b1_h1_s64_d256")
    kernel = FakeKernel(OutOfResources("out of resource: shared memory, Required: 262144, Hardware limit: 232448"))
    config = tiles.TileConfig(block_m=128, block_n=128, num_warps=8, num_stages=4)
    launcher = launch.Launcher(fake_attention(job), "m128_n128_w8_s4", config, kernel)
    with pytest.raises(RuntimeError, match=r"variant m128_n128_w8_s4 .* head dim 256 .*Required: 262144"):
        launcher.checked_launch()
    other = launch.Launcher(fake_attention(job), "x", config, FakeKernel(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):  # anything else is not dressed up
        other.checked_launch()


# ---------------------------------------------------------------- the autotune search


def test_autotune_keeps_the_fastest_and_records_those_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {
        "fast": tiles.TileConfig(**CONFIG),
        "slow": tiles.TileConfig(**{**CONFIG, "block_n": 64}),
        "oom": tiles.TileConfig(**{**CONFIG, "block_m": 256}),
    }
    times = {32: 1.0, 64: 2.0}

    class OutOfResources(Exception):
        pass

    def time_config(attn: Any, launcher: Any, settings: BenchSettings) -> tuple[None, float]:
        assert settings == launch.AUTOTUNE_SETTINGS
        if launcher.config.block_m == 256:
            raise OutOfResources("out of resource: shared memory")
        return None, times[launcher.config.block_n]

    monkeypatch.setattr(launch, "time_config", time_config)
    attn = types.SimpleNamespace(launcher=lambda name, config: types.SimpleNamespace(config=config))
    result = launch.search(attn, configs)  # type: ignore[arg-type]
    assert result["chosen"] == "fast"
    by_name = {c["name"]: c for c in result["candidates"]}
    assert by_name["slow"]["ms"] == 2.0 and by_name["fast"]["ms"] == 1.0
    assert by_name["oom"]["ms"] is None and "OutOfResources" in by_name["oom"]["reason"]
    monkeypatch.setattr(launch, "time_config", lambda *a: (_ for _ in ()).throw(OutOfResources("smem")))
    with pytest.raises(RuntimeError, match="no autotune candidate runs this problem"):
        launch.search(attn, configs)  # type: ignore[arg-type]


def test_the_autotune_choice_is_stored_per_problem_and_found_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    searches = []

    def search(attn: Any, configs: dict) -> dict:
        searches.append(attn.job.layout)
        return {"chosen": "b", "candidates": [{"name": "a", "ms": 2.0}, {"name": "b", "ms": 1.0}]}

    monkeypatch.setattr(launch, "search", search)
    torch = types.SimpleNamespace(__version__="2.11.0", cuda=types.SimpleNamespace(get_device_name=lambda: "H100"))
    configs = {"a": tiles.TileConfig(**CONFIG), "b": tiles.TileConfig(**{**CONFIG, "block_n": 64})}

    def attn(layout: str) -> Any:
        return types.SimpleNamespace(job=make_job("b1_h2_s100_d64", "bf16", layout), torch=torch, capability=(9, 0),
                                     triton=types.SimpleNamespace(__version__="3.6.0"))  # fmt: skip

    first = launch.autotuned(attn("bhsd"), configs)
    assert first["chosen"] == "b" and first["source"] == "searched"
    again = launch.autotuned(attn("bhsd"), configs)
    assert again["chosen"] == "b" and again["source"].startswith("stored") and searches == ["bhsd"]
    assert launch.autotuned(attn("bshd"), configs)["source"] == "searched"  # another layout, another search
    stored = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert [re.sub(r"-[0-9a-f]{16}\.json$", "", p) for p in stored] == [
        "compiled/triton-attention/autotune/bf16/bhsd/b1_h2_s100_d64",
        "compiled/triton-attention/autotune/bf16/bshd/b1_h2_s100_d64",
    ]
    key = functools.partial(autotune_key, kernel=launch.KERNEL_SOURCE, timing=launch.AUTOTUNE_SETTINGS)
    fewer = key(attn("bhsd"), {"a": configs["a"]})
    assert fewer != key(attn("bhsd"), configs)  # the candidates are part of the key


# ---------------------------------------------------------------- a benchmark's record fields


def test_a_benchmark_records_the_triton_and_pytorch_versions_and_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    job = make_job("b2_h1_s257_d128_causal")
    attn = fake_attention(job)
    attn.torch.__version__ = "2.11.0"
    attn.torch.cuda = types.SimpleNamespace(get_device_properties=lambda i: types.SimpleNamespace(name="NVIDIA H100"))
    launcher = launch.Launcher(attn, "m128_n64_w4_s3", tiles.TileConfig(**{**CONFIG, "block_m": 128, "block_n": 64}),
                               FakeKernel())  # fmt: skip
    launcher.launch(0)
    detail = {"config_name": "m128_n64_w4_s3", "autotune": {"chosen": "m128_n64_w4_s3", "source": "searched"}}
    monkeypatch.setattr(launch, "prepare", lambda job, flush: (attn, launcher, None, dict(detail)))
    timing = types.SimpleNamespace(method="CUDA events around a CUDA-graph replay of 40 attention calls")
    monkeypatch.setattr(launch, "time_graph", lambda *a, **k: timing)
    timed = {"samples_ms": [1.0, 1.1], "inner": 40, "buffer_copies": 4, "method": timing.method,
             "bench_output_consistent": True}  # fmt: skip
    monkeypatch.setattr(launch, "verified_timing", lambda t, fresh, dtype: dict(timed))
    monkeypatch.setattr(launch, "kernel_facts", lambda compiled: {"wgmma": True, "smem_buffers": [2, 2]})
    result = launch.benchmark(job, BenchSettings(warmup_ms=1, repetitions=2, min_sample_ms=1, flush_l2=True))
    assert result["method"] == (
        "CUDA events around a CUDA-graph replay of 40 attention calls; Triton 3.6.0 fused attention m128_n64_w4_s3 "
        "(wgmma, 2 smem buffers)"
    )
    assert (result["torch"], result["triton"], result["chosen"], result["device"]) == (
        "2.11.0", "3.6.0", "m128_n64_w4_s3", "NVIDIA H100",
    )  # fmt: skip
    assert result["detail"]["autotune"]["source"] == "searched" and result["detail"]["triton"] == "3.6.0"
    assert result["detail"]["grid"] == [3 * 2] and result["detail"]["block_d"] == 128
    record = make_record(status="PASS", timing_method=result["method"], torch=result["torch"], chosen=result["chosen"])
    assert "Triton 3.6.0" in record["timing_method"] and record["torch"] == "2.11.0"


# ---------------------------------------------------------------- config/attention.yaml


def test_config_attention_yaml_runs_the_autotune_variant_on_the_grid_and_its_rows_are_skip_here(raw: dict) -> None:
    config = copy.deepcopy(raw)
    update_config(config, yaml.safe_load((REPO / "config" / "attention.yaml").read_text()))
    points = [p for p in expand(validate(config)) if p.backend == NAME]
    layers = [layer["name"] for layer in config["suites"]["attention_fa2"]["layers"]]
    got = {(p.variant, p.dtype, p.layout, p.layer) for p in points}
    bhsd = {("autotune", d, "bhsd", layer) for d in ("f16", "bf16") for layer in layers}
    bshd = {("autotune", "f16", "bshd", layer) for layer in layers if "s2048" in layer}
    assert got == bhsd | bshd and len(bshd) == 4
    everywhere = {name: Availability(runs=True, compiles=True) for name in config["backends"]}
    assert not skip_reasons(points, everywhere)  # the kernel implements every point
    here = {name: availability(get_backend(name), {"cpu"}) for name in config["backends"]}
    assert set(skip_reasons(points, here).values()) == {"no cuda device on this machine"}


# ---------------------------------------------------------------- the kernel in Triton's interpreter


def interpreter_missing() -> str | None:
    for module in ("torch", "triton"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable here (not a project dependency): the interpreter test needs both"
    return None


@pytest.mark.skipif(interpreter_missing() is not None, reason=str(interpreter_missing()))
def test_the_kernel_in_tritons_interpreter() -> None:
    """The real kernel on the CPU (TRITON_INTERPRET=1, set before Triton is imported: a fresh process), f16, both
    layouts, causal and not, partial query and key blocks and a padded head dim, judged with the workflow's
    verdict."""
    script = """
import sys
import numpy as np, torch
from opbench.backends.triton_attention import tiles
from opbench.backends.triton_attention.kernel import attention_fwd
from opbench.dtypes import get_dtype
from opbench.jobs import judge_job
from opbench.backends import Job
from opbench.ops import get_op
op = get_op("attention")
for name in sys.argv[1:]:
    for layout in ("bhsd", "bshd"):
        shape, dtype = op.shape_from_name(name), get_dtype("f16")
        inputs = op.make_inputs(shape, dtype, layout, 5)
        q, k, v = (torch.from_numpy(inputs[n]).to(torch.float16) for n in ("q", "k", "v"))
        o = torch.empty_like(q)
        bm, bn, bd = 32, 16, tiles.padded_head_dim(shape.d)
        num_m = tiles.query_blocks(shape.s, bm)
        attention_fwd[(tiles.program_count(shape, bm),)](q, k, v, o, shape.h, shape.s, shape.d,
            *tiles.layout_strides(layout, shape), tiles.softmax_scale_log2(shape.d), num_m, BLOCK_M=bm, BLOCK_N=bn,
            BLOCK_D=bd, CAUSAL=shape.causal, EVEN_D=bd == shape.d)
        job = Job(op="attention", shape=shape, dtype=dtype, layout=layout, variant="x", inputs=inputs,
                  artifact=None, options={})
        result = judge_job(job, o.float().numpy(), 5e-3, "f16")
        assert result.status == "PASS", (name, layout, result.reason)
print("ok")
"""
    shapes = ["b1_h2_s1_d16", "b2_h1_s37_d40_causal", "b1_h2_s50_d32", "b1_h1_s70_d16_causal"]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", script, *shapes], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
