"""The record rule's command line: the plan (JSON, with IREE flags that start with `--` and quotes in it) reaches
`opbench record` intact through the shell."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from opbench.cli import build_parser
from opbench.plan import RecordPlan

REPO = Path(__file__).resolve().parents[1]


class _Params:
    """Snakemake's `params` as the shell template sees it."""

    def __init__(self, plan: str) -> None:
        self.plan = plan


def test_record_rule_passes_the_plan_intact() -> None:
    shell = (REPO / "workflow/rules/run.smk").read_text()
    template = re.search(r'"\{PY\} -m opbench record (.*?)"', shell)
    assert template, "the record rule's shell line was not found"
    flags = "--iree-dispatch-creation-enable-fuse-padding-into-linalg-consumer-ops --x='a b'"
    plan = RecordPlan(fields={"flags": flags, "layer": "it's"}, verification="v.json", timing="b.json")
    quoted = template.group(1).replace(":q}", "}")  # Snakemake's `:q`: shlex.quote, applied here by hand
    line = quoted.format(output="out.json", log="log", params=_Params(plan=shlex.quote(plan.to_json())))
    args = build_parser().parse_args(["record", *shlex.split(line.split(" > ")[0])])
    assert RecordPlan.from_json(args.plan) == plan
