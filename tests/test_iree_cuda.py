"""IREE's CUDA path: tuning-spec rules, the specs themselves (compiled for sm_80 here, no GPU needed: the config
they set must be the one IREE uses), dispatch benchmark modules, and parsing of iree-benchmark-module's output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from opbench.backends import BenchSettings, Problem, get_backend
from opbench.backends.iree.dispatch import compile_dispatch_benchmarks, parse_benchmark_json, time_dispatches
from opbench.backends.iree.specs import specs
from opbench.backends.iree.tuning import TUNING_FLAG, program_form, spec_path, tuning_spec
from opbench.config import ConfigError, load, validate
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.ops.conv2d.shape import Conv2dShape
from opbench.plan import RecordPlan

REPO = Path(__file__).resolve().parents[1]
OP = get_op("conv2d")
CUDA = get_backend("iree-cuda")
SETTINGS = load()["backends"]["iree-cuda"]
RESNET = {
    layer["name"]: layer for layer in yaml.safe_load((REPO / "config.yaml").read_text())["suites"]["resnet50"]["layers"]
}


def layer_shape(name: str, batch: int = 16) -> Conv2dShape:
    return OP.shape_from_layer(RESNET[name], batch)


def problem(layer: str, dtype: str, layout: str = "nhwc_fhwc") -> Problem:
    return Problem(op="conv2d", shape=layer_shape(layer), dtype=get_dtype(dtype), layout=layout)


# ---------------------------------------------------------------- which spec a problem gets


EXPECTED_CLASS = {
    "conv1": ("conv_stem_pqn", "splitk1_pqn"),
    "l1_3x3_64": ("conv_q56_pqn", "splitk1_pqn"),
    "l2_3x3_128": ("conv_q28_pqn", "splitk1_pqn"),
    "l3_3x3_256": ("conv_q14_pqn", "splitk1_pqn"),
    "l4_3x3_512_s2": ("conv_q14_pqn", "splitk1_pqn"),
    "l2_ds_256_512": ("pointwise_s2_pqn", "splitk1_pqn"),
    "l3_ds_512_1024": ("pointwise_s2_q14_pqn", "splitk1_pqn"),
    "l2_1x1_256_128": ("pointwise", "plain"),
    "l3_1x1_256_1024": ("pointwise_m64", "plain"),
    "l4_1x1_2048_512": ("pointwise_splitk4", "splitk4_npq"),
}


def test_resnet50_layers_get_their_class_spec_for_f16_and_bf16() -> None:
    for name in RESNET:
        for dtype in ("f16", "bf16"):
            spec = tuning_spec(SETTINGS, "tuned", problem(name, dtype))
            assert spec is not None, (name, dtype)
            assert (REPO / spec).is_file()
            assert Path(spec).stem.endswith(f"_{dtype}")  # the spec's MMA intrinsic follows the element type
            if name in EXPECTED_CLASS:
                spec_class, form = EXPECTED_CLASS[name]
                assert Path(spec).stem == f"{spec_class}_{dtype}", name
                assert program_form(SETTINGS, "tuned", problem(name, dtype)) == form, name


def test_every_rule_names_the_form_its_spec_was_written_for() -> None:
    """A spec's tiles name the dims of the MLIR in one program form; the rule that names the spec compiles that form."""
    for variant, rules in SETTINGS["tuning_specs"].items():
        for rule in rules:
            for dtype in rule["dtypes"]:
                header = (REPO / spec_path(rule, dtype)).read_text().splitlines()[2]
                assert f"program form `{rule.get('form', 'plain')}`" in header, (variant, rule["spec"], header)


def test_pqn_form_needs_a_batch_of_16() -> None:
    """The pqn form's MMA rows are 16 images: a smaller batch keeps the plain form (and IREE's tiles)."""
    small = Problem(op="conv2d", shape=layer_shape("l3_3x3_256", batch=2), dtype=get_dtype("f16"), layout="nhwc_fhwc")
    assert program_form(SETTINGS, "tuned", small) == "plain"
    assert tuning_spec(SETTINGS, "tuned", small) is None


