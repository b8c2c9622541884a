"""Quick GPU check of CUDA kernel variants outside the workflow: build, verify, time beside the baseline, print a table.

For kernel development on a GPU machine (one call does it all); the published numbers come from the workflow.
Every row is verified as the workflow verifies it (the dtype's norm-wise tolerance and the element-wise bound against
the float64 reference) before it is timed. The variants' op (their `// opbench:` line; all of one op) picks the
suite and the baseline: conv2d on ResNet-50 beside cuDNN in the dtype's math mode (f32 variants computing in TF32 race
cuDNN tf32), depthwise_conv2d on MobileNetV2's depthwise layers and separable_conv2d on its blocks beside cuDNN
through PyTorch, attention on the FlashAttention-2 grid beside PyTorch SDPA's flash backend.

    python3 scripts/variant_check.py --variants mma_implicit_gemm --dtypes f16,bf16,f32 --batches 16 \\
        [--layers l1_3x3_64,l3_3x3_256] [--edge] [--json $OUT/check.json]
    python3 scripts/variant_check.py --variants depthwise_smem,depthwise_async --dtypes f16,f32 --batches 32
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opbench.backends import BenchSettings, Job, get_backend  # noqa: E402
from opbench.backends.cuda import HARNESS_LAYOUTS, build, variant_archs, variant_info  # noqa: E402
from opbench.config import load  # noqa: E402
from opbench.dtypes import get_dtype  # noqa: E402
from opbench.jobs import judge_job  # noqa: E402
from opbench.ops import get_op  # noqa: E402
from opbench.timing import gbps, summarize, tflops  # noqa: E402

CUDNN_MODE = {("f32", "tf32"): "tf32", ("f32", "fp32"): "fp32", ("f16", None): "fp16", ("bf16", None): "bf16"}
# Per op: the config file holding its default suite, that suite, and the baseline backend.
OP_SUITES = {
    "conv2d": ("config.yaml", "resnet50"),
    "depthwise_conv2d": ("config.yaml", "mobilenet_v2_depthwise"),
    "separable_conv2d": ("config/separable.yaml", "mobilenet_v2_separable"),
    "attention": ("config/attention.yaml", "attention_fa2"),
}
# Edge shapes of tests/test_gpu.py's kind: C=3, odd K/C, odd H/W, stride 2, pad 0/3, 1x1, 7x7, dilation 2.
EDGE_LAYERS = [
    {"name": "c3_odd_7x7_s2_p3", "h": 31, "w": 29, "c": 3, "k": 17, "r": 7, "s": 7, "stride": 2, "pad": 3},
    {"name": "k_c_odd_3x3", "h": 13, "w": 11, "c": 37, "k": 70, "r": 3, "s": 3, "stride": 1, "pad": 1},
    {"name": "pw_1x1_p0", "h": 9, "w": 9, "c": 130, "k": 66, "r": 1, "s": 1, "stride": 1, "pad": 0},
    {"name": "s2_1x1_c64", "h": 15, "w": 15, "c": 64, "k": 129, "r": 1, "s": 1, "stride": 2, "pad": 0},
    {"name": "dil2_asym", "h": 12, "w": 17, "c": 5, "k": 9, "r": 3, "s": 3, "stride": [1, 2], "pad": [2, 1],
     "dilation": 2},
    {"name": "c64_k72_3x3", "h": 10, "w": 9, "c": 64, "k": 72, "r": 3, "s": 3, "stride": 1, "pad": 1},
    {"name": "c128_s2_3x3", "h": 17, "w": 15, "c": 128, "k": 136, "r": 3, "s": 3, "stride": 2, "pad": 1},
]  # fmt: skip


def suite_layers(op: str, suite: str | None) -> list[dict[str, Any]]:
    """The layers of `suite` (default: the op's, OP_SUITES), schema defaults filled."""
    configfile, default = OP_SUITES[op]
    config = load(*([] if configfile == "config.yaml" else [REPO / configfile]))
    return list(config["suites"][suite or default]["layers"])


def baseline(op: str, dtype: str, f32_math: str) -> tuple[str, str]:
    """(backend, variant) of the op's baseline in the dtype's math mode."""
    if op == "attention":
        return "sdpa", "flash" if dtype != "f32" else "efficient"
    return "cudnn", CUDNN_MODE[(dtype, f32_math if dtype == "f32" else None)]


def check_one(
    backend: str, variant: str, artifact: Path | None, op_name: str, layer: dict[str, Any], batch: int, dtype: str,
    settings: BenchSettings, tolerances: dict[str, float], time_it: bool,
) -> dict[str, Any]:  # fmt: skip
    op = get_op(op_name)
    layout = HARNESS_LAYOUTS[op_name]
    shape = op.shape_from_layer(layer, batch)
    the_dtype = get_dtype(dtype)
    seed = zlib.crc32(f"{layer['name']}{batch}{dtype}".encode())
    job = Job(
        op=op_name, shape=shape, dtype=the_dtype, layout=layout, variant=variant,
        inputs=op.make_inputs(shape, the_dtype, layout, seed), artifact=artifact, options={},
    )  # fmt: skip
    row: dict[str, Any] = {"backend": backend, "variant": variant, "layer": layer["name"], "batch": batch}
    row |= {"dtype": dtype, "flops": shape.flops()}
    try:
        the_backend = get_backend(backend)
        precision = the_backend.tolerance_key(the_dtype, variant)
        output = the_backend.run(job)
        result_verdict = judge_job(job, output, tolerances[precision], precision)
        row |= {"status": result_verdict.status, "relerr": result_verdict.relerr, "reason": result_verdict.reason}
        if result_verdict.status == "PASS" and time_it:
            result = the_backend.benchmark(job, settings)
            stats = summarize(result["samples_ms"])
            row |= {"median_ms": stats.median_ms, "cv": stats.cv, "tflops": tflops(shape.flops(), stats.median_ms)}
            row["gbps"] = gbps(shape.min_bytes(the_dtype.itemsize, the_dtype.output_itemsize), stats.median_ms)
            row["detail"] = result.get("detail")
    except Exception as error:  # one failing row must not stop the others
        row |= {"status": "ERROR", "reason": str(error)[-2000:]}
    return row


def print_geomeans(rows: list[dict[str, Any]]) -> None:
    """Geometric mean of the per-layer ratio to the baseline, per (variant, dtype, batch), over layers both timed."""
    cudnn = {(r["layer"], r["batch"], r["dtype"]): r["tflops"]
             for r in rows if r["backend"] != "cuda" and "tflops" in r}  # fmt: skip
    groups: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        ref = cudnn.get((r["layer"], r["batch"], r["dtype"]))
        if r["backend"] == "cuda" and "tflops" in r and ref:
            groups.setdefault((r["variant"], r["dtype"], r["batch"]), []).append(r["tflops"] / ref)
    for (variant, dtype, batch), ratios in sorted(groups.items()):
        geomean = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"geomean ratio to the baseline: {variant} {dtype} b{batch}: {geomean:.3f} over {len(ratios)} layers")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", required=True, help="comma-separated cuda/variants/<name>.cu names")
    parser.add_argument("--dtypes", default="f16", help="comma-separated harness dtypes (f32, f16, bf16)")
    parser.add_argument("--batches", help="comma-separated (default: 16 for conv2d, 32 for depthwise and separable, 1 "
                        "for attention, whose layers give their batch)")  # fmt: skip
    parser.add_argument("--suite", help="the suite (default per op: " + ", ".join(
        f"{op} {suite}" for op, (_, suite) in OP_SUITES.items()) + ")")  # fmt: skip
    parser.add_argument("--layers", default="", help="comma-separated layer names of the suite (default: all)")
    parser.add_argument("--edge", action="store_true", help="conv2d: also verify (not time) the edge shapes")
    parser.add_argument("--no-cudnn", action="store_true", help="no baseline rows (cuDNN, or SDPA for attention)")
    parser.add_argument("--binary-dir", type=Path, help="take conv2d_<variant> from here instead of building")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write all rows here")
    args = parser.parse_args()

    tolerances = yaml.safe_load((REPO / "config.yaml").read_text())["tolerances"]
    settings = BenchSettings(warmup_ms=50, repetitions=args.reps, min_sample_ms=5, flush_l2=True)
    variants = [v for v in args.variants.split(",") if v]
    ops = {variant_info(variant).op for variant in variants}
    if len(ops) != 1:
        parser.error(f"the variants compute different ops ({', '.join(sorted(ops))}): check one op per call")
    (op_name,) = ops
    if args.edge and op_name != "conv2d":
        parser.error("--edge is conv2d's (the other ops' edge shapes are in their GPU tests)")
    dtypes = [d for d in args.dtypes.split(",") if d]
    default_batch = {"conv2d": "16", "depthwise_conv2d": "32", "separable_conv2d": "32", "attention": "1"}[op_name]
    batches = [int(b) for b in (args.batches or default_batch).split(",")]
    wanted = {name for name in args.layers.split(",") if name}
    try:
        all_layers = suite_layers(op_name, args.suite)
    except KeyError:
        parser.error(f"no suite {args.suite!r} in {OP_SUITES[op_name][0]}")
    layers = [layer for layer in all_layers if not wanted or layer["name"] in wanted]
    if wanted - {layer["name"] for layer in layers}:
        parser.error(f"unknown layers: {sorted(wanted - {layer['name'] for layer in layers})}")

    binaries: dict[str, Path] = {}
    tmp = Path(tempfile.mkdtemp(prefix="variant-check-"))
    for variant in variants:
        if args.binary_dir:
            binaries[variant] = args.binary_dir / f"conv2d_{variant}"
            continue
        start = time.time()
        binaries[variant] = tmp / f"conv2d_{variant}"
        build(variant=variant, archs=variant_archs(variant, ["sm_90", "sm_80"]), flags=["-O3", "-lineinfo"],
              out=binaries[variant])  # fmt: skip
        print(f"built {variant} in {time.time() - start:.0f} s", flush=True)

    rows: list[dict[str, Any]] = []
    for variant in variants:
        info = variant_info(variant)
        for dtype in dtypes:
            if dtype not in info.dtypes:
                print(f"skip {variant} {dtype}: not declared by the variant", flush=True)
                continue
            edge = [(layer, b) for layer in EDGE_LAYERS for b in (1, 3)] if args.edge else []
            for layer, batch in edge:
                rows.append(check_one("cuda", variant, binaries[variant], op_name, layer, batch, dtype, settings,
                                      tolerances, time_it=False))  # fmt: skip
                print(json.dumps({k: rows[-1].get(k) for k in ("variant", "dtype", "layer", "batch", "status",
                                                                "relerr", "reason")}), flush=True)  # fmt: skip
            for batch in batches:
                for layer in layers:
                    row = check_one("cuda", variant, binaries[variant], op_name, layer, batch, dtype, settings,
                                    tolerances, time_it=True)  # fmt: skip
                    rows.append(row)
                    base_backend, base_variant = baseline(op_name, dtype, info.f32_math)
                    if not args.no_cudnn and not any(
                        r["backend"] == base_backend and r["layer"] == layer["name"] and r["batch"] == batch
                        and r["dtype"] == dtype for r in rows
                    ):  # fmt: skip
                        rows.append(check_one(base_backend, base_variant, None, op_name, layer, batch, dtype,
                                              settings, tolerances, time_it=True))  # fmt: skip
                    ref = next((r for r in rows if r["backend"] == base_backend and r["layer"] == layer["name"]
                                and r["batch"] == batch and r["dtype"] == dtype), {})  # fmt: skip
                    ratio = row.get("tflops", 0) / ref["tflops"] if ref.get("tflops") else float("nan")
                    detail = row.get("detail") or {}
                    keys = ("path", "tile", "schedule", "epilogue", "blocks_per_sm")
                    chosen = {k: detail[k] for k in keys if k in detail}
                    note = json.dumps(chosen) if detail else row.get("reason", "")[:300]
                    print(f"{variant:20s} {dtype:5s} b{batch:<3d} {layer['name']:17s} {row['status']:5s} "
                          f"relerr={row.get('relerr', float('nan')):.2e} {row.get('tflops', 0):8.1f} TFLOP/s "
                          f"{row.get('gbps', 0):7.0f} GB/s {base_backend} {ref.get('tflops', 0):8.1f} TFLOP/s "
                          f"{ref.get('gbps', 0):7.0f} GB/s ratio {ratio:5.2f} {note}",
                          flush=True)  # fmt: skip
    print_geomeans(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    bad = [r for r in rows if r["status"] != "PASS"]
    print(f"{len(rows) - len(bad)} PASS, {len(bad)} not PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
