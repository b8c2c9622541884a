"""What a run's problem files will take on disk, checked before the run starts: a disk that fills mid-run fails the
jobs that were writing and, on a GPU node, the packing of the results (the H100 attention race of 2026-12-08 lost
its results that way). Each problem the run executes keeps, under results/problems/, its inputs in the dtype's width
(opbench.jobs.stored_array), its float64 reference and its float32 product scales; a run's output is temp() and
goes once verified, so it is not counted."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opbench import paths
from opbench.backends import availability, get_backend
from opbench.matrix import Point, expand, skip_reasons
from opbench.ops import Op, get_op

REFERENCE_ITEMSIZE = 8  # float64
SCALE_ITEMSIZE = 4  # float32 (opbench.jobs.compute_reference)


class DiskSpaceError(Exception):
    """The run's problem files would not fit on the disk that holds results/problems/."""


def problem_bytes(point: Point) -> int:
    """The bytes of one problem's files: inputs, reference, product scale (and the rounded intermediate's scale of
    an op that has one)."""
    problem = point.problem
    op = get_op(problem.op)
    inputs = sum(math.prod(shape) for shape in op.input_shapes(problem.shape, problem.layout).values())
    output = math.prod(op.output_shape(problem.shape, problem.layout))
    scales = 2 if type(op).rounded_intermediate_scale is not Op.rounded_intermediate_scale else 1
    return inputs * problem.dtype.itemsize + output * (REFERENCE_ITEMSIZE + scales * SCALE_ITEMSIZE)


def executed_points(config: dict[str, Any], devices: set[str]) -> list[Point]:
    """The points that run on this machine (those with a run job: not SKIP, not compile-only)."""
    points = expand(config)
    available = {name: availability(get_backend(name), devices) for name in config["backends"]}
    skipped = skip_reasons(points, available)
    return [p for p in points if p not in skipped and available[p.backend].runs]


def missing_problem_bytes(points: Iterable[Point], root: Path) -> tuple[int, int]:
    """(bytes, problems) of the problems of `points` whose files are not under `root`/results/problems/ yet."""
    missing = {}
    for point in points:
        problem_dir = root / "results/problems" / point.problem_dir
        if not (problem_dir / Path(paths.REFERENCE).name).exists() and point.problem_dir not in missing:
            missing[point.problem_dir] = problem_bytes(point)
    return sum(missing.values()), len(missing)


def check(config: dict[str, Any], devices: set[str], root: Path) -> None:
    """Raise DiskSpaceError, with both numbers, where the problem files this run still has to write need more than
    the free space of the file system that will hold them."""
    needed, problems = missing_problem_bytes(executed_points(config, devices), root)
    where = root / "results"
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if needed > free:
        raise DiskSpaceError(
            f"this run's {problems} new problems need {needed / 1e9:.1f} GB under {root / 'results/problems'} "
            f"(inputs, float64 references, scales) and {free / 1e9:.1f} GB are free there: free space, run fewer "
            "points (a --configfile with fewer layers or dtypes), or pass --skip-disk-check"
        )
