#!/usr/bin/env bash
# Where the speed-up ends: picospec-demo with our trained pair (models/) over emulated links of RTT 0.5-100 ms
# (100 Mbit/s each way), every mode (picospec with its default cloud fill, and again without it), then the
# ALGORITHM.md section-5 model of the pipeline without fill from the measured draft and verify times,
# the crossover RTT at which cloud-ar overtakes picospec, and the plot docs/img/real_pair_rtt.png.
#
#   scripts/real_pair_sweep.sh [BUILD_DIR] [OUT_DIR]        (defaults: build/release, build/real-pair-sweep)
# Environment: RTTS (default "0.5 1 2 5 10 20 50 100"), TOKENS per prompt (default 64), TEMP (default 0.8),
# PLOT=0 to skip the plot.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
out=${2:-build/real-pair-sweep}
demo=$build/examples/demo/picospec-demo
[ -x "$demo" ] || { echo "real_pair_sweep.sh: $demo not found (build target picospec-demo)" >&2; exit 2; }
mkdir -p "$out"
rtts=${RTTS:-"0.5 1 2 5 10 20 50 100"}
for rtt in $rtts; do
  "$demo" --link "$rtt:100:100" --temp "${TEMP:-0.8}" -n "${TOKENS:-64}" --json > "$out/rtt_$rtt.json"
  # picospec without cloud fill (the cloud waits for every redraft): the pipeline the section-5 model describes.
  "$demo" --link "$rtt:100:100" --temp "${TEMP:-0.8}" -n "${TOKENS:-64}" --mode picospec --no-fill --json \
    > "$out/rtt_${rtt}_nofill.json"
  echo "done: rtt $rtt ms" >&2
done
python3 scripts/real_pair_model.py "$out" $rtts > "$out/summary.txt"
cat "$out/summary.txt"
if [ "${PLOT:-1}" = 1 ] && command -v gnuplot > /dev/null; then
  mkdir -p docs/img
  gnuplot -e "tsv='$out/sweep.tsv'; model='$out/model.tsv'; png='docs/img/real_pair_rtt.png'" scripts/plot_real_pair.gp
  echo "wrote docs/img/real_pair_rtt.png" >&2
fi
