# Execution: run once, verify against the reference, time (a FAIL is timed too, so a fast wrong kernel shows as both),
# and merge all of it into the point's record. Run, benchmark and record jobs have their backend's code as inputs.
# A run's output stays for later re-verification, or is temp() where the config's keep_run_outputs is false (deleted
# once verified: a large op's outputs, one per backend and variant, would fill a GPU node's disk).


rule run:
    wildcard_constraints:
        backend=CPU_BACKENDS,
    input:
        code=backend_code(),
        artifact=artifact_of,
        inputs=rules.make_inputs.output[0],
    output:
        RUN_OUTPUT,
    params:
        options=job_options,
        artifact=lambda w, input: f"--artifact {input.artifact}" if input.artifact else "",
        gpu_job=gpu_job_flag,
    log:
        f"{RESULTS}/" + paths.run_log("run"),
    benchmark:
        f"{RESULTS}/" + paths.bench_file(paths.run_log("run"))
    shell:
        "{PY} -m opbench run --backend {wildcards.backend} --variant {wildcards.variant} --op {wildcards.op}"
        " --shape {wildcards.shape} --dtype {wildcards.dtype} --layout {wildcards.layout}"
        " --inputs {input.inputs} {params.artifact} --options {params.options:q} {params.gpu_job} --out {output}"
        " > {log} 2>&1"


# GPU rows: the same jobs, each asking the scheduler for one GPU (CPU rules ask for none, so a gpu_model set for
# these never turns into --gpus=model:0 on CPU jobs).
use rule run as run_gpu with:
    wildcard_constraints:
        backend=GPU_BACKENDS,
    resources:
        gpu=1,


rule verify:
    input:
        code=module_files("opbench.verify"),
        output=rules.run.output[0],
        reference=rules.reference.output.reference,
        scale=rules.reference.output.scale,
    output:
        f"{RESULTS}/runs/{paths.VERDICT}",
    params:
        tolerance=tolerance_of,
        precision=precision_of,
    log:
        f"{RESULTS}/" + paths.run_log("verify"),
    benchmark:
        f"{RESULTS}/" + paths.bench_file(paths.run_log("verify"))
    shell:
        "{PY} -m opbench verify --output {input.output} --reference {input.reference} --scale {input.scale}"
        " --tolerance {params.tolerance} --dtype {wildcards.dtype} --precision {params.precision}"
        " --out {output} > {log} 2>&1"


rule benchmark:
    wildcard_constraints:
        backend=CPU_BACKENDS,
    input:
        code=backend_code("opbench.timing"),
        artifact=artifact_of,
        inputs=rules.make_inputs.output[0],
    output:
        f"{RESULTS}/runs/{paths.TIMING}",
    params:
        options=job_options,
        artifact=lambda w, input: f"--artifact {input.artifact}" if input.artifact else "",
        settings=(
            f"--warmup-ms {BENCH['warmup_ms']} --repetitions {BENCH['repetitions']}"
            f" --min-sample-ms {BENCH['min_sample_ms']} --flush-l2 {int(BENCH['flush_l2'])}"
        ),
        gpu_job=gpu_job_flag,
    threads: workflow.cores  # alone on the machine: nothing else disturbs a CPU timing
    log:
        f"{RESULTS}/" + paths.run_log("benchmark"),
    benchmark:
        f"{RESULTS}/" + paths.bench_file(paths.run_log("benchmark"))
    shell:
        "{PY} -m opbench benchmark --backend {wildcards.backend} --variant {wildcards.variant} --op {wildcards.op}"
        " --shape {wildcards.shape} --dtype {wildcards.dtype} --layout {wildcards.layout}"
        " --inputs {input.inputs} {params.artifact} --options {params.options:q} {params.settings} {params.gpu_job}"
        " --out {output} > {log} 2>&1"


use rule benchmark as benchmark_gpu with:
    wildcard_constraints:
        backend=GPU_BACKENDS,
    threads: 1
    resources:
        gpu=1,


rule record:
    input:
        unpack(lambda wildcards: plan_of(wildcards).inputs),
        code=backend_code("opbench.jobs"),
    output:
        f"{RESULTS}/records/{paths.RECORD}",
    params:
        plan=lambda wildcards: plan_of(wildcards).to_json(),
    log:
        f"{RESULTS}/" + paths.RECORD_LOG,
    benchmark:
        f"{RESULTS}/" + paths.bench_file(paths.RECORD_LOG)
    shell:
        "{PY} -m opbench record --plan {params.plan:q} --out {output} > {log} 2>&1"


# Every GPU row's record needs the probe (the card's peaks): it runs first, or a run stopped by its time budget
# would leave finished benchmarks without records (records are local jobs and need no GPU slot).
rule probe_device:
    priority: 100
    output:
        f"{RESULTS}/device/{{device}}.json",
    wildcard_constraints:
        device="|".join(PROBED_DEVICES),
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/probe_device/{{device}}.log",
    shell:
        "{PY} -m opbench probe-device --device {wildcards.device} --out {output} > {log} 2>&1"
