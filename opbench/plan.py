"""The record plan of a point: which files its record job reads and which fields are known before any job runs.
One function makes it, for the workflow's record rule and for scripts that assemble records off the workflow
(scripts/assemble_records.py), so a record is the same whichever made it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from opbench import paths
from opbench.backends import Availability, get_backend
from opbench.config import config_hash, point_config
from opbench.matrix import Point, problem_seed
from opbench.peaks import PROBED_DEVICES


@dataclass(frozen=True, kw_only=True)
class RecordPlan:
    """What a record job is given. Paths are relative to the workflow's directory."""

    fields: dict[str, Any]  # the point's fields, flags, seed, config hash and the backend's plan fields
    verification: str | None = None  # verify.json (None: a SKIP record)
    timing: str | None = None  # bench.json
    probe: str | None = None  # the device probe's JSON: the card's measured peaks
    artifact: str | None = None  # the built artifact, read for the backend's artifact_fields
    skip_reason: str | None = None  # a SKIP record's reason

    @property
    def inputs(self) -> dict[str, str]:
        """The files the record job reads: its rule's inputs."""
        names = ("verification", "timing", "probe", "artifact")
        return {name: path for name in names if (path := getattr(self, name)) is not None}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RecordPlan:
        return cls(**json.loads(text))


def record_plan(config: dict[str, Any], point: Point, *, results: str, available: Availability) -> RecordPlan:
    """The plan of one point's record, for a point that has a job here (opbench.matrix.skip_reasons has none).

    `results`: the run's results/<machine> folder; `available`: whether the point's backend runs here (else its
    artifact is built and the record is a SKIP that says so).
    """
    backend = get_backend(point.backend)
    settings = config["backends"][point.backend]
    problem = point.problem
    tolerance_key = backend.tolerance_key(problem.dtype, point.variant)
    decided_by = point_config(
        config, backend=point.backend, variant=point.variant, suite=point.suite, layer=point.layer,
        tolerance_key=tolerance_key,
    )  # fmt: skip
    fields = {
        **point.fields,
        "flags": " ".join(backend.variant_flags(settings, point.variant, problem)),
        "seed": problem_seed(config["seed"], point.op, point.shape, point.dtype),
        "config_hash": config_hash(decided_by),
        **backend.plan_fields(settings, point.variant, problem),
    }
    if not available.runs:
        return RecordPlan(fields=fields, artifact=point.artifact, skip_reason=f"{available.reason} (compiled OK)")
    return RecordPlan(
        fields=fields,
        verification=f"{results}/runs/{paths.VERDICT.format(**point.fields)}",
        timing=f"{results}/runs/{paths.TIMING.format(**point.fields)}",
        probe=f"{results}/device/{backend.device}.json" if backend.device in PROBED_DEVICES else None,
        artifact=point.artifact,
    )
