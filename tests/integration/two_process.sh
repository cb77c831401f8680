#!/bin/sh
# Two-process deployment test: picospec-server (cloud) and picospec-edge (edge) as separate processes over
# ZeroMQ tcp on 127.0.0.1, with real GGUF models. Checks: greedy speculative text == cloud-ar text; a seeded sampled
# run is reproducible across processes; a bad model file fails with one line; SIGINT stops the server cleanly;
# CURVE: the right server key talks, a wrong one is refused (edge times out), a plain edge too.
# Usage: two_process.sh SERVER EDGE PROJECT_MODELS_DIR SHARED_MODELS_DIR WORK_DIR. Models: the project's own pair
# (PROJECT_MODELS_DIR/target.gguf + draft.gguf) when both exist, else ../shared's stories260K.gguf (target) +
# tinystories-xs-280K.gguf (draft); exits 77 (skipped, with the reason) when neither pair is there.
set -u
server=$1 edge=$2 own=$3 shared=$4 work=$5
if [ -f "$own/target.gguf" ] && [ -f "$own/draft.gguf" ]; then
  target=$own/target.gguf draft=$own/draft.gguf
elif [ -f "$shared/stories260K.gguf" ] && [ -f "$shared/tinystories-xs-280K.gguf" ]; then
  target=$shared/stories260K.gguf draft=$shared/tinystories-xs-280K.gguf
else
  echo "SKIPPED: neither $own/target.gguf + draft.gguf nor $shared/stories260K.gguf + tinystories-xs-280K.gguf"
  exit 77
fi
echo "models: target $target, draft $draft"
rm -rf "$work" && mkdir -p "$work" || exit 1
fail() { echo "FAIL: $*"; [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; exit 1; }

# start_server LOG [flags...]: starts the server on an ephemeral port; sets spid and endpoint.
start_server() {
  log=$1; shift
  "$server" -m "$target" --bind 'tcp://127.0.0.1:*' "$@" >"$log" 2>&1 &
  spid=$!
  endpoint=""
  i=0
  while [ $i -lt 100 ] && [ -z "$endpoint" ]; do
    endpoint=$(sed -n 's/.* on \(tcp:[^ ]*\).*/\1/p' "$log")
    [ -n "$endpoint" ] || sleep 0.1
    i=$((i + 1))
  done
  [ -n "$endpoint" ] || fail "server did not start: $(cat "$log")"
}
stop_server() {
  kill -INT "$spid"
  wait "$spid"
  rc=$?
  [ $rc -eq 0 ] || fail "server exited $rc after SIGINT: $(cat "$1")"
  grep -q "stopped" "$1" || fail "server did not report its stop"
  spid=""
}
text_of() { grep -o '"text":"[^"]*"' "$1" | head -n 1; }

# 1. Bad model file: one line, non-zero exit.
"$server" -m "$work/absent.gguf" >"$work/bad.log" 2>&1 && fail "server accepted a missing model"
[ "$(wc -l <"$work/bad.log")" -eq 1 ] || fail "expected a one-line error, got: $(cat "$work/bad.log")"

# 2. Greedy speculative == cloud-ar; seeded sampling reproducible.
start_server "$work/server.log"
prompt="Once upon a time, there was a little dog"
"$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 48 --temp 0 --mode cloud-ar --json >"$work/ar.json" || fail "cloud-ar run failed"
"$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 48 --temp 0 --mode picospec --link wan --json >"$work/spec.json" || fail "picospec run failed"
[ -n "$(text_of "$work/ar.json")" ] || fail "no text from cloud-ar"
[ "$(text_of "$work/ar.json")" = "$(text_of "$work/spec.json")" ] || fail "greedy picospec differs from cloud-ar: $(text_of "$work/ar.json") vs $(text_of "$work/spec.json")"
"$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 32 --temp 0.8 --seed 9 --json >"$work/s1.json" || fail "sampled run 1 failed"
"$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 32 --temp 0.8 --seed 9 --gamma 2 --json >"$work/s2.json" || fail "sampled run 2 failed"
[ "$(text_of "$work/s1.json")" = "$(text_of "$work/s2.json")" ] || fail "same seed, different text across runs/gamma"
stop_server "$work/server.log"
echo "greedy identity and seeded reproducibility across processes: ok"

# 3. CURVE (when libzmq has it).
if "$server" --curve-keygen >"$work/keys" 2>/dev/null; then
  pub=$(sed -n 's/^public //p' "$work/keys")
  sec=$(sed -n 's/^secret //p' "$work/keys")
  "$server" --curve-keygen >"$work/keys2" || fail "keygen"
  wrong=$(sed -n 's/^public //p' "$work/keys2")
  start_server "$work/curve.log" --curve-secret "$sec"
  "$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 8 --temp 0 --curve-server-key "$pub" --json >"$work/c1.json" || fail "edge with the right CURVE key failed"
  "$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 8 --temp 0 --curve-server-key "$wrong" --timeout-ms 1500 --json >"$work/c2.json" 2>&1 && fail "edge with a wrong CURVE key was served"
  "$edge" -md "$draft" --connect "$endpoint" -p "$prompt" -n 8 --temp 0 --timeout-ms 1500 --json >"$work/c3.json" 2>&1 && fail "plain edge was served by a CURVE server"
  stop_server "$work/curve.log"
  echo "CURVE: right key served, wrong key and plain edge refused: ok"
else
  echo "CURVE not available in this libzmq: that part skipped"
fi
echo "two-process test passed"
