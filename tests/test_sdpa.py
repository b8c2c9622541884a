"""The sdpa backend (PyTorch's scaled_dot_product_attention, one SDPA backend forced per variant) without a GPU or
PyTorch: the variants and settings schema, SKIP reasons per variant and dtype, the layouts' permutations, the whole
run path and the check of the timed outputs through a NumPy stand-in for torch (sys.modules), a refusal turned into
an error naming the variant, and config/attention.yaml's sdpa rows. The GPU paths are tests/test_gpu_attention.py's.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import math
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import ml_dtypes
import numpy as np
import pytest
import yaml

from opbench.backends import Availability, BenchSettings, Job, Problem, availability, get_backend
from opbench.backends import sdpa as sdpa_module
from opbench.backends.sdpa import (
    FROM_BHSD,
    TO_BHSD,
    VARIANTS,
    SdpaKernelUnavailable,
    torch_missing,
    unavailable_message,
)
from opbench.config import ConfigError, load, validate
from opbench.dtypes import DTYPES, get_dtype
from opbench.gpu_timing import TIMED_OUTPUT_DIFFERS, GraphTiming
from opbench.jobs import judge_job
from opbench.matrix import expand, skip_reasons
from opbench.ops import get_op
from opbench.ops.attention.layouts import INPUT_PERM
from opbench.shapes import inverse

REPO = Path(__file__).resolve().parent.parent
SDPA = get_backend("sdpa")
OP = get_op("attention")
# Written out independently of the module: the SDPBackend each variant forces and the dtypes it implements.
FORCED = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION"}
IMPLEMENTS = {"flash": {"f16", "bf16"}, "cudnn": {"f16", "bf16"}, "efficient": {"f32", "f16", "bf16"}}
TOLERANCES = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}  # config.yaml's


def problem(dtype: str = "f16", layout: str = "bhsd", shape: str = "b2_h3_s37_d16", op: str = "attention") -> Problem:
    the_shape = get_op(op).shape_from_name(shape)
    return Problem(op=op, shape=the_shape, dtype=get_dtype(dtype), layout=layout)


def make_job(variant: str, shape: str, dtype: str, layout: str, seed: int = 5) -> Job:
    the_shape, the_dtype = OP.shape_from_name(shape), get_dtype(dtype)
    return Job(
        op="attention", shape=the_shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=OP.make_inputs(the_shape, the_dtype, layout, seed), artifact=None, options={},
    )  # fmt: skip


# ---------------------------------------------------------------- variants, schema, SKIP reasons


def test_variants_force_one_sdpa_backend_each_with_its_dtypes() -> None:
    assert set(VARIANTS) == set(FORCED)
    for name, spec in VARIANTS.items():
        assert spec.backend == FORCED[name]
        assert set(spec.dtypes) == IMPLEMENTS[name]
    assert SDPA.name == "sdpa" and SDPA.device == "cuda" and SDPA.build_scope == "none"


def test_importing_the_backend_needs_no_torch() -> None:
    # This machine has no PyTorch: the package imported, the backend registered, and torch is still not imported.
    if torch_missing() is None:
        pytest.skip("PyTorch is installed here")
    assert "torch" not in sys.modules
    assert SDPA.requirement_missing() == torch_missing() and "PyTorch is not installed" in str(torch_missing())


def test_settings_schema_takes_the_three_variants_and_nothing_else() -> None:
    schema = SDPA.settings_schema
    jsonschema.validate({"variants": {v: [] for v in FORCED}}, schema)
    jsonschema.validate({"variants": {"efficient": []}}, schema)
    for bad in (
        {"variants": {"math": []}}, {"variants": {"flash": ["--fast"]}}, {"variants": {}}, {},
        {"variants": {"flash": []}, "target": "sm_90"},
    ):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_config_yaml_declares_the_variants_and_keeps_them_out_of_the_default_matrix() -> None:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    assert set(raw["backends"]["sdpa"]["variants"]) == set(FORCED)
    assert all("sdpa" not in entry["backends"] for entry in raw["matrix"])


def test_the_config_names_an_unknown_sdpa_variant() -> None:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["backends"]["sdpa"]["variants"]["math"] = []
    with pytest.raises(ConfigError, match=r"backends\.sdpa"):
        validate(bad)
    flags = copy.deepcopy(raw)
    flags["backends"]["sdpa"]["variants"]["flash"] = ["-O3"]
    with pytest.raises(ConfigError, match=r"backends\.sdpa"):
        validate(flags)


@pytest.mark.parametrize("variant", sorted(FORCED))
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_unsupported_names_the_variant_for_a_dtype_it_does_not_implement(variant: str, dtype: str, layout: str) -> None:
    reason = SDPA.unsupported(problem(dtype, layout), variant)
    if dtype in IMPLEMENTS[variant]:
        assert reason is None
    else:
        assert reason is not None
        assert f"sdpa {variant}" in reason and FORCED[variant] in reason and f"not {dtype}" in reason


def test_unsupported_other_ops_and_flash_head_dims_over_256() -> None:
    conv = problem("f16", "nhwc_fhwc", "n1_h8_w8_c4_k4_r3_s3_st1_p1", op="conv2d")
    for variant in FORCED:
        assert "attention only" in str(SDPA.unsupported(conv, variant))
    wide = problem("f16", "bhsd", "b1_h1_s64_d512")
    assert "head dims up to 256" in str(SDPA.unsupported(wide, "flash"))
    assert SDPA.unsupported(wide, "efficient") is None and SDPA.unsupported(wide, "cudnn") is None
    assert SDPA.unsupported(problem("bf16", "bshd", "b1_h1_s64_d256"), "flash") is None
    with pytest.raises(ValueError, match="unknown sdpa variant"):
        SDPA.unsupported(problem(), "math")


@pytest.mark.parametrize("variant", sorted(FORCED))
def test_tolerance_is_the_dtypes_and_every_variant_is_one_baseline(variant: str) -> None:
    for dtype in IMPLEMENTS[variant]:
        assert SDPA.tolerance_key(get_dtype(dtype), variant) == dtype
    assert SDPA.baseline_class(variant) == "PyTorch SDPA"


def test_without_a_gpu_the_rows_are_skip() -> None:
    assert availability(SDPA, {"cpu"}) == Availability(
        runs=False, compiles=False, reason="no cuda device on this machine"
    )


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", sorted(INPUT_PERM))
def test_layout_permutations_give_sdpas_bhsd_view_and_the_layouts_output(layout: str) -> None:
    shape = OP.shape_from_name("b2_h3_s5_d4")
    inputs = OP.make_inputs(shape, get_dtype("f32"), layout, seed=1)
    q = inputs["q"]
    logical = q.transpose(TO_BHSD[layout])
    assert logical.shape == shape.qkv_shape_bhsd()
    assert np.array_equal(logical.transpose(FROM_BHSD[layout]), q)
    assert TO_BHSD[layout] == inverse(INPUT_PERM[layout])
    # the reference of the canonical inputs, put back in the layout's order, is the op's reference in that layout
    canonical = {name: a.transpose(TO_BHSD[layout]) for name, a in inputs.items()}
    expected = OP.reference(inputs, shape, layout)
    got = np.ascontiguousarray(OP.reference(canonical, shape, "bhsd").transpose(FROM_BHSD[layout]))
    np.testing.assert_array_equal(got, expected)
    assert OP.output_shape(shape, layout) == tuple(shape.qkv_shape_bhsd()[i] for i in FROM_BHSD[layout])


def test_bshd_is_sdpas_transpose_of_heads_and_sequence() -> None:
    assert TO_BHSD == {"bhsd": (0, 1, 2, 3), "bshd": (0, 2, 1, 3)}  # q.transpose(1, 2)


# ---------------------------------------------------------------- the run path through a NumPy stand-in for torch


class FakeTensor:
    """The few Tensor methods the backend uses, on a NumPy array (views stay views, as in torch)."""

    def __init__(self, array: np.ndarray) -> None:
        self.a = array

    @property
    def shape(self) -> tuple[int, ...]:
        return self.a.shape

    def to(self, *, device: str, dtype: Any) -> FakeTensor:
        assert device == "cuda"
        return FakeTensor(np.ascontiguousarray(self.a.astype(dtype)))

    def permute(self, dims: tuple[int, ...]) -> FakeTensor:
        return FakeTensor(self.a.transpose(dims))

    def clone(self) -> FakeTensor:
        return FakeTensor(self.a.copy())

    def float(self) -> FakeTensor:
        return FakeTensor(self.a.astype(np.float32))

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.a

    def element_size(self) -> int:
        return self.a.itemsize


class FakeTorch:
    """torch, torch.nn and torch.nn.attention as the backend imports them; SDPA in float64 NumPy, each call
    recorded with the backend forced around it. `refuse`: warn PyTorch's way and raise "No available kernel"."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.forced: list[Any] = []
        self.refuse = refuse
        self.SDPBackend = enum.Enum("SDPBackend", ["MATH", *FORCED.values()])
        torch = types.ModuleType("torch")
        torch.__version__ = "0.0-fake"
        torch.float16, torch.bfloat16, torch.float32 = np.float16, ml_dtypes.bfloat16, np.float32
        torch.from_numpy = FakeTensor
        torch.cuda = types.SimpleNamespace(
            synchronize=lambda: None,
            get_device_properties=lambda i: types.SimpleNamespace(name="Fake GPU", L2_cache_size=4096),
        )
        torch.backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(enabled=False, version=lambda: 91000))
        nn = types.ModuleType("torch.nn")
        nn.functional = types.SimpleNamespace(scaled_dot_product_attention=self.sdpa)
        attention = types.ModuleType("torch.nn.attention")
        attention.SDPBackend, attention.sdpa_kernel = self.SDPBackend, self.sdpa_kernel
        torch.nn, nn.attention = nn, attention
        self.modules = {"torch": torch, "torch.nn": nn, "torch.nn.attention": attention}

    @contextlib.contextmanager
    def sdpa_kernel(self, backend: Any) -> Iterator[None]:
        self.forced.append(backend)
        try:
            yield
        finally:
            self.forced.pop()

    def sdpa(self, q: FakeTensor, k: FakeTensor, v: FakeTensor, **kwargs: Any) -> FakeTensor:
        self.calls.append({"forced": list(self.forced), "kwargs": kwargs, "q": q.a})
        if self.refuse:
            warnings.warn(self.refuse, UserWarning, stacklevel=2)
            raise RuntimeError("No available kernel. Aborting execution.")
        qf, kf, vf = (np.asarray(t.a, dtype=np.float64) for t in (q, k, v))
        scores = qf @ kf.transpose(0, 1, 3, 2) / math.sqrt(qf.shape[-1])  # SDPA's default scale
        if kwargs.get("is_causal"):
            s = scores.shape[-1]
            scores = np.where(np.arange(s)[None, :] <= np.arange(s)[:, None], scores, -np.inf)
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        out = (p / p.sum(axis=-1, keepdims=True)) @ vf
        return FakeTensor(out.astype(q.a.dtype))


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> FakeTorch:
    fake = FakeTorch()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def verdict(job: Job, output: np.ndarray) -> Any:
    key = SDPA.tolerance_key(job.dtype, job.variant)
    return judge_job(job, output, TOLERANCES[key], key)


