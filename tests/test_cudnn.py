"""The cudnn backend without a GPU: its three families of variants (PyTorch's pick, NVIDIA's frontend, PyTorch's own
depthwise kernel), the settings
schema, SKIP reasons, tolerance keys and baselines, the dispatch of run/benchmark to a family, the frontend's absence,
and the frontend path's pure parts (finding the libraries PyTorch loaded, the heuristic modes, judging and choosing a
candidate, the search in a child process under its deadline, a run job's choice kept for its benchmark job), and the
check of the timed outputs. The GPU paths are tests/test_gpu.py's."""

from __future__ import annotations

import copy
import enum
import importlib.util
import json
import pickle
import sys
import time
import types
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from opbench import phases
from opbench.backends import Availability, BenchSettings, Job, Problem, get_backend
from opbench.backends.cudnn import (
    FRONTEND_PREFIX,
    VARIANTS,
    common,
    frontend,
    frontend_missing,
    frontend_search,
    math_mode,
    pytorch,
)
from opbench.config import ConfigError, validate
from opbench.dtypes import get_dtype
from opbench.gpu_timing import TIMED_OUTPUT_DIFFERS, GraphTiming, verified_timing
from opbench.matrix import Point, skip_reasons
from opbench.ops import get_op

REPO = Path(__file__).resolve().parent.parent
CUDNN = get_backend("cudnn")
SHAPE = get_op("conv2d").shape_from_layer({"h": 9, "w": 7, "c": 3, "k": 5, "r": 3, "s": 3, "pad": 1}, 2)
MODES = ("fp32", "tf32", "fp16", "bf16")
MODE_DTYPE = {"fp32": "f32", "tf32": "f32", "fp16": "f16", "bf16": "bf16"}  # written out independently


def problem(dtype: str = "f32", layout: str = "nhwc_fhwc", op: str = "conv2d") -> Problem:
    return Problem(op=op, shape=SHAPE, dtype=get_dtype(dtype), layout=layout)


def depthwise_problem(dtype: str, layout: str) -> Problem:
    shape = get_op("depthwise_conv2d").shape_from_name("n2_h9_w7_c6_r3_s3_st1_p1")
    return Problem(op="depthwise_conv2d", shape=shape, dtype=get_dtype(dtype), layout=layout)


def job(variant: str, dtype: str = "f32") -> Job:
    return Job(
        op="conv2d", shape=SHAPE, dtype=get_dtype(dtype), layout="nhwc_fhwc", variant=variant, inputs={},
        artifact=None, options={},
    )  # fmt: skip


# ---------------------------------------------------------------- variants, schema, SKIP reasons


NATIVE_MODES = ("fp32", "fp16", "bf16")  # PyTorch's own depthwise kernel has no TF32 mode


def test_variants_are_the_math_modes_in_three_families() -> None:
    assert set(VARIANTS) == {*MODES, *(f"frontend_{m}" for m in MODES), *(f"native_{m}" for m in NATIVE_MODES)}
    assert len(VARIANTS) == 11 and FRONTEND_PREFIX == "frontend_"
    for mode in MODES:
        assert math_mode(mode) == mode and math_mode(f"frontend_{mode}") == mode
        assert not common.is_frontend(mode) and common.is_frontend(f"frontend_{mode}")
    for mode in NATIVE_MODES:
        assert math_mode(f"native_{mode}") == mode and common.is_native(f"native_{mode}")
        assert not common.is_native(mode) and not common.is_frontend(f"native_{mode}")
    for bad in ("fp64", "frontend_", "frontend_frontend_fp32", "FP32", "pytorch_fp32", "native_tf32", "native_"):
        with pytest.raises(ValueError, match="unknown cudnn variant"):
            math_mode(bad)


