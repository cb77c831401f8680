#!/usr/bin/env bash
# The main job: installs dependencies, builds picospec, and runs the demo.
#
#  1. picospec-demo: our own trained pair in models/ (a 21M-parameter target in the "cloud", a 1M-parameter
#     distilled draft on the "edge"), the cloud serving on ZeroMQ tcp://127.0.0.1, the edge talking to it through an
#     emulated network link. Every mode (cloud-ar, edge-only, vanilla, paper, picospec) on the same prompts and link:
#     the text streams as it commits, then one table (tok/s, speed-up, acceptance, bytes, TTFT, cloud passes/token).
#  2. picospec-bench-pipeline: the same modes on the synthetic backend with the latencies the PicoSpec paper
#     measured (llama-paper profile, paper-wan link), beside the analytic model.
#
# Usage: scripts/demo.sh [picospec-demo flags]   e.g. --temp 0, --link wan, --models DIR, -m T.gguf -md D.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target picospec-demo picospec-bench-pipeline

echo
echo "=== 1. our trained pair, edge <-> cloud over ZeroMQ + an emulated link ==="
./build/release/examples/demo/picospec-demo "$@"

echo
echo "=== 2. what-if speed-up with the paper's latencies (synthetic backend) ==="
./build/release/bench/pipeline/picospec-bench-pipeline --profile llama-paper --link paper-wan --alpha 0.9 \
  --tokens 200 --repeat 1 --modes cloud-ar,vanilla,paper,picospec
