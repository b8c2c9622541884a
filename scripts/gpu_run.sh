#!/usr/bin/env bash
# On a GPU machine without a package index: install the carried wheelhouse (.whl/), run the GPU tests and the
# published GPU matrix, and copy results to $OUT (the device tool's output folder) or results/export/.
#   usage: scripts/gpu_run.sh [CONFIGFILE]      (default config/gpu-resnet50.yaml)
# Carried from the machine that compiled (scripts/pack_gpu_carry.sh), when present in .carry/:
#   cutlass-headers.tar.xz  CUTLASS's include trees (CUTLASS_DIR), so the cutlass backend is available here;
#   compiled.tar.gz         IREE module folders (with dispatch benchmarks), CUDA/CUTLASS binaries and the MLIR they came
#                           from, built from this same tree; unpacked and marked newer than their sources so that
#                           nothing is rebuilt here (this node may have no iree-compile).
# GPU_RETIME=1 re-times every row (opbench bench --retime). GPU_TESTS=0 skips the GPU pytest run;
# GPU_TESTS="tests/test_x.py ..." runs only those (default: every GPU test).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config/gpu-resnet50.yaml}
out=${OUT:-results/export}
mkdir -p "$out"
source scripts/gpu_setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
tests=0
if [ "${GPU_TESTS:-1}" != 0 ]; then
  [ "${GPU_TESTS:-1}" = 1 ] && selected=tests/ || selected=$GPU_TESTS
  # shellcheck disable=SC2086  # a list of test paths
  python3 -m pytest -q -m gpu $selected -p no:cacheprovider > "$out/gpu_tests.log" 2>&1 || tests=$?
  tail -5 "$out/gpu_tests.log"
fi
# Leave time to package the results when a time budget is given (GPU_RUN_SECONDS, e.g. a lease's limit).
budget=$(( ${GPU_RUN_SECONDS:-86400} - SECONDS - 45 ))
status=0
# GPU_RETIME=1: time every row again in this run (a second run of the same config, for `opbench compare`)
timeout "$budget" python3 -m opbench bench --configfile "$config" --cores "$(nproc)" ${GPU_RETIME:+--retime} \
  -- -q --scheduler greedy > "$out/bench.log" 2>&1 \
  || status=$?
tail -5 "$out/bench.log"
if [ "$status" = 124 ]; then
  # The killed run left Snakemake's lock behind; we know no other run is active, so release it for the resume.
  python3 -m snakemake --unlock --cores 1 --configfile "$config" > /dev/null 2>&1
  echo "bench stopped at the time budget; rerun this script to resume"
fi
machine=$(ls -td results/*/records | head -1 | xargs dirname)
# The package below must not be lost to a full disk (a run's files can fill it): where less than 1 GiB is free, the
# runs' outputs go first (the records are made; a resume on this machine runs those points again).
if (( $(df --output=avail -k . | tail -1) < 1048576 )); then
  echo "less than 1 GiB free: deleting $machine/runs/**/output.npy to package the results"
  find "$machine/runs" -name output.npy -delete
fi
logs=$(ls -d results/logs/build 2>/dev/null || true)
tar czf "$out/results.tgz" --exclude='*.npy' --exclude='*.npz' "$machine" $logs
summary="$machine/$(basename "$config" .yaml)"  # the run's tables: opbench.paths.summary_dir
[ -f "$summary/summary.md" ] && cp "$summary/summary.md" "$out/"
[ "$tests" = 0 ] || echo "GPU tests failed: see $out/gpu_tests.log"
exit $(( status != 0 ? status : tests ))
