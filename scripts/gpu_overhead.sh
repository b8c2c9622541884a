#!/usr/bin/env bash
# The per-point cost of a GPU run, before and after the GPU worker, on one card in one call (issue #20): the shared
# work first (inputs, references, the probe; artifacts come built in .carry/), then the same config twice from
# empty run results: each GPU job in its own process (gpu_worker.enabled false), then through the worker. Writes
# before.json and after.json (the runs' run.json), their bench logs and results.tgz to $OUT (or results/export/).
#   usage: scripts/gpu_overhead.sh [CONFIGFILE]      (default config/gpu-overhead.yaml)
# PHASES="after" runs only the worker's run (default: "before after").
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config/gpu-overhead.yaml}
out=${OUT:-results/export}
mkdir -p "$out"
source scripts/gpu_setup.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -m snakemake --cores "$(nproc)" --configfile "$config" -q --scheduler greedy \
  --until make_inputs reference probe_device build_per_variant build_per_problem > "$out/shared.log" 2>&1
machine=$(ls -d results/*/device | head -1 | xargs dirname)
summary="$machine/$(basename "$config" .yaml)"  # opbench.paths.summary_dir
for phase in ${PHASES:-before after}; do
  rm -rf "$machine/runs" "$machine/records" "$machine/logs" "$summary"
  worker=()
  [ "$phase" = before ] && worker=(--config 'gpu_worker={enabled: false}')
  status=0
  python3 -m opbench bench --configfile "$config" --cores "$(nproc)" -- -q --scheduler greedy "${worker[@]}" \
    > "$out/bench-$phase.log" 2>&1 || status=$?
  tail -3 "$out/bench-$phase.log"
  cp "$summary/run.json" "$out/$phase.json"
  [ "$phase" = before ] && cp "$summary/summary.csv" "$out/summary-before.csv"
  echo "$phase: exit $status"
done
tar czf "$out/results.tgz" --exclude='*.npy' --exclude='*.npz' "$machine"
