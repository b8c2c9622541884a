"""Config validation (schema + semantic checks) and expansion of the matrix into points."""

from __future__ import annotations

import copy
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from opbench.backends import Availability
from opbench.config import ConfigError, config_hash, load, load_schema, validate
from opbench.matrix import expand, problem_seed, skip_reasons
from opbench.ops import get_op

REPO = Path(__file__).resolve().parents[1]
CONFIG_PATH = REPO / "config.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CONFIG_PATH.read_text())


@pytest.fixture(scope="module")
def shipped() -> dict:
    return load()


# ---------------------------------------------------------------- the shipped config


def test_shipped_config_validates_with_defaults_filled(raw: dict, shipped: dict) -> None:
    original = copy.deepcopy(raw)
    validated = validate(raw)
    assert raw == original  # validate works on a copy
    assert validated == shipped
    schema = load_schema()
    for key in ("machine", "seed", "gpu", "tolerances", "benchmark"):
        assert key in validated
    for key, sub in schema["properties"]["benchmark"]["properties"].items():
        assert key in validated["benchmark"], key
        if key not in raw.get("benchmark", {}):
            assert validated["benchmark"][key] == sub["default"]
    ran = {suite for entry in validated["matrix"] for suite in entry["suites"]}  # layers are checked per op run
    for name, suite in validated["suites"].items():
        for layer in suite["layers"] if name in ran else []:
            windowed = ("stride", "pad", "dilation") if "r" in layer else ("causal",)  # convolutions; attention
            for key in (*windowed, "count"):
                assert key in layer, (layer["name"], key)
    # A layer that gave no dilation gets the default 1, one that gave stride keeps it.
    tiny = {layer["name"]: layer for layer in validated["suites"]["tiny"]["layers"]}
    assert tiny["odd_3x3"]["dilation"] == 1
    assert tiny["dil2_3x3"]["dilation"] == 2
    assert tiny["s2_3x3"]["stride"] == 2
    for name, backend in validated["backends"].items():
        if name.startswith("iree-"):
            assert backend["compile_flags"] == []
    assert validated["backends"]["cuda"]["archs"] == ["sm_90", "sm_80"]


def test_minimal_config_gets_every_default(raw: dict) -> None:
    minimal = {key: copy.deepcopy(raw[key]) for key in ("suites", "backends", "matrix")}
    validated = validate(minimal)
    props = load_schema()["properties"]
    for key in ("machine", "seed", "gpu"):
        assert validated[key] == props[key]["default"]
    for section in ("tolerances", "benchmark"):
        assert validated[section] == {k: v["default"] for k, v in props[section]["properties"].items()}


@pytest.mark.parametrize(("given", "kept"), [(False, False), ("false", False), ("true", True)])
def test_keep_run_outputs_takes_a_boolean_or_its_text(raw: dict, given: bool | str, kept: bool) -> None:
    assert validate({**copy.deepcopy(raw), "keep_run_outputs": given})["keep_run_outputs"] is kept
    assert validate(copy.deepcopy(raw))["keep_run_outputs"] is True


def test_ci_config_validates() -> None:
    config = load(REPO / "tests" / "configs" / "ci.yaml")
    assert config["machine"] == "ci"
    assert config["benchmark"]["repetitions"] == 3
    assert config["benchmark"]["flush_l2"] is True  # default filled next to given keys


def test_empty_config_names_required_key() -> None:
    with pytest.raises(ConfigError, match="suites"):
        validate({})


def test_config_hash_stable_and_sensitive(shipped: dict) -> None:
    reordered = dict(reversed(list(copy.deepcopy(shipped).items())))
    assert config_hash(reordered) == config_hash(shipped)
    changed = copy.deepcopy(shipped)
    changed["seed"] += 1
    assert config_hash(changed) != config_hash(shipped)


# ---------------------------------------------------------------- bad configs


def _layer_index(config: dict, suite: str, name: str) -> int:
    return next(i for i, layer in enumerate(config["suites"][suite]["layers"]) if layer["name"] == name)


def _set(path: list, value: object) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _append(path: list, value: object) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        target = config
        for part in path:
            target = target[part]
        target.append(value)

    return mutate


def _unconfigure(backend: str) -> Callable[[dict], None]:
    """Drop a backend's settings while the matrix still names it."""

    def mutate(config: dict) -> None:
        del config["backends"][backend]

    return mutate


def _tiny(i: int, **changes: object) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        config["suites"]["tiny"]["layers"][i].update(changes)

    return mutate