def test_specs_in_the_repository_are_the_table_rendered() -> None:
    on_disk = {p.name: p.read_text() for p in (REPO / "mlir-examples" / "tuning").glob("*.mlir")}
    assert on_disk == specs(), "run `python -m opbench.iree_tuning` to rewrite mlir-examples/tuning/"
    assert all("GENERATED" in text.splitlines()[0] for text in on_disk.values())


def test_no_spec_for_f32_nchw_other_variants_or_tiny_channels() -> None:
    assert tuning_spec(SETTINGS, "tuned", problem("l3_3x3_256", "f32")) is None  # no f32 MMA on sm_80: IREE's SIMT
    assert tuning_spec(SETTINGS, "tuned", problem("l3_3x3_256", "f16", "nchw_fchw")) is None  # tiles name NHWC dims
    assert tuning_spec(SETTINGS, "default", problem("l3_3x3_256", "f16")) is None
    for tiny in (
        Conv2dShape(n=2, h=9, w=7, c=3, k=5, r=3, s=3, pad=(1, 1)),  # a 7-wide output with 3 channels
        Conv2dShape(n=2, h=15, w=13, c=3, k=4, r=7, s=7, stride=(2, 2), pad=(3, 3)),  # a small stem
    ):
        assert (
            tuning_spec(SETTINGS, "tuned", Problem(op="conv2d", shape=tiny, dtype=get_dtype("f16"), layout="nhwc_fhwc"))
            is None
        )


def test_compile_flags_end_with_the_spec_and_the_record_shows_it() -> None:
    the_problem = problem("l2_3x3_128", "f16")
    flags = CUDA.compile_flags(SETTINGS, "tuned", the_problem)
    assert flags[:2] == ["--iree-hal-target-device=cuda", "--iree-cuda-target=sm_80"]
    spec = tuning_spec(SETTINGS, "tuned", the_problem)
    assert flags[-1] == f"{TUNING_FLAG}={spec}"
    assert CUDA.variant_flags(SETTINGS, "tuned", the_problem) == [*SETTINGS["variants"]["tuned"], flags[-1]]
    assert CUDA.compile_flags(SETTINGS, "default", the_problem) == flags[:2]


def test_first_matching_rule_wins_and_conditions_combine() -> None:
    settings = {
        "variants": {"t": []},
        "tuning_specs": {
            "t": [
                {"spec": "a.mlir", "dtypes": ["f16"], "filter": [3, 3], "stride": 1, "max_out_w": 14},
                {"spec": "b_{dtype}.mlir", "layouts": ["nhwc_fhwc"], "min_channels": 64},
            ]
        },
    }

    def spec(shape: Conv2dShape, dtype: str = "f16", layout: str = "nhwc_fhwc") -> str | None:
        return tuning_spec(settings, "t", Problem(op="conv2d", shape=shape, dtype=get_dtype(dtype), layout=layout))

    small = Conv2dShape(n=1, h=14, w=14, c=64, k=64, r=3, s=3, pad=(1, 1))
    assert spec(small) == "a.mlir"
    assert spec(small, layout="nchw_fchw") == "a.mlir"
    wide = Conv2dShape(n=1, h=28, w=28, c=64, k=64, r=3, s=3, pad=(1, 1))
    assert spec(wide) == "b_f16.mlir"
    assert spec(wide, layout="nchw_fchw") is None
    strided = Conv2dShape(n=1, h=14, w=14, c=64, k=64, r=3, s=3, pad=(1, 1), stride=(2, 2))
    assert spec(strided, dtype="bf16") == "b_bf16.mlir"
    assert spec(Conv2dShape(n=1, h=14, w=14, c=8, k=64, r=1, s=1)) is None


