"""Expand a validated config into the points of the benchmark matrix, and name each point's files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from opbench import paths
from opbench.backends import Availability, Problem, get_backend
from opbench.dtypes import get_dtype
from opbench.ops import get_op


@dataclass(frozen=True, kw_only=True)
class Point:
    """One row of the result tables: an op on one shape, dtype and layout, through one backend variant."""

    op: str
    suite: str
    layer: str
    count: int
    batch: int
    shape: str  # the shape's readable id, e.g. n1_h56_w56_c64_k64_r3_s3_st1_p1
    dtype: str
    layout: str
    backend: str
    variant: str

    @property
    def fields(self) -> dict[str, str | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def problem_dir(self) -> str:
        """Where inputs and the reference live, under results/problems/: shared by every backend and suite."""
        return paths.PROBLEM_DIR.format(**self.fields)

    @property
    def run_dir(self) -> str:
        """Where one backend variant's output, verification and timing of a problem live, under runs/."""
        return paths.RUN_DIR.format(**self.fields)

    @property
    def record_path(self) -> str:
        """The per-job record, under records/."""
        return paths.RECORD.format(**self.fields)

    @property
    def problem(self) -> Problem:
        return make_problem(op=self.op, shape=self.shape, dtype=self.dtype, layout=self.layout)

    @property
    def artifact(self) -> str | None:
        """The artifact its backend builds for it (opbench.paths), or None."""
        return paths.artifact_path(get_backend(self.backend).build_scope, **self.fields)


@cache  # input functions ask for the same problem once per job of it
def make_problem(*, op: str, shape: str, dtype: str, layout: str) -> Problem:
    """The problem named by an op, a shape id, a dtype and a layout (a point's, or a job's wildcards)."""
    return Problem(op=op, shape=get_op(op).shape_from_name(shape), dtype=get_dtype(dtype), layout=layout)


def problem_seed(base_seed: int, op: str, shape: str, dtype: str) -> int:
    """Seed of one problem's inputs: derived from the config's seed and the problem, the same on every run."""
    digest = hashlib.sha256(f"{base_seed}/{op}/{shape}/{dtype}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def expand(config: dict[str, Any]) -> list[Point]:
    """Every point of the matrix, each once, in config order, those a backend does not implement included (SKIP rows:
    skip_reasons)."""
    points: dict[tuple, Point] = {}
    for entry in config["matrix"]:
        for op_name in entry["ops"]:
            op = get_op(op_name)
            for suite_name in entry["suites"]:
                suite = config["suites"][suite_name]
                for batch in entry.get("batches", suite["batches"]):
                    for layer in suite["layers"]:
                        if "layers" in entry and layer["name"] not in entry["layers"]:
                            continue
                        shape = op.shape_from_layer(layer, batch).name
                        for dtype in entry["dtypes"]:
                            for layout in entry["layouts"]:
                                for backend_name in entry["backends"]:
                                    for variant in config["backends"][backend_name]["variants"]:
                                        if "variants" in entry and variant not in entry["variants"]:
                                            continue
                                        point = Point(
                                            op=op_name, suite=suite_name, layer=layer["name"],
                                            count=layer.get("count", 1), batch=batch, shape=shape,
                                            dtype=dtype, layout=layout, backend=backend_name, variant=variant,
                                        )  # fmt: skip
                                        points.setdefault(
                                            (suite_name, layer["name"], shape, op_name, dtype, layout,
                                             backend_name, variant), point)  # fmt: skip
    return list(points.values())


def skip_reasons(points: list[Point], available: dict[str, Availability]) -> dict[Point, str]:
    """The points that have no job here, with the reason of their SKIP row: the backend does not implement the
    point, or it can neither run nor build it on this machine. (Points it builds but cannot run have a job, the
    build, and a SKIP record.)"""
    reasons = {}
    for point in points:
        backend = get_backend(point.backend)
        unsupported = backend.unsupported(point.problem, point.variant)
        if unsupported:
            reasons[point] = f"not supported: {unsupported}"
        elif not available[point.backend].compiles:
            reasons[point] = available[point.backend].reason
        elif available[point.backend].runs and (missing := backend.variant_requirement_missing(point.variant)):
            reasons[point] = missing
    return reasons
