"""The work of each workflow job, one function per rule. Snakemake rules call these through `opbench.cli`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from opbench import phases, provenance
from opbench.backends import BenchSettings, Job, get_backend
from opbench.dtypes import get_dtype
from opbench.ops import get_op
from opbench.peaks import read_peaks
from opbench.plan import RecordPlan
from opbench.records import make_record, write_record
from opbench.timing import gbps, summarize, tflops
from opbench.verify import ErrorModel, Verdict, judge


def generate_mlir(*, op: str, shape: str, dtype: str, layout: str, out: Path, form: str = "plain") -> None:
    the_op = get_op(op)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = the_op.mlir(the_op.shape_from_name(shape), get_dtype(dtype), layout, form)
    out.write_text(text)


def make_inputs(*, op: str, shape: str, dtype: str, layout: str, seed: int, out: Path) -> None:
    """Random inputs from the problem's seed, in the layout, rounded to the dtype, stored in the dtype's own width
    (stored_array) as an .npz; load_inputs reads them back as the same float32 values."""
    the_op = get_op(op)
    element = get_dtype(dtype).numpy
    arrays = the_op.make_inputs(the_op.shape_from_name(shape), get_dtype(dtype), layout, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        np.savez(f, **{name: stored_array(values, element) for name, values in arrays.items()})


def stored_array(values: np.ndarray, element: np.dtype) -> np.ndarray:
    """float32 `values` as an inputs file keeps them: in the 16-bit element type where they hold exactly (every
    input is rounded to it; half the disk of float32, which a large problem's many files need on a GPU node's disk),
    bf16 as its bits (uint16: NumPy's .npy has no bfloat16); float32 where any value would change."""
    if element.itemsize != 2:
        return values
    narrow = values.astype(element)
    if not np.array_equal(narrow.astype(np.float32), values):
        return values
    return narrow if element == np.float16 else narrow.view(np.uint16)


def load_inputs(path: Path, op: str) -> dict[str, np.ndarray]:
    """An inputs file's arrays as float32 (stored_array's inverse: uint16 is bfloat16's bits)."""
    with np.load(path) as data:
        return {name: _as_float32(data[name]) for name in get_op(op).input_names}


def _as_float32(stored: np.ndarray) -> np.ndarray:
    if stored.dtype == np.uint16:
        return stored.view(get_dtype("bf16").numpy).astype(np.float32)
    return stored.astype(np.float32, copy=False)


def compute_reference(*, op: str, shape: str, layout: str, inputs: Path, out: Path, scale_out: Path) -> None:
    """The float64 reference, and beside it the scale of each element's products and their count (the element-wise
    verdict's bound, opbench.verify) and, for an op that rounds an intermediate, that intermediate's scale."""
    the_op = get_op(op)
    reference, scale, terms, intermediate = the_op.reference_and_scales(
        load_inputs(inputs, op), the_op.shape_from_name(shape), layout
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, reference)
    # The scales set a bound's size, not a value to compare with: float32 keeps them to 1e-7 in half the disk.
    products = {"scale": scale.astype(np.float32), "terms": terms}
    if intermediate is not None:
        products["intermediate"] = intermediate.astype(np.float32)
    with open(scale_out, "wb") as f:
        np.savez(f, **products)


def _job(
    *, backend: str, op: str, shape: str, dtype: str, layout: str, variant: str, inputs: Path,
    artifact: Path | None, options: dict[str, str],
) -> Job:  # fmt: skip
    return Job(
        op=op, shape=get_op(op).shape_from_name(shape), dtype=get_dtype(dtype), layout=layout, variant=variant,
        inputs=load_inputs(inputs, op), artifact=artifact, options=options,
    )  # fmt: skip


def build(*, backend: str, params: dict[str, Any], inputs: list[Path], out: Path) -> None:
    """Build one artifact of a backend (its build_params and build_inputs, from the workflow)."""
    get_backend(backend).build(params, inputs, out)


def run(*, backend: str, out: Path, **job: Any) -> None:
    """Run once and save the output as it came (its own dtype). Phases (opbench.phases, in the current recording):
    `load_inputs`, `backend` (with the backend's own spans inside), `write_output`."""
    runner = get_backend(backend)
    with phases.span("load_inputs"):
        the_job = _job(backend=backend, **job)
    with phases.span("backend"):
        output = runner.run(the_job)
    with phases.span("write_output"):
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, output)


def verify(
    *, output: Path, reference: Path, scale: Path, tolerance: float, dtype: str, precision: str, out: Path
) -> None:
    """Judge a row's output: norm-wise at its tolerance and element-wise against what its rounding explains."""
    ref = np.load(reference)
    with np.load(scale) as products:
        scales = {name: products[name].astype(np.float64) for name in ("scale", "intermediate") if name in products}
        bound = ErrorModel.of(get_dtype(dtype), precision).bound(
            ref, scales["scale"], int(products["terms"]), scales.get("intermediate")
        )
    verdict = judge(np.load(output), ref, tolerance, bound)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(verdict.to_dict(), indent=1) + "\n")