BAD = {
    "unknown_op": (_set(["matrix", 0, "ops", 0], "conv3d"), ["matrix[0].ops", "conv3d"]),
    "unknown_dtype": (_append(["matrix", 0, "dtypes"], "f64"), ["matrix[0].dtypes", "f64"]),
    "unknown_backend": (_append(["matrix", 1, "backends"], "tpu"), ["matrix[1].backends", "tpu"]),
    "unknown_layout": (_append(["matrix", 0, "layouts"], "nchw_hwcf"), ["matrix[0].layouts", "nchw_hwcf"]),
    "unknown_top_level_key": (_set(["benchmarks"], {"repetitions": 5}), ["benchmarks"]),
    "unknown_nested_key": (_set(["benchmark", "repetiions"], 5), ["benchmark", "repetiions"]),
    "unknown_layer_key": (_tiny(0, strides=2), ["suites.tiny.layers[0]", "strides"]),
    "empty_output": (_tiny(0, h=2, r=5, pad=0), ["suites.tiny.layers[0]", "odd_3x3", "empty"]),
    # layer 1, so that the only "0" in the message can be the bad value
    "stride_0": (_tiny(1, stride=0), ["suites.tiny.layers[1].stride", "0"]),
    "stride_pair_0": (_tiny(1, stride=[2, 0]), ["suites.tiny.layers[1].stride", "0"]),
    "negative_pad": (_tiny(1, pad=-1), ["suites.tiny.layers[1].pad", "-1"]),
    "dilation_0": (_tiny(1, dilation=0), ["suites.tiny.layers[1].dilation", "0"]),
    "missing_suite": (_append(["matrix", 0, "suites"], "resnet18"), ["matrix[0].suites", "resnet18"]),
    "unconfigured_backend": (_unconfigure("iree-rocm"), ["matrix[1].backends", "iree-rocm"]),
    "unknown_variant": (_set(["matrix", 1, "variants"], ["fast"]), ["matrix[1].variants", "fast"]),
    "unknown_layer_filter": (_set(["matrix", 1, "layers"], ["odd_3x5"]), ["matrix[1].layers", "odd_3x5"]),
    "bad_tolerance": (_set(["tolerances", "f32"], 0), ["tolerances.f32", "0"]),
    "too_few_repetitions": (_set(["benchmark", "repetitions"], 2), ["benchmark.repetitions", "2"]),
    "bad_batch": (_set(["matrix", 1, "batches"], [1, 0]), ["matrix[1].batches[1]", "0"]),
    "bad_keep_run_outputs": (_set(["keep_run_outputs"], "no"), ["keep_run_outputs", '"no"']),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_config_names_key_and_value(raw: dict, case: str) -> None:
    mutate, needles = BAD[case]
    config = copy.deepcopy(raw)
    mutate(config)
    with pytest.raises(ConfigError) as info:
        validate(config)
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_duplicate_layer_names(raw: dict) -> None:
    config = copy.deepcopy(raw)
    layers = config["suites"]["tiny"]["layers"]
    layers[2]["name"] = layers[0]["name"]
    with pytest.raises(ConfigError) as info:
        validate(config)
    assert "suites.tiny.layers[2].name" in str(info.value)
    assert repr(layers[0]["name"]) in str(info.value)


def test_same_layer_name_in_two_suites_is_fine(raw: dict) -> None:
    config = copy.deepcopy(raw)
    config["suites"]["resnet50"]["layers"][0]["name"] = config["suites"]["tiny"]["layers"][0]["name"]
    validate(config)


def test_empty_output_only_at_some_batch_names_batch(raw: dict) -> None:
    # The emptiness check runs for the batches the matrix actually uses (here the matrix override).
    config = copy.deepcopy(raw)
    i = _layer_index(config, "resnet50", "conv1")
    config["suites"]["resnet50"]["layers"][i].update(h=3, r=7, pad=0)
    with pytest.raises(ConfigError) as info:
        validate(config)
    assert f"suites.resnet50.layers[{i}]" in str(info.value)
    assert "conv1" in str(info.value)


# ---------------------------------------------------------------- matrix expansion


# Which dtype each cuDNN math mode applies to, and what our CUDA kernels implement (written out independently).
CUDNN_MODE_DTYPE = {"fp32": "f32", "tf32": "f32", "fp16": "f16", "bf16": "bf16"}
# the frontend's variants apply to the same dtypes as PyTorch's pick of each math mode, PyTorch's own kernels (no tf32)
# too, for depthwise convolution only
CUDNN_MODE_DTYPE |= {f"frontend_{mode}": dtype for mode, dtype in CUDNN_MODE_DTYPE.items()} | {
    f"native_{mode}": dtype for mode, dtype in CUDNN_MODE_DTYPE.items() if mode != "tf32"
}


ALL_DTYPES = ("f16", "bf16", "f32")
DEPTHWISE_CUDA_VARIANTS = (
    "depthwise_naive", "depthwise_smem", "depthwise_async", "depthwise_stream", "depthwise_direct",
)  # fmt: skip
CUDA_VARIANT_DTYPES = {v: ALL_DTYPES for v in ("mma_implicit_gemm", "hopper_wgmma", *DEPTHWISE_CUDA_VARIANTS)}
CUDA_VARIANT_DTYPES |= {"attention_fa2": ("f16", "bf16"), "attention_wgmma": ("f16", "bf16")}
CUDA_VARIANT_OPS = {variant: "depthwise_conv2d" for variant in DEPTHWISE_CUDA_VARIANTS}
CUDA_VARIANT_OPS |= {"attention_fa2": "attention", "attention_wgmma": "attention"}
HARNESS_LAYOUT = {"conv2d": "nhwc_fhwc", "depthwise_conv2d": "nhwc_hwc", "attention": "bhsd"}


def _implemented(op: str, backend: str, variant: str, dtype: str, layout: str) -> bool:
    if backend == "cudnn":
        native_ok = not variant.startswith("native_") or op == "depthwise_conv2d"
        return (
            CUDNN_MODE_DTYPE[variant] == dtype
            and layout in ("nhwc_fhwc", "nchw_fchw", "nhwc_hwc", "nchw_chw")
            and (native_ok)
        )
    if backend == "cuda":  # what the variant files declare on their `// opbench:` lines
        variant_op = CUDA_VARIANT_OPS.get(variant, "conv2d")
        return op == variant_op and layout == HARNESS_LAYOUT[op] and dtype in CUDA_VARIANT_DTYPES.get(variant, ("f32",))
    if backend == "cutlass":
        return op == "conv2d" and layout == "nhwc_fhwc" and dtype in ("f32", "f16", "bf16")
    return True


def _expected_count(config: dict) -> int:
    total = 0
    for entry in config["matrix"]:
        for suite_name in entry["suites"]:
            suite = config["suites"][suite_name]
            batches = entry.get("batches", suite["batches"])
            for dtype in entry["dtypes"]:
                for layout, op in itertools.product(entry["layouts"], entry["ops"]):
                    variants = sum(
                        1
                        for b in entry["backends"]
                        for v in config["backends"][b]["variants"]
                        if v in entry.get("variants", [v]) and _implemented(op, b, v, dtype, layout)
                    )
                    wanted = entry.get("layers")
                    layers = [layer for layer in suite["layers"] if wanted is None or layer["name"] in wanted]
                    total += len(batches) * len(layers) * variants
    return total


def test_expand_shipped_point_count_and_uniqueness(shipped: dict) -> None:
    """Every point of the cross product is in the matrix, those a backend does not implement as SKIP rows whose
    reason says so."""
    points = expand(shipped)
    everywhere = {name: Availability(runs=True, compiles=True) for name in shipped["backends"]}
    # what a backend does not implement; not what this machine lacks (e.g. the cuDNN frontend, for some variants)
    unsupported = {p: r for p, r in skip_reasons(points, everywhere).items() if r.startswith("not supported: ")}
    assert len(points) - len(unsupported) == _expected_count(shipped)
    assert len(set(points)) == len(points)
    assert len({p.record_path for p in points}) == len(points)
    assert len({p.run_dir + "/" + p.suite + "/" + p.layer for p in points}) == len(points)


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_validate_and_every_named_variant_runs(raw: dict, path: Path) -> None:
    """Each config under config/, merged over config.yaml as Snakemake merges a --configfile, validates, and every
    (backend, variant) its matrix names gives points: a misspelt or unimplemented variant would otherwise vanish."""
    config = copy.deepcopy(raw)
    update_config(config, yaml.safe_load(path.read_text()))
    validated = validate(config)
    points = expand(validated)
    everywhere = {name: Availability(runs=True, compiles=True) for name in validated["backends"]}
    unsupported = {p: r for p, r in skip_reasons(points, everywhere).items() if r.startswith("not supported: ")}
    ran = {(p.backend, p.variant) for p in points if p not in unsupported}
    for entry in validated["matrix"]:
        for backend in entry["backends"]:
            named = [v for v in validated["backends"][backend]["variants"] if v in entry.get("variants", [v])]
            assert any((backend, v) in ran for v in named), (path.name, backend, entry.get("variants"))


def test_expand_points_describe_their_layers(shipped: dict) -> None:
    points = expand(shipped)
    layers = {(name, layer["name"]): layer for name, s in shipped["suites"].items() for layer in s["layers"]}
    for point in points:
        layer = layers[(point.suite, point.layer)]
        op = get_op(point.op)
        shape = op.shape_from_name(point.shape)
        assert shape == op.shape_from_layer(layer, point.batch)
        # the batch is the convolutions' N; an attention layer's own batch (b) is multiplied by it
        assert (shape.b == layer["b"] * point.batch) if point.op == "attention" else (shape.n == point.batch)
        assert point.count == layer["count"]
        assert point.problem_dir == f"{point.op}/{point.layout}/{point.dtype}/{point.shape}"
        assert point.run_dir == f"{point.backend}/{point.variant}/{point.problem_dir}"
    # The entries' `batches` overrides apply to resnet50; the tiny suite keeps its own batches.
    resnet_batches = {b for e in shipped["matrix"] if "resnet50" in e["suites"] for b in e["batches"]}
    assert {p.batch for p in points if p.suite == "resnet50"} == resnet_batches
    assert {p.batch for p in points if p.suite == "tiny"} == set(shipped["suites"]["tiny"]["batches"])
    # Config order: the first point is the first matrix entry's first layer.
    first = shipped["matrix"][0]
    assert (points[0].suite, points[0].layer) == (
        first["suites"][0],
        shipped["suites"][first["suites"][0]]["layers"][0]["name"],
    )


def test_expand_overlapping_entries_and_variant_filter(raw: dict) -> None:
    config = copy.deepcopy(raw)
    config["backends"]["iree-llvm-cpu"]["variants"] = {"default": [], "fast": ["--iree-opt-level=O3"]}
    config["matrix"] = [
        {"ops": ["conv2d"], "suites": ["tiny"], "batches": [1], "dtypes": ["f32"], "layouts": ["nhwc_hwcf"],
         "backends": ["iree-llvm-cpu"]},
        # overlaps the first entry in f32, adds f16; only the "fast" variant
        {"ops": ["conv2d"], "suites": ["tiny"], "batches": [1], "dtypes": ["f32", "f16"], "layouts": ["nhwc_hwcf"],
         "backends": ["iree-llvm-cpu"], "variants": ["fast"]},
    ]  # fmt: skip
    points = expand(validate(config))
    n_layers = len(config["suites"]["tiny"]["layers"])
    # entry 1: f32 x {default, fast}; entry 2 adds only f16 x fast (f32 x fast is already there)
    assert len(points) == n_layers * 3
    assert len(set(points)) == len(points)
    assert {(p.dtype, p.variant) for p in points} == {("f32", "default"), ("f32", "fast"), ("f16", "fast")}


# ---------------------------------------------------------------- problem seeds


def test_problem_seed_is_deterministic_across_processes() -> None:
    args = (20261127, "conv2d", "n1_h56_w56_c64_k64_r3_s3_st1_p1", "bf16")
    here = problem_seed(*args)
    assert problem_seed(*args) == here
    code = f"from opbench.matrix import problem_seed; print(problem_seed(*{args!r}))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert int(out.stdout) == here
    assert 0 <= here < 2**32


def test_problem_seed_differs_between_problems(shipped: dict) -> None:
    base = shipped["seed"]
    problems = {(p.op, p.shape, p.dtype) for p in expand(shipped)}
    seeds = {problem_seed(base, *problem) for problem in problems}
    assert len(seeds) == len(problems)
    one = ("conv2d", "n1_h9_w7_c3_k5_r3_s3_st1_p1", "f32")
    assert problem_seed(base, *one) != problem_seed(base + 1, *one)
    assert problem_seed(base, *one) != problem_seed(base, one[0], one[1], "f16")
    assert problem_seed(base, *one) != problem_seed(base, one[0], "n2_h9_w7_c3_k5_r3_s3_st1_p1", one[2])


def test_expand_layer_filter_keeps_suite_and_order(raw: dict) -> None:
    config = copy.deepcopy(raw)
    names = [layer["name"] for layer in config["suites"]["tiny"]["layers"]]
    wanted = [names[-1], names[0]]  # given out of order: points still follow the suite's order
    config["matrix"] = [
        {"ops": ["conv2d"], "suites": ["tiny"], "batches": [1], "dtypes": ["f32"], "layouts": ["nhwc_hwcf"],
         "backends": ["iree-llvm-cpu"], "layers": wanted},
    ]  # fmt: skip
    points = expand(validate(config))
    assert [p.layer for p in points] == [names[0], names[-1]]
    assert {p.suite for p in points} == {"tiny"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("matrix:\n  - ops: [conv2d\n", ["bad.yaml", "line 3"]),  # a YAML error names the file and the line
     ("benchmarks: {}\n", ["bad.yaml", "unknown config key 'benchmarks'"]),
     ("- a list\n", ["bad.yaml", "a mapping"])],
    ids=["yaml-syntax", "unknown-key", "not-a-mapping"],
)  # fmt: skip
def test_main_command_reports_a_bad_config_in_one_message(tmp_path: Path, text: str, expected: list[str]) -> None:
    """`opbench bench` with a bad --configfile: one message naming the file (and key or line), no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "opbench", "bench", "--configfile", str(bad)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("opbench: invalid config: ")
    for text_ in expected:
        assert text_ in proc.stderr