@pytest.mark.parametrize("shape", ["b2_h3_s37_d16", "b2_h3_s37_d16_causal"])
@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
@pytest.mark.parametrize(("variant", "dtype"), [("flash", "f16"), ("cudnn", "bf16"), ("efficient", "f32")])
def test_run_forces_the_variant_on_bhsd_views_and_returns_the_layouts_output(
    fake_torch: FakeTorch, variant: str, dtype: str, layout: str, shape: str
) -> None:
    job = make_job(variant, shape, dtype, layout)
    output = SDPA.run(job)
    assert output.dtype == np.float32 and output.shape == OP.output_shape(job.shape, layout)
    assert verdict(job, output).status == "PASS"
    (call,) = fake_torch.calls
    assert call["forced"] == [getattr(fake_torch.SDPBackend, FORCED[variant])]
    assert call["kwargs"] == {"is_causal": job.shape.causal}  # the default scale: none passed
    assert call["q"].shape == job.shape.qkv_shape_bhsd()
    # bshd memory reaches SDPA as a strided [B,H,S,D] view, no copy in the layout's order
    assert call["q"].flags.c_contiguous == (layout == "bhsd")
    assert fake_torch.modules["torch"].backends.cudnn.enabled is True


def test_a_dropped_causal_mask_fails_the_verdict(fake_torch: FakeTorch) -> None:
    causal = make_job("flash", "b1_h2_s40_d16_causal", "f16", "bshd")
    dropped = Job(**{**causal.__dict__, "shape": OP.shape_from_name("b1_h2_s40_d16")})
    assert verdict(causal, SDPA.run(causal)).status == "PASS"
    assert verdict(causal, SDPA.run(dropped)).status == "FAIL"


