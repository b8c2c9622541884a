"""Build checks for the hand-written CUDA conv2d variants (cuda/).

Every file in cuda/variants/*.cu is a variant (the filesystem is the table of variants). For
each one this compiles harness + variant with the exact command line the workflow uses, for
sm_90 and sm_80, and checks:
  * nvcc exits 0 and ptxas reports 0 spill bytes for every function on both architectures;
  * the binary rejects a missing / invalid flag with a usage error naming the flag, and a
    malformed .npy with an error naming the file, before any CUDA call (so this passes on a
    machine without a GPU: a CUDA call there would fail with exit 1 and a "CUDA error").
No GPU is needed. Skipped (with the reason) when nvcc is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opbench.backends.cuda import nvcc_command, variant_archs
from opbench.sass import WATCHED, sass_summary

REPO = Path(__file__).resolve().parents[1]
CUDA_DIR = REPO / "cuda"
VARIANT_FILES = sorted((CUDA_DIR / "variants").glob("*.cu"))
VARIANTS = [p.stem for p in VARIANT_FILES]
DEFAULT_ARCHS = ["sm_90", "sm_80"]  # config.yaml's backends.cuda.archs; a variant may declare its own
USAGE_EXIT = 2  # harness: usage / input errors exit 2, CUDA errors exit 1

# A small valid problem: X [2,5,5,3], W [4,3,3,3] -> Y [2,5,5,4].
PROBLEM = {
    "--n": 2,
    "--h": 5,
    "--w": 5,
    "--c": 3,
    "--k": 4,
    "--r": 3,
    "--s": 3,
    "--stride-h": 1,
    "--stride-w": 1,
    "--pad-h": 1,
    "--pad-w": 1,
}


def _nvcc() -> str | None:
    return (
        os.environ.get("NVCC")
        or shutil.which("nvcc")
        or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)
    )


def compile_command(nvcc: str, variant: str, out: Path) -> list[str]:
    """The workflow's compile line (harness.cu + one variant) for the variant's archs."""
    cmd = nvcc_command(
        variant=variant, archs=variant_archs(variant, DEFAULT_ARCHS), flags=["-O3", "-lineinfo"], out=out
    )
    return [nvcc, *cmd[1:]]


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> dict[str, dict]:
    """Compiles every variant once, in parallel; returns {variant: {binary, rc, log}}."""
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (set NVCC or put nvcc on PATH): CUDA build tests skipped")
    out_dir = tmp_path_factory.mktemp("cuda_build")

    def build(variant_file: Path) -> tuple[str, dict]:
        binary = out_dir / f"conv2d_{variant_file.stem}"
        cmd = compile_command(nvcc, variant_file.stem, binary)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        return variant_file.stem, {"binary": binary, "rc": proc.returncode, "log": proc.stdout + proc.stderr}

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(build, VARIANT_FILES))


def parse_ptxas(log: str) -> tuple[dict[str, int], list[tuple[str, int, int]]]:
    """Returns ({arch: number of entry functions}, [(function, spill stores, spill loads)])."""
    entries: dict[str, int] = {}
    for _, arch in re.findall(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", log):
        entries[arch] = entries.get(arch, 0) + 1
    spills = [
        (fn, int(st), int(ld))
        for fn, st, ld in re.findall(
            r"Function properties for (\S+)\s*\n\s*\d+ bytes stack frame, (\d+) bytes spill stores, "
            r"(\d+) bytes spill loads",
            log,
        )
    ]
    return entries, spills


def write_npy(path: Path, shape: tuple[int, ...], descr: str = "<f4") -> None:
    """Minimal .npy v1.0 writer (no numpy needed); data is zeros of the right size."""
    itemsize = int(descr[2:])
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    count = 1
    for d in shape:
        count *= d
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(count * itemsize))


def run_binary(binary: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)


def problem_args(**overrides) -> list[str]:
    flags = {**PROBLEM, **overrides}
    return [str(a) for kv in flags.items() if kv[1] is not None for a in kv]


@pytest.fixture(scope="session")
def npy_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("npy")
    files = {
        "x": d / "x.npy", "w": d / "w.npy", "x_bad_shape": d / "x_bad_shape.npy", "x_f64": d / "x_f64.npy",
        "w_depthwise": d / "w_depthwise.npy", "w_pointwise": d / "w_pointwise.npy",
    }  # fmt: skip
    write_npy(files["x"], (2, 5, 5, 3))
    write_npy(files["w"], (4, 3, 3, 3))
    write_npy(files["w_depthwise"], (3, 3, 3))
    write_npy(files["w_pointwise"], (4, 3))
    write_npy(files["x_bad_shape"], (2, 5, 6, 3))
    write_npy(files["x_f64"], (2, 5, 5, 3), "<f8")
    return files


def test_variants_exist():
    assert {"naive", "smem_tiled", "register_tiled", "split_reduction"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_compiles_without_spills(builds, variant):
    b = builds[variant]
    assert b["rc"] == 0, f"nvcc failed for {variant}:\n{b['log'][-4000:]}"
    entries, spills = parse_ptxas(b["log"])
    for arch in variant_archs(variant, DEFAULT_ARCHS):
        assert entries.get(arch, 0) >= 1, f"no kernel compiled for {arch}:\n{b['log']}"
    assert spills, f"no ptxas -v function report found:\n{b['log']}"
    spilling = [s for s in spills if s[1] or s[2]]
    assert not spilling, f"register spills (function, stores, loads): {spilling}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_missing_flag_is_usage_error(builds, variant, npy_files):
    binary = builds[variant]["binary"]
    if builds[variant]["rc"] != 0:
        pytest.fail(f"{variant} did not build")
    base = [
        "--mode",
        "run",
        "--input",
        str(npy_files["x"]),
        "--filter",
        str(npy_files["w"]),
        "--output",
        str(npy_files["x"].parent / "y.npy"),
    ]
    for missing in ("--k", "--stride-w", "--pad-h"):
        proc = run_binary(binary, base + problem_args(**{missing: None}))
        assert proc.returncode == USAGE_EXIT, (missing, proc.returncode, proc.stderr)
        assert re.search(rf"missing required flag {re.escape(missing)}\b", proc.stderr), proc.stderr
        assert proc.stdout == "", "stdout must hold only the JSON record"
    proc = run_binary(binary, ["--input", str(npy_files["x"])])
    assert proc.returncode == USAGE_EXIT and "missing required flag --mode" in proc.stderr
    proc = run_binary(binary, base + problem_args(**{"--stride-h": 0}))
    assert proc.returncode == USAGE_EXIT and "--stride-h must be >= 1" in proc.stderr, proc.stderr
    proc = run_binary(binary, base + problem_args(**{"--r": 9}))  # filter taller than input
    assert proc.returncode == USAGE_EXIT and "--r 9" in proc.stderr, proc.stderr
    proc = run_binary(binary, [*base, *problem_args(), "--dtype", "fp8"])
    assert proc.returncode == USAGE_EXIT and "--dtype must be f32, f16 or bf16, got 'fp8'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_malformed_npy_rejected_before_cuda(builds, variant, npy_files):
    binary = builds[variant]["binary"]
    if builds[variant]["rc"] != 0:
        pytest.fail(f"{variant} did not build")
    for bad, expect in (
        ("x_bad_shape", r"shape is \(2, 5, 6, 3\), expected \(2, 5, 5, 3\)"),
        ("x_f64", r"dtype is '<f8', expected '<f4'"),
    ):
        proc = run_binary(
            binary,
            ["--mode", "bench", "--input", str(npy_files[bad]), "--filter", str(npy_files["w"]), *problem_args()],
        )
        assert proc.returncode == USAGE_EXIT, (bad, proc.returncode, proc.stderr)
        assert str(npy_files[bad]) in proc.stderr and re.search(expect, proc.stderr), proc.stderr
        assert "CUDA error" not in proc.stderr
        assert proc.stdout == ""


def test_depthwise_problems_are_checked_before_cuda(builds, npy_files):
    """--op depthwise_conv2d: the filter is [R, S, C], --k may be left out (it is C) and must equal C if given."""
    binary = builds["depthwise_naive"]["binary"]
    if builds["depthwise_naive"]["rc"] != 0:
        pytest.fail("depthwise_naive did not build")
    base = ["--mode", "bench", "--input", str(npy_files["x"]), "--op", "depthwise_conv2d"]
    proc = run_binary(binary, [*base, "--filter", str(npy_files["w"]), *problem_args(**{"--k": None})])
    assert proc.returncode == USAGE_EXIT and re.search(r"expected \(3, 3, 3\)", proc.stderr), proc.stderr
    proc = run_binary(binary, [*base, "--filter", str(npy_files["w_depthwise"]), *problem_args()])
    assert proc.returncode == USAGE_EXIT and "--k must equal --c for depthwise_conv2d" in proc.stderr, proc.stderr
    proc = run_binary(binary, [*base[:-1], "matmul", "--filter", str(npy_files["w"]), *problem_args()])
    assert proc.returncode == USAGE_EXIT, proc.stderr
    assert "--op must be conv2d, depthwise_conv2d, separable_conv2d or attention, got 'matmul'" in proc.stderr
    for stem in ("naive", "depthwise_naive"):  # a valid depthwise problem gets past the checks to the first CUDA call
        proc = run_binary(builds[stem]["binary"], [*base, "--filter", str(npy_files["w_depthwise"]),
                                                   *problem_args(**{"--k": None})])  # fmt: skip
        assert "usage" not in proc.stderr and proc.returncode != USAGE_EXIT, proc.stderr


def test_separable_problems_are_checked_before_cuda(builds, npy_files):
    """--op separable_conv2d: --filter is the depthwise [R, S, C], --pw-filter the pointwise [K, C], required for
    that op and refused for the others."""
    binary = builds["depthwise_naive"]["binary"]
    if builds["depthwise_naive"]["rc"] != 0:
        pytest.fail("depthwise_naive did not build")
    base = ["--mode", "bench", "--input", str(npy_files["x"]), "--filter", str(npy_files["w_depthwise"])]
    separable = [*base, "--op", "separable_conv2d"]
    proc = run_binary(binary, [*separable, *problem_args()])
    assert proc.returncode == USAGE_EXIT and "missing required flag --pw-filter" in proc.stderr, proc.stderr
    proc = run_binary(binary, [*separable, "--pw-filter", str(npy_files["w_depthwise"]), *problem_args()])
    assert proc.returncode == USAGE_EXIT and re.search(r"expected \(4, 3\)", proc.stderr), proc.stderr
    proc = run_binary(binary, [*base, "--op", "depthwise_conv2d", "--pw-filter", str(npy_files["w_pointwise"]),
                               *problem_args(**{"--k": None})])  # fmt: skip
    assert proc.returncode == USAGE_EXIT and "--pw-filter is for --op separable_conv2d only" in proc.stderr
    proc = run_binary(binary, [*separable, "--pw-filter", str(npy_files["w_pointwise"]), *problem_args()])
    assert "usage" not in proc.stderr and proc.returncode != USAGE_EXIT, proc.stderr  # valid: on to the first CUDA call


ATTENTION = {"--b": 2, "--heads": 3, "--s": 5, "--d": 64}  # Q, K, V, O [2,3,5,64]


def attention_args(**overrides) -> list[str]:
    flags = {**ATTENTION, **overrides}
    return [str(a) for kv in flags.items() if kv[1] is not None for a in kv]


def test_attention_problems_are_checked_before_cuda(builds, tmp_path):
    """--op attention: --q --k --v files [B,H,S,D] (--k and --s are the key file and the sequence length there),
    --b --heads --s --d >= 1, --causal 0|1, each tensor under 2^31 elements; the convolutions' flags are refused for
    it and its own for them. Which D a kernel takes is the variant's rule, not the harness's."""
    if builds["attention_fa2"]["rc"] != 0 or builds["naive"]["rc"] != 0:
        pytest.fail("attention_fa2 or naive did not build")
    binary = builds["attention_fa2"]["binary"]
    files = {name: tmp_path / f"{name}.npy" for name in ("q", "k", "v", "bad")}
    for name in ("q", "k", "v"):
        write_npy(files[name], (2, 3, 5, 64))
    write_npy(files["bad"], (2, 5, 3, 64))  # bshd
    inputs = ["--q", str(files["q"]), "--k", str(files["k"]), "--v", str(files["v"])]
    base = ["--mode", "bench", "--op", "attention"]

    def usage(args: list[str], message: str) -> None:
        proc = run_binary(binary, args)
        assert proc.returncode == USAGE_EXIT and message in proc.stderr, (message, proc.returncode, proc.stderr)
        assert proc.stdout == "" and "CUDA error" not in proc.stderr

    for missing in ("--b", "--heads", "--s", "--d"):
        usage([*base, *inputs, *attention_args(**{missing: None})], f"missing required flag {missing}")
    usage([*base, *inputs[:-2], *attention_args()], "missing required flag --v")
    usage(["--mode", "run", "--op", "attention", *inputs, *attention_args()], "missing required flag --output")
    usage([*base, *inputs, *attention_args(**{"--d": 0})], "--d must be >= 1 (got 0)")
    usage([*base, *inputs, *attention_args(**{"--heads": -1})], "--heads must be >= 1 (got -1)")
    usage([*base, *inputs, *attention_args(), "--causal", "2"], "--causal must be 0 or 1 (got 2)")
    usage([*base, *inputs, *attention_args(), "--dtype", "fp8"], "--dtype must be f32, f16 or bf16, got 'fp8'")
    usage([*base, *inputs, *attention_args(**{"--b": 65536, "--heads": 64, "--s": 8})], ">= 2^31 elements each")
    usage([*base, *inputs, *attention_args(), "--input", str(files["q"])], "--input is not a flag of --op attention")
    usage([*base, *inputs, *attention_args(), "--pad-h", "1"], "--pad-h is not a flag of --op attention")
    bad_q = ["--q", str(files["bad"]), *inputs[2:]]
    usage([*base, *bad_q, *attention_args()], f"{files['bad']}: ")
    usage([*base, *bad_q, *attention_args()], "expected (2, 3, 5, 64)")
    bad_v = [*inputs[:4], "--v", str(files["bad"])]
    usage([*base, *bad_v, *attention_args(**{"--causal": 1})], str(files["bad"]))
    # a convolution refuses attention's own flags
    conv = ["--mode", "bench", "--input", str(files["q"]), "--filter", str(files["k"]), *problem_args()]
    proc = run_binary(binary, [*conv, "--heads", "2"])
    assert proc.returncode == USAGE_EXIT and "--heads is for --op attention only" in proc.stderr, proc.stderr
    # valid problems (any D, causal or not) get past the checks to the first CUDA call, in any variant's binary
    for stem, extra in (("attention_fa2", []), ("attention_fa2", ["--causal", "1"]), ("naive", [])):
        proc = run_binary(builds[stem]["binary"], [*base, *inputs, *attention_args(), *extra])
        assert "usage" not in proc.stderr and proc.returncode != USAGE_EXIT, proc.stderr
    for name in ("q", "k", "v"):
        write_npy(files[name], (1, 1, 3, 80))
    proc = run_binary(binary, [*base, *inputs, "--b", "1", "--heads", "1", "--s", "3", "--d", "80"])
    assert "usage" not in proc.stderr and proc.returncode != USAGE_EXIT, proc.stderr


# What each variant's machine code must contain (opbench.sass mnemonic groups): the claim in its header comment.
EXPECTED_SASS = {
    "mma_implicit_gemm": ("HMMA (mma.sync)", "LDSM (ldmatrix)", "LDGSTS (cp.async)"),
    "hopper_wgmma": ("HGMMA (wgmma)", "UTMALDG (TMA)", "UTMASTG (TMA store)", "LDGSTS (cp.async)"),  # + gather path
    "register_tiled": ("FFMA", "LDS.128"),
    "split_reduction": ("FFMA", "LDS.128"),
    # 16-byte accesses of 4 f32 channels: the tile's loads from global memory, the sliding window's from shared
    "depthwise_smem": ("FFMA", "LDS.128", "LDG.E.128"),
    "depthwise_async": ("FFMA", "LDS.128", "LDGSTS (cp.async)"),  # the tile copied by cp.async
    "depthwise_stream": ("FFMA", "LDS.128", "LDGSTS (cp.async)"),  # the ring of input rows filled by cp.async
    "depthwise_direct": ("FFMA", "LDG.E.128"),  # 16-byte loads of each thread's window (other shapes: async's kernel)
    # the depthwise stage in float32 FMAs on a cp.async-staged input tile, the 1x1 on the tensor cores via ldmatrix
    "separable_fused": ("FFMA", "LDGSTS (cp.async)", "LDSM (ldmatrix)", "HMMA (mma.sync)"),
    # Q·Kᵀ and P·V on mma.sync, K/V tiles by cp.async, Q, K and V fragments by ldmatrix (V's .trans)
    "attention_fa2": ("HMMA (mma.sync)", "LDGSTS (cp.async)", "LDSM (ldmatrix)"),
    # Q·Kᵀ and P·V on wgmma (P from registers), Q, K and V tiles by TMA; no ldmatrix, no cp.async
    "attention_wgmma": ("HGMMA (wgmma)", "UTMALDG (TMA)"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_sass_has_the_intended_instructions_and_no_local_memory(builds, variant):
    try:
        summary = sass_summary(builds[variant]["binary"])
    except FileNotFoundError as error:
        pytest.skip(f"no SASS tools: {error}")
    assert set(summary) == set(variant_archs(variant, DEFAULT_ARCHS)), summary.keys()
    for arch, kernels in summary.items():
        totals = {name: sum(counts[name] for counts in kernels.values()) for name in WATCHED}
        for name in EXPECTED_SASS.get(variant, ()):
            assert totals[name] > 0, f"{variant} {arch}: no {name} in the SASS ({totals})"
        assert totals["LDL (local load)"] == totals["STL (local store)"] == 0, f"{variant} {arch}: {totals}"
