"""Recovery: assemble per-job records from a GPU run's verify.json + bench.json files, off the GPU node.

For a run that was stopped (device time ran out) after its verification and timing jobs but before its record
jobs. Each record gets what the workflow's record rule would have given it (flags, seed, config hash, peaks from
the run's device probe), with the GPU node's provenance taken from the run itself rather than from this machine:
the CUDA driver from the probe, the time stamp from the bench.json file's modification time, and the commit from
$OPBENCH_COMMIT. A point verified but never timed becomes a SKIP record whose reason gives its verdict; points
without a verify.json are left out.

    OPBENCH_COMMIT=<commit of the run> python scripts/assemble_records.py --configfile config/gpu-tensorcore.yaml \\
        --results results/nvidia-h200
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opbench.backends import get_backend  # noqa: E402
from opbench.backends.iree import Problem as IreeProblem  # noqa: E402
from opbench.config import config_hash, point_config, validate  # noqa: E402
from opbench.dtypes import get_dtype  # noqa: E402
from opbench.jobs import record  # noqa: E402
from opbench.matrix import expand, problem_seed  # noqa: E402
from opbench.ops import get_op  # noqa: E402
from opbench.records import read_record, write_record  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, required=True, help="the run's config (merged over config.yaml)")
    parser.add_argument("--results", type=Path, required=True, help="the run's results/<machine> folder")
    args = parser.parse_args()

    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw.update(yaml.safe_load(args.configfile.read_text()))
    config = validate(raw)
    probe = args.results / "device" / "cuda.json"
    driver = json.loads(probe.read_text())["gpus"][0]["driver_version"]
    made = 0
    for point in expand(config):
        run_dir = args.results / "runs" / point.run_dir
        verification, timing = run_dir / "verify.json", run_dir / "bench.json"
        if not verification.exists():
            continue
        backend = get_backend(point.backend)
        settings = config["backends"][point.backend]
        dtype = get_dtype(point.dtype)
        flags = backend.variant_flags(settings, point.variant)
        if backend.artifact == "vmfb":
            shape = get_op(point.op).shape_from_name(point.shape)
            problem = IreeProblem(shape=shape, dtype=point.dtype, layout=point.layout)
            flags = flags + backend.problem_flags(settings, point.variant, problem)
        keys = ("op", "suite", "layer", "count", "shape", "batch", "dtype", "layout", "backend", "variant")
        fields = {k: getattr(point, k) for k in keys}
        out = args.results / "records" / point.record_path
        skip_reason = None
        if not timing.exists():  # verified, never timed: SKIP with the verdict, so the table shows the gap
            verdict = json.loads(verification.read_text())
            skip_reason = (f"not timed: the run's device time ran out first (verified {verdict['status']}, "
                           f"relerr {verdict['relerr']:.2e})")  # fmt: skip
        record(
            point=fields, flags=" ".join(flags), seed=problem_seed(config["seed"], point.op, point.shape, point.dtype),
            config_hash=config_hash(point_config(
                config, backend=point.backend, variant=point.variant, suite=point.suite, layer=point.layer,
                tolerance_key=backend.tolerance_key(dtype, point.variant),
            )),
            verification=None if skip_reason else verification, timing=None if skip_reason else timing,
            skip_reason=skip_reason, out=out, device_probe=probe if backend.device == "cuda" else None,
        )  # fmt: skip
        rec = read_record(out)
        stamped = verification if skip_reason else timing
        measured = datetime.datetime.fromtimestamp(stamped.stat().st_mtime, tz=datetime.UTC)
        rec.update(cuda_driver=driver, timestamp=measured.isoformat(timespec="seconds"))
        write_record(rec, out)
        made += 1
    print(f"{made} records under {args.results / 'records'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
