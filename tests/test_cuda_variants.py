"""The `// opbench:` line of a CUDA variant file: what the matrix, the build and the tolerance read from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opbench.backends import Problem, get_backend
from opbench.backends.cuda import VariantInfo, known_variants, parse_variant_info, variant_archs, variant_info
from opbench.dtypes import get_dtype
from opbench.matrix import make_problem

PATH = Path("cuda/variants/example.cu")


def test_defaults_without_a_metadata_line() -> None:
    info = parse_variant_info('// a plain fp32 kernel\n#include "conv2d.cuh"\n', PATH)
    assert info == VariantInfo(op="conv2d", dtypes=("f32",), f32_math="fp32", archs=None)


def test_a_depthwise_variant_declares_its_op() -> None:
    info = parse_variant_info("// opbench: op=depthwise_conv2d dtypes=f32,f16\n", PATH)
    assert info == VariantInfo(op="depthwise_conv2d", dtypes=("f32", "f16"))
    assert variant_info("depthwise_smem").op == "depthwise_conv2d" and variant_info("naive").op == "conv2d"


def test_full_metadata_line() -> None:
    info = parse_variant_info("// opbench: dtypes=f16,bf16,f32 f32_math=tf32 archs=sm_90a\n", PATH)
    assert info == VariantInfo(dtypes=("f16", "bf16", "f32"), f32_math="tf32", archs=("sm_90a",))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("// opbench: dtypes=f16,fp8", r"dtypes \['fp8'\] unknown"),
        ("// opbench: f32_math=fp16", "f32_math must be fp32 or tf32, got 'fp16'"),
        ("// opbench: archs=hopper", r"archs \['hopper'\] are not nvcc targets"),
        ("// opbench: stages=4", "unknown '// opbench:' key 'stages'"),
        ("// opbench: op=matmul", "op 'matmul' unknown"),
        ("// opbench: dtypes", "item 'dtypes' is not key=value"),
        ("// opbench: dtypes=f16\n// opbench: archs=sm_90", "more than one '// opbench:' line"),
    ],
)
def test_bad_metadata_names_the_file_and_the_item(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_variant_info(line + "\n", PATH)
    assert str(PATH) in str(error.value)


def test_every_variant_file_parses_and_fp32_variants_stay_fp32() -> None:
    for variant in known_variants():
        info = variant_info(variant)
        assert set(info.dtypes) <= {"f32", "f16", "bf16"}
    for variant in ("naive", "smem_tiled", "register_tiled", "split_reduction"):
        assert variant_info(variant) == VariantInfo()
        assert variant_archs(variant, ["sm_90", "sm_80"]) == ["sm_90", "sm_80"]


def problem(dtype: str, layout: str) -> Problem:
    return make_problem(op="conv2d", shape="n1_h8_w8_c16_k16_r3_s3_st1_p1", dtype=dtype, layout=layout)


def test_matrix_support_and_tolerance_follow_the_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    import opbench.backends.cuda as cuda

    declared = VariantInfo(dtypes=("f16", "f32"), f32_math="tf32", archs=("sm_90a",))
    monkeypatch.setattr(cuda, "variant_info", lambda variant: declared)
    backend = get_backend("cuda")
    assert backend.unsupported(problem("f16", "nhwc_fhwc"), "v") is None
    assert backend.unsupported(problem("bf16", "nhwc_fhwc"), "v") == "cuda/variants/v.cu implements f16, f32, not bf16"
    assert "layout nhwc_fhwc" in backend.unsupported(problem("f16", "nchw_fchw"), "v")
    assert backend.tolerance_key(get_dtype("f32"), "v") == "tf32"
    assert backend.tolerance_key(get_dtype("f16"), "v") == "f16"
    assert cuda.variant_archs("v", ["sm_90", "sm_80"]) == ["sm_90a"]


def test_each_variant_runs_its_own_op_in_its_layout() -> None:
    backend = get_backend("cuda")
    depthwise = make_problem(op="depthwise_conv2d", shape="n1_h8_w8_c16_r3_s3_st1_p1", dtype="f16", layout="nhwc_hwc")
    assert backend.unsupported(depthwise, "depthwise_smem") is None
    assert backend.unsupported(depthwise, "mma_implicit_gemm") == (
        "cuda/variants/mma_implicit_gemm.cu computes conv2d, not depthwise_conv2d"
    )
    assert backend.unsupported(problem("f16", "nhwc_fhwc"), "depthwise_smem") == (
        "cuda/variants/depthwise_smem.cu computes depthwise_conv2d, not conv2d"
    )
    nchw = make_problem(op="depthwise_conv2d", shape="n1_h8_w8_c16_r3_s3_st1_p1", dtype="f16", layout="nchw_chw")
    assert backend.unsupported(nchw, "depthwise_smem") == (
        "the harness takes depthwise_conv2d in layout nhwc_hwc, not nchw_chw"
    )


def test_harness_flags_name_the_op() -> None:
    from opbench.backends.cuda import problem_flags
    from opbench.ops import get_op

    depthwise = get_op("depthwise_conv2d").shape_from_name("n2_h9_w7_c5_r3_s3_st2_p1")
    flags = problem_flags(depthwise, "depthwise_conv2d")
    assert flags[:2] == ["--op", "depthwise_conv2d"] and "--k" not in flags and flags[flags.index("--c") + 1] == "5"
    conv = get_op("conv2d").shape_from_name("n1_h8_w8_c16_k24_r3_s3_st1_p1")
    flags = problem_flags(conv)
    assert flags[:2] == ["--op", "conv2d"] and flags[flags.index("--k") + 1] == "24"
    separable = get_op("separable_conv2d").shape_from_name("n1_h8_w8_c16_k24_r3_s3_st1_p1")
    flags = problem_flags(separable, "separable_conv2d")
    assert flags[:2] == ["--op", "separable_conv2d"] and flags[flags.index("--k") + 1] == "24"


def test_the_attention_variant_runs_bhsd_f16_and_bf16() -> None:
    """attention_fa2 declares op=attention; the harness takes attention in bhsd only (bshd points SKIP, saying so)."""
    assert variant_info("attention_fa2") == VariantInfo(op="attention", dtypes=("f16", "bf16"))
    backend = get_backend("cuda")

    def attention(dtype: str, layout: str) -> Problem:
        return make_problem(op="attention", shape="b2_h3_s100_d64_causal", dtype=dtype, layout=layout)

    assert backend.unsupported(attention("f16", "bhsd"), "attention_fa2") is None
    assert backend.unsupported(attention("bf16", "bhsd"), "attention_fa2") is None
    assert backend.unsupported(attention("f16", "bshd"), "attention_fa2") == (
        "the harness takes attention in layout bhsd, not bshd"
    )
    assert backend.unsupported(attention("f32", "bhsd"), "attention_fa2") == (
        "cuda/variants/attention_fa2.cu implements f16, bf16, not f32"
    )
    assert backend.unsupported(attention("f16", "bhsd"), "mma_implicit_gemm") == (
        "cuda/variants/mma_implicit_gemm.cu computes conv2d, not attention"
    )
    assert backend.unsupported(problem("f16", "nhwc_fhwc"), "attention_fa2") == (
        "cuda/variants/attention_fa2.cu computes attention, not conv2d"
    )


def test_the_hopper_attention_variant_is_sm90a_only() -> None:
    """attention_wgmma (TMA, wgmma) declares op=attention and its own nvcc target: sm_90a, whatever the config's."""
    assert variant_info("attention_wgmma") == VariantInfo(op="attention", dtypes=("f16", "bf16"), archs=("sm_90a",))
    assert variant_archs("attention_wgmma", ["sm_90", "sm_80"]) == ["sm_90a"]
    backend = get_backend("cuda")
    bshd = make_problem(op="attention", shape="b1_h2_s129_d128", dtype="f16", layout="bshd")
    assert backend.unsupported(bshd, "attention_wgmma") == "the harness takes attention in layout bhsd, not bshd"
    assert backend.unsupported(problem("f16", "nhwc_fhwc"), "attention_wgmma") == (
        "cuda/variants/attention_wgmma.cu computes attention, not conv2d"
    )


def test_attention_harness_flags() -> None:
    from opbench.backends.cuda import problem_flags
    from opbench.ops import get_op

    causal = get_op("attention").shape_from_name("b2_h3_s257_d128_causal")
    assert problem_flags(causal, "attention") == [
        "--op", "attention", "--b", "2", "--heads", "3", "--s", "257", "--d", "128", "--causal", "1",
    ]  # fmt: skip
    full = get_op("attention").shape_from_name("b1_h1_s1_d64")
    assert problem_flags(full, "attention")[-2:] == ["--causal", "0"]


def test_every_harness_op_names_a_flag_for_each_input() -> None:
    from opbench.backends.cuda import HARNESS_INPUT_FLAGS, HARNESS_LAYOUTS
    from opbench.ops import get_op

    for op in HARNESS_LAYOUTS:
        assert set(get_op(op).input_names) <= set(HARNESS_INPUT_FLAGS), op
    assert [HARNESS_INPUT_FLAGS[name] for name in get_op("attention").input_names] == ["--q", "--k", "--v"]
