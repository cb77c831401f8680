#!/usr/bin/env bash
# Sweep of picospec-bench-pipeline over RTT and alpha for both paper profiles (SYNTHETIC models), then the plot.
#
#   scripts/pipeline_sweep.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR holds bench/pipeline/picospec-bench-pipeline (default build/release); OUT_DIR receives
# pipeline_sweep.tsv and the raw JSON/tables (default build/pipeline-sweep). The PNGs go to docs/img/ (skipped
# with PLOT=0 or when gnuplot is missing).
# Environment: TIME_SCALE (default 1), TOKENS (default 200), REPEAT (default 1), SEED (default 1),
# JOBS (points run at once, default 1), MODES (default cloud-ar,vanilla,paper,picospec), PLOT_SUFFIX (the PNGs
# become docs/img/pipeline<SUFFIX>_rtt.png and ..._alpha.png; default none), PICOSPEC_OPTS (extra flags for every run, e.g. "--branches 1
# --branch-schedule fused" or "--adaptive-gamma 1 --gamma-max 8": they apply to the picospec row only). Runs are mostly sleeping (the models' latency profile and the emulated
# link), so several points can share a machine; with JOBS > number of cores the CPU work of the pipeline
# (sampling a 152k vocabulary, a few ms per row) starts to queue and every figure drops.
# A TIME_SCALE below 1 runs every model and link delay faster; figures are reported at profile speed, but the
# CPU work does not shrink, so scaled runs are pessimistic.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
out=${2:-build/pipeline-sweep}
bench=${BENCH:-$build/bench/pipeline/picospec-bench-pipeline}
[ -x "$bench" ] || { echo "pipeline_sweep.sh: $bench not found (build target picospec-bench-pipeline)" >&2; exit 2; }
ts=${TIME_SCALE:-1}
tokens=${TOKENS:-200}
repeat=${REPEAT:-1}
seed=${SEED:-1}
jobs=${JOBS:-1}
modes=${MODES:-cloud-ar,vanilla,paper,picospec}
suffix=${PLOT_SUFFIX:-}
mkdir -p "$out"

points=()
for profile in qwen-paper llama-paper; do
  for rtt in 5 20 50 100 200; do points+=("$profile rtt $rtt 0.8"); done
  for alpha in 0.5 0.7 0.8 0.9 0.95; do points+=("$profile alpha 20 $alpha"); done
done

run_point() {  # profile sweep rtt alpha
  local profile=$1 sweep=$2 rtt=$3 alpha=$4
  local base=$out/${profile}_${sweep}_rtt${rtt}_a${alpha}
  "$bench" --profile "$profile" --link "$rtt:100:100" --alpha "$alpha" --tokens "$tokens" --repeat "$repeat" \
    --seed "$seed" --time-scale "$ts" --modes "$modes" ${PICOSPEC_OPTS:-} --json \
    > "$base.json" 2> "$base.txt"
  echo "done: $profile $sweep rtt=$rtt alpha=$alpha"
}

running=0
for p in "${points[@]}"; do
  # shellcheck disable=SC2086
  run_point $p &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

tsv=$out/pipeline_sweep.tsv
printf 'profile\tsweep\trtt_ms\talpha\tmode\ttokens_per_s\tmodel_tokens_per_s\tmeasured_over_model\tspeedup_vs_cloud_ar\n' > "$tsv"
for p in "${points[@]}"; do
  set -- $p
  python3 - "$out/${1}_${2}_rtt${3}_a${4}.json" "$1" "$2" "$3" "$4" >> "$tsv" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for r in doc["runs"]:
    print("\t".join([sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], r["mode"],
                     "%.3f" % r["tokens_per_s"], "%.3f" % r["model_tokens_per_s"],
                     "%.3f" % r["measured_over_model"], "%.3f" % r["speedup_vs_cloud_ar"]]))
PY
done
echo "wrote $tsv"
if [ "${PLOT:-1}" = 1 ] && command -v gnuplot > /dev/null; then
  mkdir -p docs/img
  gnuplot -e "tsv='$tsv'; outdir='docs/img'; suffix='$suffix'; label='${PICOSPEC_OPTS:-}'" scripts/plot_pipeline.gp
  echo "wrote docs/img/pipeline${suffix}_rtt.png docs/img/pipeline${suffix}_alpha.png"
fi