def test_config_rejects_unknown_variant_and_missing_spec_file() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    cuda = config["backends"]["iree-cuda"]
    cuda["tuning_specs"] = {"nope": [{"spec": "mlir-examples/tuning/missing.mlir"}]}
    with pytest.raises(ConfigError, match=r"tuning_specs.*nope"):
        validate(config)
    cuda["tuning_specs"] = {"tuned": [{"spec": "mlir-examples/tuning/missing.mlir"}]}
    with pytest.raises(ConfigError, match=r"tuning_specs\.tuned\[0\]\.spec.*missing\.mlir"):
        validate(config)
    cuda["tuning_specs"] = {"tuned": [{"spec": "x.mlir", "stride": 0}]}
    with pytest.raises(ConfigError, match="stride"):
        validate(config)


# ---------------------------------------------------------------- the specs take effect (compiled here)


def _dispatch_configs(
    iree_compile: str, tmp_path: Path, the_problem: Problem, flags: list[str], form: str = "plain"
) -> dict[str, str]:
    """Compile the problem's MLIR (in `form`) with `flags`; the configured executables IREE dumps, by file name."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "conv2d.mlir"
    source.write_text(OP.mlir(the_problem.shape, the_problem.dtype, the_problem.layout, form))
    dump = tmp_path / "configs"
    proc = subprocess.run(
        [iree_compile, str(source), *flags, f"--iree-hal-dump-executable-configurations-to={dump}",
         "-o", str(tmp_path / "m.vmfb")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {p.name: p.read_text() for p in sorted(dump.glob("*.mlir"))}


def _configured_dispatches(
    iree_compile: str, tmp_path: Path, the_problem: Problem, flags: list[str], form: str = "plain"
) -> str:
    return "\n".join(_dispatch_configs(iree_compile, tmp_path, the_problem, flags, form).values())


def _spec_workgroup(spec: Path) -> str:
    match = re.search(r"workgroup = (\[[^\]]*\])", spec.read_text())
    assert match, spec
    return match.group(1)


CASES = [
    ("l3_3x3_256", "f16"),
    ("l2_1x1_256_128", "bf16"),
    ("l2_ds_256_512", "f16"),
    ("conv1", "f16"),
    ("l4_1x1_2048_512", "bf16"),
]


@pytest.mark.parametrize(("layer", "dtype"), CASES)
def test_spec_sets_the_dispatch_configuration(iree_compile: str, tmp_path: Path, layer: str, dtype: str) -> None:
    the_problem = problem(layer, dtype)
    spec = REPO / tuning_spec(SETTINGS, "tuned", the_problem)
    default_flags = CUDA.compile_flags(SETTINGS, "default")
    default = _configured_dispatches(iree_compile, tmp_path / "default", the_problem, default_flags)
    tuned_flags = CUDA.compile_flags(SETTINGS, "tuned", the_problem)
    form = program_form(SETTINGS, "tuned", the_problem)
    tuned = _configured_dispatches(iree_compile, tmp_path / "tuned", the_problem, tuned_flags, form)
    want = f"workgroup = {_spec_workgroup(spec)}"
    assert want in tuned, f"{spec.name} did not apply:\n{tuned[-3000:]}"
    assert want not in default  # the spec changes IREE's choice
    intrinsic = "NV_MMA_SYNC_F32_16x8x16_BF16" if dtype == "bf16" else "NV_MMA_SYNC_F32_16x8x16_F16"
    assert intrinsic in tuned


@pytest.mark.parametrize("variant", ["default", "tuned"])
def test_f16_output_truncation_is_fused_into_the_conv_dispatch(iree_compile: str, tmp_path: Path, variant: str) -> None:
    """f16 in, f16 out: the truncation of the f32 accumulator is the convolution dispatch's epilogue (no dispatch of
    its own), and the tuned spec still configures that dispatch."""
    the_problem = problem("l1_3x3_64", "f16")
    form = program_form(SETTINGS, variant, the_problem)
    dispatches = _dispatch_configs(
        iree_compile, tmp_path, the_problem, CUDA.compile_flags(SETTINGS, variant, the_problem), form
    )
    # the zero padding is a dispatch of its own unless the variant fuses it into the convolution (tuned does)
    assert len(dispatches) == (1 if variant == "tuned" else 2), sorted(dispatches)
    (conv,) = [text for text in dispatches.values() if '"reduction"' in text]
    assert conv.count("arith.truncf") == 1 and "arith.truncf" not in "".join(dispatches.values()).replace(conv, "")
    bindings = dict(re.findall(r"binding\((\d+)\) .*: memref<([0-9x]+x[a-z0-9]+)[,>]", conv))
    assert bindings == {"0": "16x58x58x64xf16" if variant == "default" else "16x56x56x64xf16",
                        "1": "64x3x3x64xf16", "2": "16x56x56x64xf16"}  # fmt: skip
    assert "NV_MMA_SYNC_F32_16x8x16_F16" in conv
    if variant == "tuned":
        spec = REPO / tuning_spec(SETTINGS, variant, the_problem)
        assert conv.count(f"workgroup = {_spec_workgroup(spec)}") == 1  # on the conv, not on the truncation


def test_tuning_spec_path_flag_is_ignored_by_the_cuda_target(iree_compile: str, tmp_path: Path) -> None:
    """Why the workflow passes specs as a transform library: IREE 3.13's CUDA target does not read
    --iree-codegen-tuning-spec-path (a spec that does not even parse passes unnoticed). If this fails, IREE
    started reading it: the tuning specs could then move to that flag."""
    broken = tmp_path / "broken.mlir"
    broken.write_text("this is not MLIR\n")
    configs = _configured_dispatches(
        iree_compile, tmp_path / "c", problem("l3_3x3_256", "f16"),
        [*CUDA.compile_flags(SETTINGS, "default"), f"--iree-codegen-tuning-spec-path={broken}"],
    )  # fmt: skip
    assert "TileAndFuse" in configs


# ---------------------------------------------------------------- dispatch benchmarks


def test_dispatch_benchmarks_one_module_per_dispatch_in_order(iree_compile: str, tmp_path: Path) -> None:
    shape = Conv2dShape(n=1, h=8, w=8, c=16, k=16, r=3, s=3, pad=(1, 1))
    source = tmp_path / "conv2d.mlir"
    source.write_text(OP.mlir(shape, get_dtype("f16"), "nhwc_hwcf"))
    modules = compile_dispatch_benchmarks(
        iree_compile=iree_compile, mlir=source, flags=CUDA.compile_flags(SETTINGS, "default"), out=tmp_path / "d"
    )
    # the zero padding is a dispatch of its own, before the convolution
    assert [m.name for m in modules] == ["00_dispatch_0.vmfb", "01_dispatch_1.vmfb"]
    assert all(m.stat().st_size > 0 for m in modules)


def test_parse_benchmark_json_keeps_iteration_rows_in_ms() -> None:
    report = {
        "benchmarks": [
            {"name": "f/process_time/real_time", "run_name": "f/process_time/real_time", "run_type": "iteration",
             "real_time": 78.5, "time_unit": "us"},
            {"name": "f/process_time/real_time", "run_name": "f/process_time/real_time", "run_type": "iteration",
             "real_time": 80.5, "time_unit": "us"},
            {"name": "f/process_time/real_time_mean", "run_name": "f/process_time/real_time",
             "run_type": "aggregate", "real_time": 79.5, "time_unit": "us"},
        ]
    }  # fmt: skip
    assert parse_benchmark_json(json.dumps(report)) == {"f": [0.0785, 0.0805]}


def test_time_dispatches_needs_modules(tmp_path: Path) -> None:
    settings = BenchSettings(warmup_ms=1, repetitions=3, min_sample_ms=1, flush_l2=True)
    with pytest.raises(FileNotFoundError, match="no dispatch benchmark modules"):
        time_dispatches(tmp_path, driver="cuda", settings=settings)


@pytest.mark.parametrize("example", ["conv2d_nhwc_tuned.mlir", "conv2d_pqn_tuned.mlir"])
def test_hand_written_tuned_conv2d_keeps_its_config(iree_compile: str, tmp_path: Path, example: str) -> None:
    """The hand-written conv2d programs carry their lowering in the source; with the tuned variant's flags (padding
    fused) each is one dispatch with that configuration and the f16 MMA."""
    source = REPO / "mlir-examples" / example
    dump = tmp_path / "configs"
    proc = subprocess.run(
        [iree_compile, str(source), *CUDA.compile_flags(SETTINGS, "tuned"),
         f"--iree-hal-dump-executable-configurations-to={dump}", "-o", str(tmp_path / "m.vmfb")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (configured,) = [p.read_text() for p in dump.glob("*.mlir")]
    assert f"workgroup = {_spec_workgroup(source)}" in configured  # the source's own compilation_info
    assert "NV_MMA_SYNC_F32_16x8x16_F16" in configured
    assert configured.count("arith.truncf") == 1  # the f16 epilogue is in the convolution's dispatch


def test_record_carries_device_time_beside_end_to_end(tmp_path: Path) -> None:
    from opbench import jobs
    from opbench.records import FIELDS, read_record

    # added after timestamp
    assert FIELDS[FIELDS.index("timestamp") + 1 :][:4] == ("device_ms", "device_tflops", "dispatch_ms", "program_form")
    shape = layer_shape("l2_3x3_128")
    (tmp_path / "verify.json").write_text(
        json.dumps({"status": "PASS", "reason": "", "relerr": 1e-6, "tolerance": 5e-3})
    )
    dispatches = {
        "total_ms": 0.1,
        "per_dispatch": {"00_dispatch_0": {"median_ms": 0.02}, "01_dispatch_1": {"median_ms": 0.08}},
        "method": "m",
    }
    bench = {"samples_ms": [0.2], "stats": {"median_ms": 0.2, "min_ms": 0.2, "p90_ms": 0.2, "cv": 0.0, "samples": 1},
             "method": "e2e", "device": "gpu", "dispatches": dispatches}  # fmt: skip
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    point = {"op": "conv2d", "suite": "resnet50", "layer": "l2_3x3_128", "count": 3, "shape": shape.name, "batch": 16,
             "dtype": "f16", "layout": "nhwc_fhwc", "backend": "iree-cuda", "variant": "default"}  # fmt: skip
    out = tmp_path / "record.json"
    plan = RecordPlan(fields=point, verification=str(tmp_path / "verify.json"), timing=str(tmp_path / "bench.json"))
    jobs.record(plan=plan, out=out)
    record = read_record(out)
    assert record["median_ms"] == 0.2 and record["device_ms"] == 0.1
    assert record["device_tflops"] == pytest.approx(2 * record["tflops"])
    assert record["dispatch_ms"] == "00_dispatch_0 0.02 + 01_dispatch_1 0.08"


def test_record_names_the_iree_compile_that_built_the_module(tmp_path: Path) -> None:
    """On a node without iree-compile (a GPU node running carried modules) the row still says which compiler built
    the module: the version its .toolchain file holds, whatever iree-compile this node has or lacks."""
    from opbench import jobs
    from opbench.records import read_record

    module = tmp_path / "module"
    module.mkdir()
    (module / "toolchain").write_text("3.13.0rc20261016 @ abc123\n")
    point = {"op": "conv2d", "suite": "resnet50", "layer": "l2_3x3_128", "count": 3,
             "shape": layer_shape("l2_3x3_128").name, "batch": 16, "dtype": "f16", "layout": "nhwc_fhwc",
             "backend": "iree-rocm", "variant": "default"}  # fmt: skip
    out = tmp_path / "record.json"
    plan = RecordPlan(fields={**point, "program_form": "splitk4_pqn"}, artifact=str(module),
                      skip_reason="no device (compiled OK)")  # fmt: skip
    jobs.record(plan=plan, out=out)
    assert read_record(out)["iree_compile"] == "3.13.0rc20261016 @ abc123"
    assert read_record(out)["program_form"] == "splitk4_pqn"
