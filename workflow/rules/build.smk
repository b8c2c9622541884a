# Builds: each backend's artifacts (opbench.backends.base: build_scope, build_inputs, build_params, build). The
# parameters hold what decides an artifact besides its input files (flags, the compilers' versions), so a changed
# flag or an upgraded compiler rebuilds.


# One artifact per (backend, variant, op), e.g. a CUDA binary. The log keeps nvcc's resource report and SASS summary.
rule build_per_variant:
    input:
        build_inputs,
    output:
        paths.VARIANT_ARTIFACT,
    wildcard_constraints:
        backend=VARIANT_BUILT,
    params:
        spec=build_params,
    log:
        paths.BUILD_LOG["variant"],
    benchmark:
        "results/logs/build/{backend}/{variant}/{op}.bench.tsv"
    shell:
        "{PY} -m opbench build --backend {wildcards.backend} --params {params.spec:q} --inputs {input}"
        " --out {output} > {log} 2>&1"


# One artifact folder per (backend, variant, problem), e.g. an IREE module (and its per-dispatch benchmark modules).
rule build_per_problem:
    input:
        build_inputs,
    output:
        directory(paths.PROBLEM_ARTIFACT),
    wildcard_constraints:
        backend=PROBLEM_BUILT,
    params:
        spec=build_params,
    log:
        paths.BUILD_LOG["problem"],
    benchmark:
        "results/logs/build/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.bench.tsv"
    shell:
        "{PY} -m opbench build --backend {wildcards.backend} --params {params.spec:q} --inputs {input}"
        " --out {output} > {log} 2>&1"