def test_settings_schema_takes_both_families_and_nothing_else() -> None:
    schema = CUDNN.settings_schema
    jsonschema.validate({"variants": {v: [] for v in VARIANTS}}, schema)
    jsonschema.validate({"variants": {"frontend_bf16": []}}, schema)
    for bad in ({"variants": {"frontend_fp64": []}}, {"variants": {"fp32": ["-O3"]}}, {"variants": {}}, {}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_the_config_validates_frontend_variants_and_names_an_unknown_one() -> None:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    assert {f"frontend_{m}" for m in MODES} <= set(raw["backends"]["cudnn"]["variants"])
    validate(copy.deepcopy(raw))
    raw["backends"]["cudnn"]["variants"]["frontend_fp8"] = []
    with pytest.raises(ConfigError, match="cudnn"):
        validate(raw)


@pytest.mark.parametrize("variant", VARIANTS)
def test_unsupported_keeps_its_rules_for_every_family(variant: str) -> None:
    mode = math_mode(variant)
    native = variant.startswith("native_")
    for dtype in ("f32", "f16", "bf16"):
        for layout in ("nhwc_fhwc", "nchw_fchw"):
            reason = CUDNN.unsupported(problem(dtype, layout), variant)
            if native:
                assert reason == (
                    "PyTorch's own kernels are a baseline for depthwise_conv2d, separable_conv2d only, not conv2d"
                )
            elif dtype == MODE_DTYPE[mode]:
                assert reason is None
            else:
                assert reason == f"math mode {mode} is for {MODE_DTYPE[mode]} inputs, not {dtype}"
        for layout in ("nhwc_hwc", "nchw_chw"):  # depthwise: a grouped convolution, every family
            reason = CUDNN.unsupported(depthwise_problem(dtype, layout), variant)
            assert reason is None if dtype == MODE_DTYPE[mode] else reason.startswith(f"math mode {mode}")
    assert "nhwc_hwcf" in CUDNN.unsupported(depthwise_problem(MODE_DTYPE[mode], "nhwc_hwcf"), variant)
    assert CUDNN.unsupported(problem(MODE_DTYPE[mode], op="vector_add"), variant) == (
        "runs conv2d, depthwise_conv2d, separable_conv2d, not vector_add"
    )
    separable = Problem(
        op="separable_conv2d", shape=get_op("separable_conv2d").shape_from_name("n2_h9_w7_c6_k8_r3_s3_st1_p1"),
        dtype=get_dtype(MODE_DTYPE[mode]), layout="nhwc_hwc_kc",
    )  # fmt: skip
    expected = "the cuDNN frontend variants build one convolution, not separable_conv2d"
    assert CUDNN.unsupported(separable, variant) == (expected if variant.startswith("frontend_") else None)


@pytest.mark.parametrize("variant", VARIANTS)
def test_tolerance_key_and_baseline_follow_the_math_mode(variant: str) -> None:
    mode = math_mode(variant)
    dtype = get_dtype(MODE_DTYPE[mode])
    assert CUDNN.tolerance_key(dtype, variant) == ("tf32" if mode == "tf32" else MODE_DTYPE[mode])
    # PyTorch's pick, the frontend's engine and PyTorch's own kernel are candidates for the same baseline.
    assert CUDNN.baseline_class(variant) == f"cuDNN {mode}"


# ---------------------------------------------------------------- dispatch and the frontend's absence


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_and_benchmark_go_to_the_variants_family(monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    calls: list[tuple[str, str]] = []
    for name, module in (("pytorch", pytorch), ("frontend", frontend)):
        monkeypatch.setattr(module, "run", lambda j, name=name: calls.append((name, "run")) or np.zeros(1))
        monkeypatch.setattr(module, "benchmark", lambda j, s, name=name: calls.append((name, "bench")) or {})
    settings = BenchSettings(warmup_ms=1, repetitions=1, min_sample_ms=1, flush_l2=False)
    CUDNN.run(job(variant, MODE_DTYPE[math_mode(variant)]))
    CUDNN.benchmark(job(variant, MODE_DTYPE[math_mode(variant)]), settings)
    family = "frontend" if variant.startswith("frontend_") else "pytorch"  # native_: PyTorch with cuDNN off
    assert calls == [(family, "run"), (family, "bench")]


def test_without_the_frontend_its_variants_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cudnn" else real(name, *a))
    monkeypatch.setattr(frontend, "_FRONTEND", None)
    message = "nvidia-cudnn-frontend is not installed: pip install 'opbench[cudnn-frontend]'"
    assert frontend_missing() == message
    with pytest.raises(RuntimeError) as info:
        CUDNN.run(job("frontend_fp32"))
    assert str(info.value) == message
    with pytest.raises(RuntimeError, match="not installed"):
        CUDNN.benchmark(job("frontend_fp16", "f16"), BenchSettings(warmup_ms=1, repetitions=1, min_sample_ms=1,
                                                                   flush_l2=False))  # fmt: skip
    # The backend's requirement stays PyTorch's: the frontend's absence is no reason to skip PyTorch's variants.
    assert CUDNN.requirement_missing() in (None, "PyTorch is not installed (pip install torch, a CUDA build)")


def test_without_the_frontend_its_rows_are_skip_rows_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where cuDNN runs (PyTorch, a GPU) but the frontend is absent, its variants' points have no job: SKIP rows
    with the reason; PyTorch's pick still runs."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cudnn" else real(name, *a))
    points = [
        Point(op="conv2d", suite="tiny", layer="a", count=1, batch=2, shape=SHAPE.name, dtype="f16",
              layout="nhwc_fhwc", backend="cudnn", variant=variant)
        for variant in ("fp16", "frontend_fp16")
    ]  # fmt: skip
    reasons = skip_reasons(points, {"cudnn": Availability(runs=True, compiles=True)})
    assert reasons == {points[1]: "nvidia-cudnn-frontend is not installed: pip install 'opbench[cudnn-frontend]'"}
    # where cuDNN cannot run at all, the backend's own reason applies to both
    absent = Availability(runs=False, compiles=False, reason="no cuda device on this machine")
    assert set(skip_reasons(points, {"cudnn": absent}).values()) == {"no cuda device on this machine"}


def test_the_frontend_is_found_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_loader("cudnn", loader=None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "cudnn" else real(name, *a))
    assert frontend_missing() is None


# ---------------------------------------------------------------- the frontend path's pure parts

LIB = "/venv/lib/python3.12/site-packages/nvidia/cu13/lib"
MAPS = f"""\
7f0000000000-7f0000001000 r--p 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000100000 r-xp 00000000 08:01 2345 {LIB}/libcudnn_graph.so.9
7f2000000000-7f2000100000 r-xp 00000000 08:01 3456 {LIB}/libcudnn.so.9
7f3000000000-7f3000100000 r-xp 00000000 08:01 4567 /opt/my libs/libcudart.so.13.0.96
7f4000000000-7f4000001000 rw-p 00000000 00:00 0
7f5000000000-7f5000001000 rw-p 00000000 00:00 0 [heap]
"""


def test_loaded_library_finds_the_files_torch_mapped() -> None:
    assert frontend.loaded_library(MAPS, "libcudnn") == f"{LIB}/libcudnn.so.9"  # not libcudnn_graph
    assert frontend.loaded_library(MAPS, "libcudart") == "/opt/my libs/libcudart.so.13.0.96"  # a path with a space
    assert frontend.loaded_library(MAPS, "libcublas") is None
    assert frontend.loaded_library(MAPS.replace("libcudnn.so.9", "libcudnn.so.9.bak"), "libcudnn") is None
    assert frontend.loaded_library("", "libcudnn") is None


def test_heuristic_modes_are_every_member_but_the_delegating_one() -> None:
    heur_mode = enum.Enum("heur_mode", ["A", "B", "FALLBACK", "OPENSOURCE", "SOMETHING_NEW"])
    assert [m.name for m in frontend.heuristic_modes(heur_mode)] == ["A", "B", "FALLBACK", "SOMETHING_NEW"]


def test_excluded_notes_keep_tf32_out_of_fp32_only() -> None:
    assert "TENSOR_CORE" in frontend.EXCLUDED_NOTES["fp32"]
    for mode in ("tf32", "fp16", "bf16"):
        assert "TENSOR_CORE" not in frontend.EXCLUDED_NOTES[mode]
    for mode in MODES:
        assert "DOWN_CONVERT_INPUTS" in frontend.EXCLUDED_NOTES[mode]
        # Judged by the element-wise check instead: eng63, PyTorch's f16 first-layer engine, carries the note.
        assert "REDUCED_PRECISION_REDUCTION" not in frontend.EXCLUDED_NOTES[mode]
    assert set(frontend.CANDIDATE_TOLERANCE) == set(MODES)


def test_candidate_problem_rejects_nan_norm_and_element_errors() -> None:
    ok = {"nonfinite": 0, "size": 100, "relerr": 5e-5, "tolerance": 1e-4, "elem_ratio": 0.9}
    assert frontend.candidate_problem(**ok) is None
    assert "3 of 100 output elements are NaN" in frontend.candidate_problem(**{**ok, "nonfinite": 3})
    assert "relative error" in frontend.candidate_problem(**{**ok, "relerr": 2e-4})
    assert "relative error" in frontend.candidate_problem(**{**ok, "relerr": float("nan")})
    # One element off by more than rounding explains while the norm hides it.
    assert "1.1x what rounding explains" in frontend.candidate_problem(**{**ok, "elem_ratio": 1.1})
    assert "off by" in frontend.candidate_problem(**{**ok, "elem_ratio": float("inf")})  # error against a zero bound


def test_rounding_bound_is_the_verifications() -> None:
    """The GPU bound (here on NumPy arrays, which have the operations it uses) equals opbench.verify's."""
    from opbench.verify import ErrorModel

    rng = np.random.default_rng(2)
    reference, scale = rng.standard_normal((2, 3, 4)), np.abs(rng.standard_normal((2, 3, 4)))
    fake_torch = types.SimpleNamespace(abs=np.abs)
    for dtype, precision in (("f32", "f32"), ("f32", "tf32"), ("f16", "f16"), ("bf16", "bf16")):
        model = ErrorModel.of(get_dtype(dtype), precision)
        ours = frontend.rounding_bound(fake_torch, reference, scale, 27, model)
        np.testing.assert_allclose(ours, model.bound(reference, scale, 27), rtol=1e-15)


def test_fastest_is_the_quickest_valid_candidate() -> None:
    def cand(name: str, ms: float | None, valid: bool) -> frontend.Candidate:
        return frontend.Candidate(name=name, modes=["A"], ms=ms, valid=valid)

    cands = [cand("slow", 2.0, True), cand("wrong_but_fast", 0.1, False), cand("quick", 1.0, True),
             cand("tie", 1.0, True), cand("unbuilt", None, False)]  # fmt: skip
    chosen = frontend.fastest(cands)
    assert chosen is not None and chosen.name == "quick"
    assert frontend.fastest([cands[1], cands[4]]) is None
    assert cands[2].to_dict() == {"name": "quick", "modes": ["A"], "ms": 1.0, "trial_ms": None, "valid": True,
                                  "reason": "", "search_s": None, "build_s": None}  # fmt: skip
    # the finalists timed again: the valid ones with the lowest trial times, fastest first
    assert [c.name for c in frontend.finalists(cands, 2)] == ["quick", "tie"]
    assert [c.name for c in frontend.finalists(cands)] == ["quick", "tie", "slow"]


# ---------------------------------------------------------------- the check of the timed outputs


class HostTensor:
    """A stand-in for a CUDA tensor: what gpu_timing.to_host calls."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def detach(self) -> HostTensor:
        return self

    def float(self) -> HostTensor:
        return HostTensor(self.array.astype(np.float32))

    def cpu(self) -> HostTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.array


def test_verified_timing_passes_equal_sets_and_raises_on_a_difference() -> None:
    """The timing fields every PyTorch-side backend returns (gpu_timing.verified_timing), with the cudnn backend's
    tensors brought to the host by gpu_timing.to_host: equal outputs pass, one unwritten element or no kept output
    raises."""
    rng = np.random.default_rng(1)
    sets = [rng.standard_normal((2, 3)).astype(np.float16) for _ in range(2)]

    def timing(outputs: list[HostTensor] | None) -> GraphTiming:
        return GraphTiming(samples_ms=[1.0, 1.1], inner=4, copies=2, method="m", outputs=outputs)

    fields = verified_timing(timing([HostTensor(s.copy()) for s in sets]), lambda i: HostTensor(sets[i]), "f16")
    assert fields["bench_output_consistent"] is True and fields["bench_check"]["bitwise_mismatches"] == 0
    assert (fields["samples_ms"], fields["inner"], fields["buffer_copies"], fields["method"]) == ([1.0, 1.1], 4, 2, "m")
    timed = [HostTensor(sets[0].copy()), HostTensor(sets[1].copy())]
    timed[1].array[0, 1] = np.nan  # set 1's timed launches left an element unwritten
    with pytest.raises(RuntimeError) as info:
        verified_timing(timing(timed), lambda i: HostTensor(sets[i]), "f16")
    assert str(info.value).startswith(TIMED_OUTPUT_DIFFERS)
    assert TIMED_OUTPUT_DIFFERS == "the timed launches produced a different output than the verified run"
    with pytest.raises(RuntimeError, match="no output"):
        verified_timing(timing(None), lambda i: HostTensor(sets[i]), "f16")


def test_the_check_of_the_timed_outputs_is_a_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """verified_timing's check is the job's `check_outputs` phase (opbench.phases): here one second per fresh run
    of a buffer set, on a clock the fresh runs move."""
    clock = [0.0]
    monkeypatch.setattr(phases, "now", lambda: clock[0])
    sets = [np.full((2, 3), i, dtype=np.float16) for i in range(3)]

    def fresh(i: int) -> HostTensor:
        clock[0] += 1.0
        return HostTensor(sets[i])

    timing = GraphTiming(samples_ms=[1.0], inner=4, copies=3, method="m", outputs=[HostTensor(s) for s in sets])
    with phases.recording() as job_phases, phases.span("backend"):
        verified_timing(timing, fresh, "f16")
    assert job_phases.spans == {"backend/check_outputs": 3.0, "backend": 3.0}


def test_device_operands_permute_the_layout_to_logical_nchw() -> None:
    """The layouts' axis maps are inverses, and NHWC arrays become logical NCHW (checked with NumPy)."""
    for layout, to in common.TO_LOGICAL.items():
        back = common.FROM_LOGICAL[layout]
        assert [to[back[i]] for i in range(4)] == [0, 1, 2, 3]
    nhwc = np.arange(2 * 9 * 7 * 3).reshape(2, 9, 7, 3)
    logical = nhwc.transpose(common.TO_LOGICAL["nhwc_fhwc"])
    assert logical.shape == (2, 3, 9, 7) and logical[1, 2, 4, 5] == nhwc[1, 4, 5, 2]
    fake_torch = types.SimpleNamespace(channels_last="cl", contiguous_format="c")
    assert common.memory_format(fake_torch, "nhwc_fhwc") == "cl"
    assert common.memory_format(fake_torch, "nchw_fchw") == "c"
    assert common.memory_format(fake_torch, "nhwc_hwc") == "cl"
    # A depthwise filter [R, S, C] (nhwc_hwc) becomes [C, R, S] before its groups axis is inserted.
    rsc = np.arange(3 * 5 * 4).reshape(3, 5, 4)
    crs = rsc.transpose(common.FILTER_TO_LOGICAL["nhwc_hwc"]["filter"])
    assert crs.shape == (4, 3, 5) and crs[2, 1, 3] == rsc[1, 3, 2]


def test_torch_conv_is_grouped_for_depthwise() -> None:
    conv = common.TorchConv.of(job("fp16", "f16"))
    assert (conv.groups, conv.out_channels, conv.terms) == (1, SHAPE.k, SHAPE.c * SHAPE.r * SHAPE.s)
    depthwise = get_op("depthwise_conv2d").shape_from_name("n2_h9_w7_c6_r5_s5_st2_p2")
    the_job = Job(
        op="depthwise_conv2d", shape=depthwise, dtype=get_dtype("f16"), layout="nhwc_hwc", variant="fp16", inputs={},
        artifact=None, options={},
    )  # fmt: skip
    conv = common.TorchConv.of(the_job)
    assert (conv.groups, conv.out_channels, conv.terms) == (6, 6, 25)


def test_the_search_stops_at_its_budget_only_once_a_candidate_is_valid() -> None:
    tried = [frontend.Candidate(name="slow", modes=["A"], reason="did not build: x")]
    over = frontend.SEARCH_BUDGET_S + 1
    assert not frontend.over_budget(over, tried)  # nothing valid yet: keep searching
    tried.append(frontend.Candidate(name="ok", modes=["A"], ms=0.1, valid=True))
    assert frontend.over_budget(over, tried) and not frontend.over_budget(frontend.SEARCH_BUDGET_S - 1, tried)


# ---------------------------------------------------------------- the search in a child process, under its deadline

FAKE_CHILD = """
import json, os, signal, sys, time
def emit(event):
    print("@opbench-search " + json.dumps(event), flush=True)
def record(name, valid=False, ms=None, reason=""):
    return {"name": name, "modes": ["A"], "ms": ms, "trial_ms": None, "valid": valid, "reason": reason,
            "search_s": None, "build_s": None}
script = sys.argv[1]
assert sys.argv[2].endswith("job.pkl")
if script == "crash":
    print("Traceback: no GPU", file=sys.stderr)
    sys.exit(1)
print("a library's own line")  # not an event: ignored
emit({"event": "plans", "candidates": [record("eng0"), record("eng1"), record("eng2"), record("eng3")],
      "modes": {"A": "4 plans"}})
emit({"event": "trying", "name": "eng0"})
emit({"event": "tried", "candidate": record("eng0", True, 2.0)})
emit({"event": "trying", "name": "eng1"})
emit({"event": "tried", "candidate": record("eng1", True, 1.0)})
emit({"event": "trying", "name": "eng2"})
if script == "hang":
    time.sleep(60)  # a build that takes minutes
if script == "segfault":
    os.kill(os.getpid(), signal.SIGSEGV)  # cuDNN crashed on this candidate
emit({"event": "tried", "candidate": record("eng2", False, None, "did not build: x")})
emit({"event": "chosen", "name": "eng0", "candidates": [record("eng0", True, 0.9), record("eng1", True, 1.0),
      record("eng2", False, None, "did not build: x"), record("eng3", False, None, "not tried: budget")]})
"""


def fake_child(tmp_path: Path, script: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(FAKE_CHILD)
    return [sys.executable, str(path), script]


def test_a_finished_search_gives_the_childs_choice_and_records(tmp_path: Path) -> None:
    outcome = frontend_search.search_in_child(job("frontend_fp16", "f16"), 30.0, fake_child(tmp_path, "finish"))
    assert outcome.finished and outcome.chosen == "eng0"  # the finalists' times decided, not the trials'
    assert [c["name"] for c in outcome.candidates] == ["eng0", "eng1", "eng2", "eng3"]
    assert outcome.candidates[0]["ms"] == 0.9 and outcome.modes == {"A": "4 plans"}


def test_at_the_deadline_the_child_is_killed_and_the_best_reported_candidate_chosen(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = frontend_search.search_in_child(job("frontend_fp16", "f16"), 3.0, fake_child(tmp_path, "hang"))
    assert time.monotonic() - started < 20  # killed, not waited for
    assert not outcome.finished and outcome.chosen == "eng1"  # the fastest valid one reported (trial times)
    reasons = {c["name"]: c["reason"] for c in outcome.candidates}
    assert reasons["eng0"] == reasons["eng1"] == ""
    assert reasons["eng2"].startswith("not finished: the search's deadline of 3 s passed while cuDNN built")
    assert reasons["eng3"] == "not tried: the search's deadline of 3 s passed"


def test_a_child_that_dies_on_a_candidate_says_so_and_keeps_what_it_reported(tmp_path: Path) -> None:
    outcome = frontend_search.search_in_child(job("frontend_fp16", "f16"), 30.0, fake_child(tmp_path, "segfault"))
    assert not outcome.finished and outcome.chosen == "eng1"
    reasons = {c["name"]: c["reason"] for c in outcome.candidates}
    assert reasons["eng2"].startswith("not finished: the search process ended (exit -11) while cuDNN built")
    assert reasons["eng3"] == "not tried: the search process ended (exit -11)"


def test_a_child_that_fails_before_listing_candidates_raises_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"ended without listing candidates.*Traceback: no GPU"):
        frontend_search.search_in_child(job("frontend_fp16", "f16"), 30.0, fake_child(tmp_path, "crash"))


def test_a_deadline_with_nothing_valid_leaves_no_choice() -> None:
    outcome = frontend_search.SearchOutcome()
    outcome.apply({"event": "plans", "candidates": [{"name": "a", "valid": False, "ms": None, "reason": ""}],
                   "modes": {}})  # fmt: skip
    outcome.stop("the search's deadline of 5 s passed", "a")
    assert outcome.chosen is None and outcome.candidates[0]["reason"].startswith("not finished")


def test_the_benchmark_job_takes_the_run_jobs_choice_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A choice kept by the run job (frontend._SEARCHES) is the benchmark job's, once; without one the benchmark
    searches itself, and a search without a valid candidate raises with the candidates' reasons."""
    searches: list[str] = []

    def search(the_job: Job, deadline_s: float) -> frontend_search.SearchOutcome:
        searches.append(the_job.variant)
        record = {"name": "eng5", "modes": ["A"], "ms": 0.1, "valid": True, "reason": ""}
        return frontend_search.SearchOutcome(candidates=[record], chosen="eng5", finished=True)

    monkeypatch.setattr(frontend_search, "search_in_child", search)
    monkeypatch.setattr(frontend, "_SEARCHES", type(frontend._SEARCHES)())
    session = types.SimpleNamespace(job=job("frontend_fp16", "f16"), rebuild=lambda name: frontend.Candidate(
        name=name, modes=["A"], valid=True))  # fmt: skip
    kept = frontend.Candidate(name="eng9", modes=["B"], valid=True)
    frontend._SEARCHES[frontend.search_key(session.job)] = (kept, frontend_search.SearchOutcome(chosen="eng9"))
    first = frontend.choose(session, "benchmark job", reuse=True)
    assert first.candidate is kept and first.searched_by == "run job" and searches == []
    second = frontend.choose(session, "benchmark job", reuse=True)  # taken once: now it searches
    assert second.candidate.name == "eng5" and second.searched_by == "benchmark job" and searches == ["frontend_fp16"]
    assert second.fields()["search"]["by"] == "benchmark job" and second.fields()["chosen"] == "eng5"

    def nothing_valid(the_job: Job, deadline_s: float) -> frontend_search.SearchOutcome:
        record = {"name": "eng1", "modes": ["B"], "ms": None, "valid": False, "reason": "not finished: deadline"}
        return frontend_search.SearchOutcome(candidates=[record], modes={"B": "1 plans"})

    monkeypatch.setattr(frontend_search, "search_in_child", nothing_valid)
    with pytest.raises(RuntimeError, match=r"no cuDNN engine configuration.*eng1: not finished: deadline"):
        frontend.choose(session, "run job")


@pytest.mark.parametrize("found", [True, False])
def test_the_childs_main_reports_its_choice_or_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, found: bool
) -> None:
    """The child's entry point (run by search_in_child) ends with a `chosen` event: the selected candidate's name, or
    None with the error on stderr where no candidate is valid."""
    candidate = frontend.Candidate(name="eng7", modes=["A"], ms=0.5, valid=found, reason="" if found else "bad")

    class FakeSession:
        def __init__(self, the_job: Job, flush_l2: bool) -> None:
            self.candidates = [candidate]

        def select(self, report: object) -> frontend.Candidate:
            if not found:
                raise RuntimeError("no cuDNN engine configuration built, ran and verified")
            return candidate

    monkeypatch.setattr(frontend, "Session", FakeSession)
    job_file = tmp_path / "job.pkl"
    job_file.write_bytes(pickle.dumps(job("frontend_fp16", "f16")))
    assert frontend_search.main([str(job_file)]) == 0
    out, err = capsys.readouterr()
    event = json.loads(out.strip().splitlines()[-1][len(frontend_search.EVENT_PREFIX) :])
    assert event["event"] == "chosen" and event["candidates"] == [candidate.to_dict()]
    assert event["name"] == ("eng7" if found else None)
    assert ("no cuDNN engine configuration" in err) is not found
