# opbench: the benchmark matrix as a workflow. This file only wires; the logic lives in the opbench package.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/run.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        summary_outputs(),
        device_probes(),
    default_target: True
