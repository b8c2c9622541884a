# Compilation: iree-compile per (backend, variant, problem), nvcc per CUDA kernel variant. The compilers' versions
# are parameters, so an upgraded compiler rebuilds; the host CPU too, for llvm-cpu modules built for `host`.
# Each module keeps the version that built it beside it (.toolchain): a node without iree-compile (a GPU node
# that only runs) takes that as the parameter and recompiles nothing.


rule compile_iree:
    input:
        mlir=mlir_of,
        tuning_spec=iree_tuning_spec,
    output:
        vmfb="compiled/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.vmfb",
        toolchain="compiled/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.vmfb.toolchain",
    wildcard_constraints:
        backend=r"iree-[a-z0-9-]+",
    params:
        flags=iree_compile_flags,
        toolchain=iree_toolchain,
        host_cpu=host_cpu_of,
    log:
        "results/logs/compile/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.log",
    benchmark:
        "results/logs/compile/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.bench.tsv"
    shell:
        "{IREE_COMPILE} {input.mlir} {params.flags} -o {output.vmfb} > {log} 2>&1"
        " && echo {params.toolchain:q} > {output.toolchain}"


# One benchmark module per dispatch of the problem's module (its device time: opbench/iree_dispatch.py), built
# with the module's own flags, for the IREE GPU backends that time dispatches.
rule compile_iree_dispatches:
    input:
        mlir=mlir_of,
        tuning_spec=iree_tuning_spec,
    output:
        directory("compiled/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.dispatches"),
    wildcard_constraints:
        backend=r"iree-[a-z0-9-]+",
    params:
        flags=iree_compile_flags,
        toolchain=iree_toolchain,
    log:
        "results/logs/compile_dispatches/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.log",
    shell:
        "{PY} -m opbench compile-dispatches --iree-compile {IREE_COMPILE} --mlir {input.mlir}"
        " --flags {params.flags:q} --out {output} > {log} 2>&1"


rule build_cuda:
    input:
        cuda_sources,
    output:
        "compiled/cuda/{variant}/conv2d_{variant}",
    params:
        archs=cuda_arch_args,
        flags=cuda_nvcc_flags,
        toolchain=nvcc_version(),
    log:
        "results/logs/build_cuda/{variant}.log",
    benchmark:
        "results/logs/build_cuda/{variant}.bench.tsv"
    shell:
        "{PY} -m opbench build-cuda --variant {wildcards.variant} {params.archs} --flags {params.flags}"
        " --out {output} > {log} 2>&1"


# CUTLASS variants: one binary per config entry of backends.cutlass.variants, all from cuda/cutlass/conv2d_fprop.cu.
# The nvcc and CUTLASS versions are parameters: either upgraded rebuilds. The log keeps the ptxas -v report.
rule build_cutlass:
    input:
        cutlass_sources,
    output:
        "compiled/cutlass/{variant}/conv2d_{variant}",
    params:
        spec=cutlass_spec,
        flags=cutlass_nvcc_flags,
        toolchain=nvcc_version(),
        cutlass=cutlass_version(),
    log:
        "results/logs/build_cutlass/{variant}.log",
    benchmark:
        "results/logs/build_cutlass/{variant}.bench.tsv"
    shell:
        "{PY} -m opbench build-cutlass --variant {wildcards.variant} --spec {params.spec:q}"
        " --flags {params.flags:q} --out {output} > {log} 2>&1"
