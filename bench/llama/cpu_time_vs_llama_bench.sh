#!/bin/sh
# CPU time per call of picospec (llama_calls) and llama.cpp (llama-bench) on the same GGUF files, from
# `perf stat -e task-clock` of a run with 1+N repetitions minus a run with 1: model loading, warm-up and setup
# cancel. With 1 thread this is a fair comparison even on a busy machine (no thread waits for another); with more
# threads both runtimes spin while waiting, so CPU time / threads only approximates an idle machine's wall time.
#
#   bench/llama/cpu_time_vs_llama_bench.sh LLAMA_CALLS LLAMA_BENCH THREADS N FILE...
#
# LLAMA_CALLS: build/rel/bench/llama/llama_calls; LLAMA_BENCH: a llama.cpp build's bin/llama-bench (built by you,
# outside this project). Pairs: verify5 vs pp5, prefill64 vs pp64, decode vs tg32 (per token).
set -eu
C=$1; L=$2; T=$3; N=$4; shift 4
tc() { perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | grep task-clock | cut -d, -f1; }
for F in "$@"; do
  for pair in "verify:pp5:-p 5 -n 0:1" "prefill:pp64:-p 64 -n 0:1" "decode:tg32:-p 0 -n 32:32"; do
    mode=$(echo "$pair" | cut -d: -f1); name=$(echo "$pair" | cut -d: -f2)
    args=$(echo "$pair" | cut -d: -f3); per=$(echo "$pair" | cut -d: -f4)
    # shellcheck disable=SC2086
    la=$(tc "$L" -m "$F" -t "$T" $args -r 1); lb=$(tc "$L" -m "$F" -t "$T" $args -r $((1 + N)))
    pa=$(tc "$C" "$F" "$mode" 1 "$T"); pb=$(tc "$C" "$F" "$mode" $((1 + N)) "$T")
    awk -v f="$F" -v m="$mode" -v nm="$name" -v t="$T" -v n="$N" -v per="$per" \
        -v la="$la" -v lb="$lb" -v pa="$pa" -v pb="$pb" 'BEGIN {
      l = (lb - la) / n / per; p = (pb - pa) / n;
      printf "%s %s threads %d: llama.cpp %s %.2f ms CPU, picospec %s %.2f ms CPU, picospec speed / llama.cpp %.2fx\n",
             f, m, t, nm, l, m, p, l / p }'
  done
done
