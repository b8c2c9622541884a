"""`python -m opbench <command>`: the commands the workflow's rules run, and `bench`, the main entry point."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from opbench import phases, worker_client
from opbench.peaks import PROBED_DEVICES

# The modules behind the commands are imported in main(), when a command needs them: a GPU job that hands its point
# to the worker (--gpu-job) costs a Python start, not NumPy's, PyTorch's and IREE's imports (phases, worker_client
# and peaks need the standard library only).


def _problem_args(p: argparse.ArgumentParser, *, dtype: bool = True, layout: bool = True) -> None:
    p.add_argument("--op", required=True)
    p.add_argument("--shape", required=True, help="shape id, e.g. n1_h56_w56_c64_k64_r3_s3_st1_p1")
    if dtype:
        p.add_argument("--dtype", required=True)
    if layout:
        p.add_argument("--layout", required=True)


def _job_args(p: argparse.ArgumentParser) -> None:
    _problem_args(p)
    p.add_argument("--backend", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--artifact", type=Path, default=None, help="compiled module or binary, if the backend has one")
    p.add_argument("--options", default="{}", help="the backend's job options, as a JSON object")
    p.add_argument(
        "--gpu-job", action="store_true",
        help="a workflow's GPU job: hand it to this GPU's worker (opbench.worker) where the config's gpu_worker is on",
    )  # fmt: skip


def _job_kwargs(a: argparse.Namespace) -> dict:
    options = json.loads(a.options)
    return dict(
        backend=a.backend, op=a.op, shape=a.shape, dtype=a.dtype, layout=a.layout, variant=a.variant,
        inputs=a.inputs, artifact=a.artifact, options=options,
    )  # fmt: skip


def _bench_settings(a: argparse.Namespace) -> dict[str, float | int | bool]:
    return dict(
        warmup_ms=a.warmup_ms, repetitions=a.repetitions, min_sample_ms=a.min_sample_ms, flush_l2=bool(a.flush_l2)
    )


def _run_job(command: str, a: argparse.Namespace, **extra: object) -> None:
    """A run or benchmark job: in this process, or through the GPU worker."""
    kwargs = {**_job_kwargs(a), "out": a.out, **extra}
    worker = worker_client.settings_from_env() if a.gpu_job else None
    if worker is None or not worker["enabled"]:
        with phases.span("import_jobs"):  # NumPy, the backends (and what they import at the top)
            from opbench import jobs
            from opbench.backends import BenchSettings

        if "settings" in kwargs:
            kwargs["settings"] = BenchSettings(**kwargs["settings"])
        getattr(jobs, command)(**kwargs)
        return
    answer = worker_client.request(
        command, {k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()},
        log_dir=Path(worker["logs"]), timeout_s=worker["timeout_s"], idle_exit_s=worker["idle_exit_s"],
    )  # fmt: skip
    print(answer["log"], end="")
    print(f"served by the GPU worker in {answer['seconds']:.3f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bench", help="run the matrix with Snakemake, then the summary (the README's main command)")
    p.add_argument("--configfile", type=Path, default=None, help="config file (default: config.yaml)")
    p.add_argument("--cores", default="all")
    p.add_argument(
        "--retime", action="store_true",
        help="time every row again in this run (no rebuild, no re-verification): ratios pair rows of one run only",
    )  # fmt: skip
    p.add_argument(
        "--skip-disk-check", action="store_true",
        help="start even where the files still to be written (problems, kept outputs) look larger than the free disk",
    )  # fmt: skip
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="further Snakemake arguments after --")

    p = sub.add_parser("publish", help="copy a GPU run's results into results/published/<card>/")
    p.add_argument("--results", type=Path, required=True, help="results/<machine> of the run")
    p.add_argument("--card", required=True, help="folder name under results/published/, e.g. nvidia-h200")
    p.add_argument("--logs", type=Path, default=Path("results/logs"), help="the run's results/logs (build logs)")
    p.add_argument(
        "--summary", type=Path, default=None,
        help="the run's summary.csv, for the tables' row order (default: <results>/summary.csv; a --configfile "
        "run's is <results>/<config stem>/summary.csv)",
    )  # fmt: skip
    p.add_argument(
        "--commit",
        action="append",
        default=[],
        help="publish only the records of this commit (a prefix; repeatable); default: every record of --results",
    )
    p.add_argument(
        "--leave-out-unpaired", action="store_true",
        help="publish without the rows that have no baseline of their run (listed on stderr) instead of refusing",
    )  # fmt: skip

    p = sub.add_parser("compare", help="per-row change between two result sets, judged against noise")
    p.add_argument("base", type=Path, help="summary.csv of the base run, or a folder holding one")
    p.add_argument("new", type=Path, help="summary.csv of the new run, or a folder holding one")
    p.add_argument("--threshold", type=float, default=0.02, help="smallest change that counts (fraction; 0.02)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the rank test (0.01)")
    p.add_argument(
        "--series", action="append", default=[], help="compare only this backend:variant (or backend; repeatable)"
    )
    p.add_argument("--only-changed", action="store_true", help="leave rows judged `same` out of the tables")
    p.add_argument("--out", type=Path, default=None, help="also write compare.md and compare.png into this folder")

    p = sub.add_parser("generate-mlir", help="write the op's MLIR program")
    _problem_args(p)
    p.add_argument(
        "--form",
        default="plain",
        help="the op's program form (default plain; conv2d: splitk<S>_<npq|pqn>, opbench/ops/conv2d/mlir.py)",
    )
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("make-inputs", help="random inputs from a seed")
    _problem_args(p)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("reference", help="float64 NumPy reference output (and its elements' product scale)")
    _problem_args(p, dtype=False)
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scale-out", type=Path, required=True, help=".npz of each element's product scale and count")

    p = sub.add_parser("run", help="run a backend once, save its output")
    _job_args(p)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("verify", help="judge an output against the reference")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--scale", type=Path, required=True, help="the reference job's product scale (.npz)")
    p.add_argument("--tolerance", type=float, required=True)
    p.add_argument("--dtype", required=True)
    p.add_argument("--precision", required=True, help="the row's tolerance key (tf32: f32 inputs read as TF32)")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("benchmark", help="time a backend")
    _job_args(p)
    p.add_argument("--warmup-ms", type=float, required=True)
    p.add_argument("--repetitions", type=int, required=True)
    p.add_argument("--min-sample-ms", type=float, required=True)
    p.add_argument("--flush-l2", type=int, choices=(0, 1), required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("build", help="build one artifact of a backend (an IREE module, a CUDA binary)")
    p.add_argument("--backend", required=True)
    p.add_argument("--params", required=True, help="the backend's build_params, as JSON")
    p.add_argument("--inputs", type=Path, nargs="*", default=[], help="the backend's build_inputs")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("probe-device", help="describe the device (and scheduler allocation) of GPU jobs")
    p.add_argument("--device", required=True, choices=PROBED_DEVICES)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("record", help="merge verification, timing and provenance into the point's record")
    p.add_argument("--plan", required=True, help="the point's record plan as JSON (opbench.plan.record_plan)")
    p.add_argument("--out", type=Path, required=True)
    return parser


def _process_start(job_phases: phases.Phases, started: float) -> None:
    """A job's first phases, in its own process: from the process's creation to opbench's first line, `started`
    (`python_start`: the interpreter and site-packages, from Snakemake's shell's fork), and from there to now
    (`cli_start`: the CLI's imports, the arguments)."""
    process = phases.process_started()
    if process is not None:
        job_phases.add("python_start", started - process)
    job_phases.add("cli_start", phases.now() - started)


def main(argv: list[str] | None = None, *, started: float | None = None) -> int:
    """`started`: opbench.__main__'s first instant (a job's phases start there)."""
    a = build_parser().parse_args(argv)
    if a.command == "bench":
        from opbench.config import ConfigError
        from opbench.driver import bench
        from opbench.footprint import DiskSpaceError

        extra = a.snakemake_args[1:] if a.snakemake_args[:1] == ["--"] else a.snakemake_args
        try:
            return bench(
                configfile=a.configfile, cores=a.cores, snakemake_args=extra, retime=a.retime,
                check_disk=not a.skip_disk_check,
            )  # fmt: skip
        except ConfigError as error:  # the message names the file and the key: no traceback
            print(f"opbench: invalid config: {error}", file=sys.stderr)
            return 2
        except DiskSpaceError as error:
            print(f"opbench: not enough disk: {error}", file=sys.stderr)
            return 2
    if a.command == "publish":
        from opbench.publish import UnpairedRows, publish

        try:
            published = publish(
                results=a.results, card=a.card, logs=a.logs, commits=tuple(a.commit), summary=a.summary,
                leave_out_unpaired=a.leave_out_unpaired,
            )  # fmt: skip
        except (UnpairedRows, FileNotFoundError) as error:
            print(f"opbench publish: {error}", file=sys.stderr)
            return 2
        print(published.folder)
        for row in published.unpaired:
            print(f"warning: now without a baseline of its run (no ratio): {row}", file=sys.stderr)
        for row in published.left_out:
            print(f"left out (no baseline of its run): {row}", file=sys.stderr)
        return 0
    if a.command == "compare":
        from opbench.compare import CompareError, run

        try:
            return run(
                a.base, a.new, threshold=a.threshold, alpha=a.alpha, only_series=a.series,
                only_changed=a.only_changed, out=a.out,
            )  # fmt: skip
        except CompareError as error:
            print(f"opbench compare: {error}", file=sys.stderr)
            return 2
    if a.command in ("run", "benchmark"):
        with phases.recording() as job_phases:
            if started is not None:
                _process_start(job_phases, started)
            try:
                _run_job(a.command, a, **({} if a.command == "run" else {"settings": _bench_settings(a)}))
            except worker_client.WorkerError as error:
                print(f"opbench {a.command}: {error}", file=sys.stderr)
                return 1
            finally:
                print(job_phases.log_line())  # the log's last line, failed or not (opbench.run_stats reads it)
        return 0
    from opbench import jobs

    if a.command == "generate-mlir":
        jobs.generate_mlir(op=a.op, shape=a.shape, dtype=a.dtype, layout=a.layout, out=a.out, form=a.form)
    elif a.command == "make-inputs":
        jobs.make_inputs(op=a.op, shape=a.shape, dtype=a.dtype, layout=a.layout, seed=a.seed, out=a.out)
    elif a.command == "reference":
        jobs.compute_reference(
            op=a.op, shape=a.shape, layout=a.layout, inputs=a.inputs, out=a.out, scale_out=a.scale_out
        )
    elif a.command == "verify":
        jobs.verify(
            output=a.output, reference=a.reference, scale=a.scale, tolerance=a.tolerance, dtype=a.dtype,
            precision=a.precision, out=a.out,
        )  # fmt: skip
    elif a.command == "build":
        jobs.build(backend=a.backend, params=json.loads(a.params), inputs=a.inputs, out=a.out)
    elif a.command == "probe-device":
        from opbench.device_probe import write_probe

        write_probe(a.device, a.out)
    elif a.command == "record":
        from opbench.plan import RecordPlan

        jobs.record(plan=RecordPlan.from_json(a.plan), out=a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
