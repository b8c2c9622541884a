#!/usr/bin/env bash
# On the machine that compiles (iree-compile, nvcc, CUTLASS headers): build every artifact of a GPU config and pack
# what a GPU node without compilers or a package index needs into .carry/ (ignored by git), for scripts/gpu_run.sh.
#   usage: scripts/pack_gpu_carry.sh CONFIGFILE [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
cores=${2:-$(nproc)}
python -m snakemake --cores "$cores" --configfile "$config" --config gpu=true -q \
  --until build_per_problem build_per_variant
mkdir -p .carry
# The artifacts of the GPU backends (opbench/backends: device cuda), every file of them.
gpu_backends=$(python -c "from opbench.backends import BACKENDS; print(*(n for n, b in BACKENDS.items() if b.device == 'cuda'))")
artifacts=$(for b in $gpu_backends; do ls -d "compiled/$b" 2>/dev/null || true; done)
{ find compiled/mlir -name '*.mlir'; [ -z "$artifacts" ] || find $artifacts -type f; } | sort -u > .carry/compiled.list
tar czf .carry/compiled.tar.gz -T .carry/compiled.list
root=$(python -c "from opbench.backends.cutlass import cutlass_root; print(cutlass_root())")
tar cJf .carry/cutlass-headers.tar.xz -C "$root" include tools/util/include
du -sh .carry/*
