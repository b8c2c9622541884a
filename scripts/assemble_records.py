"""Recovery: assemble per-job records from a GPU run's verify.json + bench.json files, off the GPU node.

For a run that was stopped (device time ran out) after its verification and timing jobs but before its record
jobs. Each record is made from the same record plan as the workflow's record rule's (opbench.plan: flags, seed,
config hash, the peaks of the run's device probe, the artifact's fields where the artifact is here), with the GPU
node's provenance taken from the run itself rather than from this machine: the CUDA driver from the probe, the
time stamp from the bench.json file's modification time, and the commit from
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
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opbench.backends import Availability  # noqa: E402
from opbench.config import load  # noqa: E402
from opbench.jobs import record  # noqa: E402
from opbench.matrix import expand, skip_reasons  # noqa: E402
from opbench.plan import record_plan  # noqa: E402
from opbench.records import read_record, write_record  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, required=True, help="the run's config (merged over config.yaml)")
    parser.add_argument("--results", type=Path, required=True, help="the run's results/<machine> folder")
    args = parser.parse_args()

    config = load(args.configfile)
    probe = args.results / "device" / "cuda.json"
    driver = json.loads(probe.read_text())["gpus"][0]["driver_version"]
    ran = Availability(runs=True, compiles=True)
    points = expand(config)
    unsupported = skip_reasons(points, {name: ran for name in config["backends"]})
    made = 0
    for point in points:
        if point in unsupported:
            continue
        plan = record_plan(config, point, results=str(args.results), available=ran)
        assert plan.verification is not None and plan.timing is not None
        verification, timing = Path(plan.verification), Path(plan.timing)
        if not verification.exists():
            continue
        if not timing.exists():  # verified, never timed: SKIP with the verdict, so the table shows the gap
            verdict = json.loads(verification.read_text())
            reason = (f"not timed: the run's device time ran out first (verified {verdict['status']}, "
                      f"relerr {verdict['relerr']:.2e})")  # fmt: skip
            plan = replace(plan, verification=None, timing=None, probe=None, skip_reason=reason)
        if plan.artifact is not None and not Path(plan.artifact).exists():
            plan = replace(plan, artifact=None)  # built elsewhere: its fields (say, its compiler) stay unknown
        out = args.results / "records" / point.record_path
        record(plan=plan, out=out)
        rec = read_record(out)
        stamped = timing if timing.exists() else verification
        measured = datetime.datetime.fromtimestamp(stamped.stat().st_mtime, tz=datetime.UTC)
        rec.update(cuda_driver=driver, timestamp=measured.isoformat(timespec="seconds"))
        write_record(rec, out)
        made += 1
    print(f"{made} records under {args.results / 'records'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
