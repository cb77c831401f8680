#!/usr/bin/env bash
# Fuzzing, outside CI: builds libFuzzer targets with Debian's clang (ASan + UBSan + libFuzzer) and runs each for a
# bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s each; targets: protocol codecs gguf)
#
# Targets (fuzz/fuzz_<name>.cpp): protocol (wire decoder), codecs (sparse codecs, candidate stream, draft scalars),
# gguf (GGUF reader, tokenizer and weights built from it). Seeds: fuzz_seeds writes valid inputs to
# build/fuzz/corpus/<name>; the corpus grows there between runs. A crash leaves build/fuzz/crash-* and makes this
# script exit 1: copy the file to fuzz/regressions/<name>/, fix the bug, and the main build's
# transport_fuzz_regressions test replays it from then on (ASan in scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(protocol codecs gguf)
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2;; esac

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
dir=build/fuzz
cmake -S fuzz -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -O1 -g" \
  >/dev/null
cmake --build "$dir" -j "${PICOSPEC_JOBS:-2}" --target fuzz_seeds $(printf 'fuzz_%s ' "${targets[@]}")
"$dir/fuzz_seeds" "$dir/corpus"

status=0
for t in "${targets[@]}"; do
  mkdir -p "$dir/corpus/$t" "fuzz/regressions/$t"
  echo "=== fuzz_$t: ${seconds} s"
  # Kept crashes first (each must pass now), then the corpus, for at most $seconds; 2 GiB RSS cap, 1 MiB inputs.
  if ! (cd "$dir" && "./fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576 \
          -print_final_stats=1 "corpus/$t" "../../fuzz/regressions/$t"); then
    echo "=== fuzz_$t FOUND A CRASH: see $dir/crash-* (copy it to fuzz/regressions/$t/)" >&2
    status=1
  fi
done
exit $status
