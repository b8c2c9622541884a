"""The record rule's command line: a flag set that starts with `--` (IREE flags) must reach `--flags` intact."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from opbench.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def test_record_rule_passes_flags_that_start_with_dashes() -> None:
    shell = (REPO / "workflow/rules/run.smk").read_text()
    template = re.search(r'"\{PY\} -m opbench record (.*?)"\n\s*" (.*?)"', shell)
    assert template, "the record rule's shell line was not found"
    flags = "--iree-dispatch-creation-enable-fuse-padding-into-linalg-consumer-ops"  # one flag: no space in it
    line = (template.group(1) + " " + template.group(2)).format(
        params=type("P", (), {"point": "'{}'", "flags": shlex.quote(flags), "seed": 1, "config_hash": "h",
                              "results": "--skip-reason s"})(),
        output="out.json", log="log",
    ).split(" > ")[0]  # fmt: skip
    args = build_parser().parse_args(["record", *shlex.split(line)])
    assert args.flags == flags
