# Compilation: iree-compile per (backend, variant, problem). The compiler's version is a parameter, so an
# upgraded iree-compile recompiles; the host CPU too, for llvm-cpu modules built for `host`.


rule compile_iree:
    input:
        mlir=rules.generate_mlir.output[0],
    output:
        "compiled/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.vmfb",
    wildcard_constraints:
        backend=r"iree-[a-z0-9-]+",
    params:
        compiler=iree_compiler,
        flags=iree_compile_flags,
        toolchain=iree_compile_version(),
        host_cpu=host_cpu_of,
    log:
        "results/logs/compile/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.log",
    benchmark:
        "results/logs/compile/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}.bench.tsv"
    shell:
        "{params.compiler} {input.mlir} {params.flags} -o {output} > {log} 2>&1"