def test_a_refused_backend_raises_an_error_naming_the_variant_and_pytorchs_reasons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTorch(refuse="Flash attention requires q,k,v to have the same last dimension and to be <= 256")
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    job = make_job("flash", "b1_h1_s9_d16", "f16", "bhsd")
    with pytest.raises(SdpaKernelUnavailable) as error:
        SDPA.run(job)
    message = str(error.value)
    assert "sdpa flash (SDPBackend.FLASH_ATTENTION) cannot run attention b1_h1_s9_d16 f16 bhsd" in message
    assert "No available kernel" in message and "to be <= 256" in message
    with pytest.raises(SdpaKernelUnavailable):
        SDPA.benchmark(job, BenchSettings(warmup_ms=1, repetitions=2, min_sample_ms=1, flush_l2=True))


def test_unavailable_message_keeps_each_reason_once() -> None:
    message = unavailable_message("cudnn", "attention x", RuntimeError("No available kernel.\nmore"), ["a", "a", " b"])
    assert message == "sdpa cudnn (SDPBackend.CUDNN_ATTENTION) cannot run attention x: No available kernel.; " + (
        "PyTorch's reasons: a | b"
    )


def fake_time_graph(mangle: bool) -> Any:
    """time_graph's contract without CUDA: each buffer set launched once; its output kept (or, `mangle`, one element
    of the last set's changed, as a kernel racing its neighbour would)."""

    def time_graph(launch: Any, copies: int, settings: BenchSettings, noun: str = "", **kwargs: Any) -> GraphTiming:
        assert kwargs.get("poison_outputs") is True
        outputs = [launch(i) for i in range(copies)]
        if mangle:
            outputs[-1] = FakeTensor(outputs[-1].a.copy())
            outputs[-1].a.flat[3] += 1
        return GraphTiming(samples_ms=[0.5] * settings.repetitions, inner=7, copies=copies, method=f"fake {noun}",
                           outputs=outputs)  # fmt: skip

    return time_graph


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_benchmark_rotates_copies_checks_the_timed_outputs_and_records_versions(
    fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    monkeypatch.setattr(sdpa_module, "time_graph", fake_time_graph(mangle=False))
    job = make_job("efficient", "b1_h2_s12_d8_causal", "f16", layout)
    settings = BenchSettings(warmup_ms=1, repetitions=3, min_sample_ms=1, flush_l2=True)
    result = SDPA.benchmark(job, settings)
    # Q, K, V and O of 1*2*12*8 f16 each, 1536 bytes: twice a 4096-byte L2 takes 6 copies
    assert result["buffer_copies"] == 6 and result["samples_ms"] == [0.5] * 3
    assert result["bench_output_consistent"] is True and result["bench_check"]["bitwise_mismatches"] == 0
    assert result["torch"] == "0.0-fake" and result["cudnn"] == "91000" and result["device"] == "Fake GPU"
    assert result["sdpa_backend"] == "SDPBackend.EFFICIENT_ATTENTION"
    # every copy is a [B,H,S,D] view of the layout's memory, like the first
    assert all(c["q"].flags.c_contiguous == (layout == "bhsd") for c in fake_torch.calls)
    monkeypatch.setattr(sdpa_module, "time_graph", fake_time_graph(mangle=True))
    with pytest.raises(RuntimeError, match=TIMED_OUTPUT_DIFFERS):
        SDPA.benchmark(job, settings)


# ---------------------------------------------------------------- config/attention.yaml


def test_attention_config_runs_every_fa2_layer_on_each_variant_and_iree_cuda() -> None:
    config = load(REPO / "config" / "attention.yaml")
    points = expand(config)
    everywhere = {name: Availability(runs=True, compiles=True) for name in config["backends"]}
    unsupported = skip_reasons(points, everywhere)
    layers = [layer["name"] for layer in config["suites"]["attention_fa2"]["layers"]]
    assert len(layers) == 24
    sdpa_rows = [p for p in points if p.backend == "sdpa"]
    assert not [p for p in sdpa_rows if p in unsupported]
    got = {(p.variant, p.dtype, p.layout, p.layer) for p in sdpa_rows}
    bhsd = {(v, d, "bhsd", layer) for v in FORCED for d in ("f16", "bf16") for layer in layers}
    assert bhsd <= got
    bshd = {(v, d, lay, layer) for v, d, lay, layer in got if lay == "bshd"}
    assert bshd and {d for _, d, _, _ in bshd} == {"f16"} and {v for v, _, _, _ in bshd} == set(FORCED)
    assert got == bhsd | bshd and all(p.suite == "attention_fa2" for p in sdpa_rows)
    iree_cuda = {(p.variant, p.dtype, p.layout, p.layer) for p in points if p.backend == "iree-cuda"}
    assert iree_cuda == {("default", "f16", "bhsd", layer) for layer in layers}
    # here (no GPU) the sdpa rows are SKIP saying so; the iree-cuda rows build
    here = {name: availability(get_backend(name), {"cpu"}) for name in config["backends"]}
    reasons = skip_reasons(points, here)
    assert {reasons[p] for p in sdpa_rows} == {"no cuda device on this machine"}
    assert not [p for p in points if p.backend == "iree-cuda" and p in reasons]
