#!/bin/bash
# picospec-server --metrics-port: the Prometheus text exposition and the JSON at /metrics and /metrics.json
# reflect a real edge session (sessions opened, chunks verified, batch histogram), other paths get 404, and the
# endpoint does not outlive the server. Uses the project's own pair (models/).
# Usage: metrics_port.sh SERVER EDGE PROJECT_MODELS_DIR WORK_DIR
set -u
server=$1 edge=$2 own=$3 work=$4
[ -f "$own/target.gguf" ] && [ -f "$own/draft.gguf" ] || { echo "SKIPPED: no $own/target.gguf + draft.gguf"; exit 77; }
rm -rf "$work" && mkdir -p "$work" || exit 1
fail() { echo "FAIL: $*"; [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; exit 1; }

# get PORT PATH: the HTTP response (headers and body) of GET PATH on 127.0.0.1:PORT, bounded to 5 s.
get() {
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET $2 HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && cat <&3"
}

"$server" -m "$own/target.gguf" --bind 'tcp://127.0.0.1:*' --metrics-port 0 >"$work/server.log" 2>&1 &
spid=$!
endpoint="" port=""
for _ in $(seq 100); do
  endpoint=$(sed -n 's/.* on \(tcp:[^ ]*\).*/\1/p' "$work/server.log")
  port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/server.log")
  [ -n "$endpoint" ] && [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$endpoint" ] && [ -n "$port" ] || fail "server did not start with metrics: $(cat "$work/server.log")"

get "$port" /metrics >"$work/before.txt" || fail "no answer on /metrics"
grep -q '^HTTP/1.0 200' "$work/before.txt" || fail "status: $(head -n 1 "$work/before.txt")"
grep -q '^picospec_cloud_sessions_opened_total 0$' "$work/before.txt" || fail "before: $(cat "$work/before.txt")"

"$edge" -md "$own/draft.gguf" --connect "$endpoint" -p "Once upon a time" -n 24 --temp 0 --json >"$work/edge.json" 2>"$work/edge.err" ||
  fail "edge failed: $(cat "$work/edge.err")"

get "$port" /metrics >"$work/after.txt" || fail "no answer on /metrics after the session"
for line in '# TYPE picospec_cloud_sessions_opened_total counter' '^picospec_cloud_sessions_opened_total 1$' \
            '^picospec_cloud_batch_size_bucket{le="+Inf"} [1-9]' '^picospec_cloud_verify_seconds_count [1-9]' \
            '^picospec_cloud_queued_bytes 0$'; do
  grep -q -- "$line" "$work/after.txt" || fail "missing '$line' in: $(cat "$work/after.txt")"
done
chunks=$(sed -n 's/^picospec_cloud_chunks_verified_total \([0-9]*\)$/\1/p' "$work/after.txt")
[ "${chunks:-0}" -ge 1 ] || fail "no chunk verified: $(cat "$work/after.txt")"

get "$port" /metrics.json >"$work/json.txt" || fail "no answer on /metrics.json"
grep -q '"sessions_opened_total":1,' "$work/json.txt" || fail "json: $(cat "$work/json.txt")"
get "$port" /nope | grep -q '^HTTP/1.0 404' || fail "an unknown path is not a 404"

kill -INT "$spid" 2>/dev/null || kill -TERM "$spid"
wait "$spid"
spid=""
get "$port" /metrics >/dev/null 2>&1 && fail "the metrics endpoint outlived the server"
echo "metrics endpoint OK: $chunks chunks verified, $(grep -c '^picospec_cloud_' "$work/after.txt") series"
