# Problem generation: the op's MLIR program (in each program form a backend asks for), its random inputs and its
# float64 reference (with the scale of each element's products, for the element-wise verdict). Each job's inputs
# include the op's code that decides it (opbench/ops/<op>/).


rule generate_mlir:
    input:
        code=op_code("mlir"),
    output:
        paths.MLIR,
    log:
        paths.MLIR_LOG,
    benchmark:
        paths.bench_file(paths.MLIR_LOG)
    shell:
        "{PY} -m opbench generate-mlir --op {wildcards.op} --shape {wildcards.shape} --dtype {wildcards.dtype}"
        " --layout {wildcards.layout} --form {wildcards.form} --out {output} > {log} 2>&1"


rule make_inputs:
    input:
        code=op_code("inputs"),
    output:
        f"{PROBLEMS}/{paths.INPUTS}",
    params:
        seed=seed_of,
    log:
        paths.problem_log("make_inputs"),
    benchmark:
        paths.bench_file(paths.problem_log("make_inputs"))
    shell:
        "{PY} -m opbench make-inputs --op {wildcards.op} --shape {wildcards.shape} --dtype {wildcards.dtype}"
        " --layout {wildcards.layout} --seed {params.seed} --out {output} > {log} 2>&1"


rule reference:
    input:
        code=op_code("reference"),
        inputs=rules.make_inputs.output[0],
    output:
        reference=f"{PROBLEMS}/{paths.REFERENCE}",
        scale=f"{PROBLEMS}/{paths.PRODUCT_SCALE}",
    log:
        paths.problem_log("reference"),
    benchmark:
        "results/logs/reference/{op}/{layout}/{dtype}/{shape}.bench.tsv"
    shell:
        "{PY} -m opbench reference --op {wildcards.op} --shape {wildcards.shape} --layout {wildcards.layout}"
        " --inputs {input.inputs} --out {output.reference} --scale-out {output.scale} > {log} 2>&1"
