#!/usr/bin/env bash
# The main job: installs dependencies, builds picospec, and runs the demo.
#
#  1. picospec-demo: two real GGUF models from ../shared/models (draft on the "edge", target on the "cloud"),
#     the cloud serving on ZeroMQ tcp://127.0.0.1, the edge talking to it through an emulated WAN link. Shows that
#     greedy picospec output equals the cloud model's own output token for token, and the bytes per token.
#  2. picospec-bench-pipeline: every mode (cloud-ar, vanilla, paper, picospec) on the synthetic backend with the
#     paper's measured latencies (llama-paper profile, paper-wan link), measured beside the analytic model.
#
# Usage: scripts/demo.sh [--models DIR] [--link PROFILE]   (extra flags go to picospec-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target picospec-demo picospec-bench-pipeline picospec-generate

models=../shared/models
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--models" ] && models=${args[$((i + 1))]:-$models}
done

echo
echo "=== 1. real models over ZeroMQ + emulated WAN ==="
if [ -f "$models/stories260K.gguf" ] && [ -f "$models/tinystories-xs-280K.gguf" ]; then
  ./build/release/examples/demo/picospec-demo --models "$models" "$@"
else
  echo "SKIPPED: $models has no stories260K.gguf / tinystories-xs-280K.gguf (pass --models DIR to run this part)"
fi

echo
echo "=== 2. what-if speed-up with the paper's latencies (synthetic backend) ==="
./build/release/bench/pipeline/picospec-bench-pipeline --profile llama-paper --link paper-wan --alpha 0.9 \
  --tokens 200 --repeat 1 --modes cloud-ar,vanilla,paper,picospec
