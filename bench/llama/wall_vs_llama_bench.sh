#!/bin/sh
# Wall-clock time per call of picospec (llama_calls) beside llama.cpp (llama-bench) on the same GGUF files, back to
# back in one run: llama-bench first (all three tests), then picospec's decode, verify5 and prefill64 (and, for a
# Q8_0 or Q4_K_M file (by its name), the same three on the exact float path, PICOSPEC_LLAMA_Q8=float). Wall clock is only fair on a quiet
# machine: the script prints `uptime` before each file; repeat it and report the ranges.
#
#   bench/llama/wall_vs_llama_bench.sh LLAMA_CALLS LLAMA_BENCH THREADS REPEATS FILE...
#
# LLAMA_CALLS: build/rel/bench/llama/llama_calls; LLAMA_BENCH: a llama.cpp build's bin/llama-bench (built by you,
# outside this project; docs/benchmarks.md). Pairs: decode vs tg32 (per token), verify5 vs pp5, prefill64 vs pp64.
# Each line gives llama.cpp's best and mean sample, picospec's best and median of REPEATS calls, and
# picospec speed / llama.cpp (best / best and mean / median). Needs python3 (to read llama-bench's JSON).
set -eu
C=$1; L=$2; T=$3; N=$4; shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for F in "$@"; do
  echo "== $F, $T threads; $(uptime)"
  "$L" -m "$F" -t "$T" -p 5,64 -n 32 -r "$N" -o json > "$tmp/lb.json" 2> /dev/null
  paths="default"
  case "$F" in *q8_0*|*q4_k_m*) paths="default float" ;; esac
  for p in $paths; do
    for mode in decode verify prefill; do
      if [ "$p" = float ]; then out=$(PICOSPEC_LLAMA_Q8=float "$C" "$F" "$mode" "$N" "$T"); else out=$("$C" "$F" "$mode" "$N" "$T"); fi
      echo "$out" > "$tmp/pc.txt"
      python3 - "$tmp/lb.json" "$tmp/pc.txt" "$mode" "$paths" <<'PY'
import json, re, sys
lb = json.load(open(sys.argv[1])); pc = open(sys.argv[2]).read(); mode = sys.argv[3]
want = {"decode": (0, 32), "verify": (5, 0), "prefill": (64, 0)}[mode]
name = {"decode": "tg32", "verify": "pp5", "prefill": "pp64"}[mode]
r = [x for x in lb if (x["n_prompt"], x["n_gen"]) == want][0]
per = 32 if mode == "decode" else 1  # tg32: per token
s = r["samples_ns"]
lbest, lmean = min(s) / 1e6 / per, sum(s) / len(s) / 1e6 / per
m = re.search(r"quantized-weight path (\w+), best of \d+: ([\d.]+) ms, median ([\d.]+) ms", pc)
path, pbest, pmed = m.group(1), float(m.group(2)), float(m.group(3))
label = f"path {path:5s}" if len(sys.argv[4].split()) > 1 else "          "
print(f"{mode:8s} {label} vs {name:4s}: llama.cpp best {lbest:7.3f} mean {lmean:7.3f} ms | "
      f"picospec best {pbest:7.3f} median {pmed:7.3f} ms | picospec speed / llama.cpp {lbest / pbest:.2f}x "
      f"(best), {lmean / pmed:.2f}x (mean / median)")
PY
    done
  done
done
