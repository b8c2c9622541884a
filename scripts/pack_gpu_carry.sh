#!/usr/bin/env bash
# On the machine that compiles (iree-compile, nvcc, CUTLASS headers): build every artifact of a GPU config and pack
# what a GPU node without compilers or a package index needs into .carry/ (ignored by git), for scripts/gpu_run.sh.
#   usage: scripts/pack_gpu_carry.sh CONFIGFILE [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
cores=${2:-$(nproc)}
python -m snakemake --cores "$cores" --configfile "$config" --config gpu=true -q \
  --until compile_iree compile_iree_dispatches build_cuda build_cutlass
mkdir -p .carry
artifacts=$(ls -d compiled/cuda compiled/cutlass compiled/iree-cuda 2>/dev/null || true)
{ find compiled/mlir -name '*.mlir'; find $artifacts -type f -o -type d -name '*.dispatches'; } | sort -u \
  > .carry/compiled.list
tar czf .carry/compiled.tar.gz -T .carry/compiled.list
root=$(python -c "from opbench.backends.cutlass import cutlass_root; print(cutlass_root())")
tar cJf .carry/cutlass-headers.tar.xz -C "$root" include tools/util/include
du -sh .carry/*