def judge_job(job: Job, output: np.ndarray, tolerance: float, precision: str) -> Verdict:
    """compute_reference and verify in one process, for a job's output in hand (tests, scripts/variant_check.py):
    the float64 reference, the element-wise bound from the products' (and any rounded intermediate's) scale, and
    the verdict at `tolerance`, the `precision`'s."""
    reference, scale, terms, intermediate = get_op(job.op).reference_and_scales(job.inputs, job.shape, job.layout)
    bound = ErrorModel.of(job.dtype, precision).bound(reference, scale, terms, intermediate)
    return judge(output, reference, tolerance, bound)


def benchmark(*, backend: str, settings: BenchSettings, out: Path, **job: Any) -> None:
    """Time the point and write its timing JSON, with `phases_s`: the job's phases (opbench.phases) up to this
    writing: those of the process or worker that runs it, `load_inputs` and `backend` (with the backend's own spans
    inside; `write_output` is recorded after, in the job's log only)."""
    runner = get_backend(backend)
    with phases.recording() as job_phases:
        with phases.span("load_inputs"):
            the_job = _job(backend=backend, **job)
        with phases.span("backend"):
            result = runner.benchmark(the_job, settings)
        with phases.span("write_output"):
            result["stats"] = summarize(result["samples_ms"]).to_dict()
            result["run_id"] = provenance.run_id()
            result["phases_s"] = job_phases.to_dict()
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1) + "\n")


def provenance_fields() -> dict[str, Any]:
    return {
        "commit": provenance.git_commit(),
        "iree_compile": provenance.iree_compile_version(),
        "iree_runtime": provenance.iree_runtime_version(),
        "nvcc": provenance.nvcc_version(),
        "cuda_driver": provenance.cuda_driver_version(),
        "host": provenance.host(),
        "timestamp": provenance.timestamp(),
    }


def _index(position: list[int] | None) -> str | None:
    """An element's index as the records show it, e.g. `3,0,6,1`."""
    return None if position is None else ",".join(str(i) for i in position)


def record(*, plan: RecordPlan, out: Path) -> None:
    """Merge a point's planned fields, its verification and timing (or its SKIP reason), the fields its backend reads
    from the artifact (e.g. the iree-compile that built a module: a GPU node that runs carried modules has none of its
    own) and this machine's provenance into its record."""
    point = plan.fields
    backend = get_backend(point["backend"])
    fields: dict[str, Any] = {**plan.fields, **provenance_fields()}
    if plan.artifact is not None:
        fields.update(backend.artifact_fields(Path(plan.artifact)))
    if plan.skip_reason:
        fields.update(status="SKIP", reason=plan.skip_reason)
    else:
        assert plan.verification is not None and plan.timing is not None
        verdict = json.loads(Path(plan.verification).read_text())
        bench = json.loads(Path(plan.timing).read_text())
        stats = bench["stats"]
        the_op = get_op(point["op"])
        shape = the_op.shape_from_name(point["shape"])
        dtype = get_dtype(point["dtype"])
        fields.update(
            status=verdict["status"], reason=verdict["reason"], relerr=verdict["relerr"],
            tolerance=verdict["tolerance"], elem_ratio=verdict.get("elem_ratio"),
            worst_element=_index(verdict.get("worst_element")), median_ms=stats["median_ms"], min_ms=stats["min_ms"],
            p90_ms=stats["p90_ms"], cv=stats["cv"], samples=stats["samples"], timing_method=bench["method"],
            tflops=tflops(shape.flops(), stats["median_ms"]),
            gbps=gbps(shape.min_bytes(dtype.itemsize, dtype.output_itemsize), stats["median_ms"]),
            device=bench.get("device"), run_id=bench.get("run_id"),
            samples_ms=[float(f"{ms:.6g}") for ms in bench.get("samples_ms") or []] or None,
            chosen=bench.get("chosen"),
            **{k: bench[k] for k in ("torch", "cudnn") if k in bench},
        )  # fmt: skip
        if "dispatches" in bench:
            dispatches = bench["dispatches"]
            per_dispatch = dispatches["per_dispatch"].items()
            fields.update(
                device_ms=dispatches["total_ms"], device_tflops=tflops(shape.flops(), dispatches["total_ms"]),
                dispatch_ms=" + ".join(f"{name} {d['median_ms']:.4g}" for name, d in per_dispatch),
            )  # fmt: skip
        if plan.probe is not None:
            peaks = read_peaks(Path(plan.probe))
            precision = backend.tolerance_key(dtype, point["variant"])
            if precision in peaks:
                fields["peak_tflops_frac"] = fields["tflops"] / peaks[precision]
            if "copy_gbps" in peaks:
                fields["peak_gbps_frac"] = fields["gbps"] / peaks["copy_gbps"]
    write_record(make_record(**fields), out)
