"""What a run's files will take on disk, checked before the run starts: a disk that fills mid-run fails the
jobs that were writing and, on a GPU node, the packing of the results (the H100 attention race of 2026-12-08 lost
its results that way). Each problem the run executes keeps, under results/problems/, its inputs in the dtype's width
(opbench.jobs.stored_array), its float64 reference and its float32 product scales; each point that runs keeps its
output (in the dtype) too, unless the config's keep_run_outputs is false (temp(): deleted once verified)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opbench import hardware, paths
from opbench.backends import availability, get_backend
from opbench.matrix import Point, expand, skip_reasons
from opbench.ops import Op, get_op

REFERENCE_ITEMSIZE = 8  # float64
SCALE_ITEMSIZE = 4  # float32 (opbench.jobs.compute_reference)


class DiskSpaceError(Exception):
    """The files the run still has to write would not fit on the disk that holds results/."""


def problem_bytes(point: Point) -> int:
    """The bytes of one problem's files: inputs, reference, product scale (and the rounded intermediate's scale of
    an op that has one)."""
    problem = point.problem
    op = get_op(problem.op)
    inputs = sum(math.prod(shape) for shape in op.input_shapes(problem.shape, problem.layout).values())
    output = math.prod(op.output_shape(problem.shape, problem.layout))
    scales = 2 if type(op).rounded_intermediate_scale is not Op.rounded_intermediate_scale else 1
    return inputs * problem.dtype.itemsize + output * (REFERENCE_ITEMSIZE + scales * SCALE_ITEMSIZE)


def output_bytes(point: Point) -> int:
    """The bytes of one point's run output (the op's result in the dtype)."""
    problem = point.problem
    return math.prod(get_op(problem.op).output_shape(problem.shape, problem.layout)) * problem.dtype.output_itemsize


def executed_points(config: dict[str, Any], devices: set[str]) -> list[Point]:
    """The points that run on this machine (those with a run job: not SKIP, not compile-only)."""
    points = expand(config)
    available = {name: availability(get_backend(name), devices) for name in config["backends"]}
    skipped = skip_reasons(points, available)
    return [p for p in points if p not in skipped and available[p.backend].runs]


def missing_bytes(points: Iterable[Point], root: Path, machine: str, keep_outputs: bool) -> tuple[int, int]:
    """(bytes, problems): the files of the problems of `points` not under `root`/results/problems/ yet and, where
    `keep_outputs`, the outputs of the points with neither an output nor a verdict under results/`machine`/runs/."""
    problems: dict[str, int] = {}
    outputs = 0
    for point in points:
        if not (root / "results/problems" / point.problem_dir / Path(paths.REFERENCE).name).exists():
            problems.setdefault(point.problem_dir, problem_bytes(point))
        run = root / "results" / machine / "runs" / point.run_dir
        if keep_outputs and not any((run / Path(file).name).exists() for file in (paths.OUTPUT, paths.VERDICT)):
            outputs += output_bytes(point)
    return sum(problems.values()) + outputs, len(problems)


def check(config: dict[str, Any], devices: set[str], root: Path) -> None:
    """Raise DiskSpaceError, with both numbers, where the files this run still has to write (opbench.footprint's
    docstring) need more than the free space of the file system that will hold them."""
    machine = hardware.machine_name(config["machine"], config["gpu"])
    needed, problems = missing_bytes(executed_points(config, devices), root, machine, config["keep_run_outputs"])
    where = root / "results"
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if needed > free:
        outputs = (
            " and run outputs (keep_run_outputs: false deletes each once verified)"
            if config["keep_run_outputs"]
            else ""
        )
        raise DiskSpaceError(
            f"this run's files ({problems} new problems) need {needed / 1e9:.1f} GB under {root / 'results'} (inputs, "
            f"float64 references, scales{outputs}) and {free / 1e9:.1f} GB are free there: free space, run fewer "
            "points (a --configfile with fewer layers or dtypes), or pass --skip-disk-check"
        )
