#!/usr/bin/env bash
# Load benchmark against the release build on a fresh data directory: posts the
# corpus messages (each with a fresh Message-ID, so every request is a durable new
# filing) with wrk at each concurrency for a fixed duration, and prints a table:
# messages/s, p50/p99 latency, non-2xx, peak RSS of the server, and disk bytes
# per stored message against the raw message bytes.
#
# usage: benches/load.sh
#   DURATION=20s            per concurrency
#   CONCURRENCY="1 16 64"   the runs
#   PREFILL=0               tickets written straight through the store first
#                           (examples/prefill.rs), e.g. PREFILL=1000000
#   BIN=PATH                another build of `intake` to measure (A/B runs)
#   TOOLS=DIR               where that build's `prefill` example is (it writes and
#                           reads the store, so it must match BIN's store format)
#   PERF=FILE               also `perf record -F 499 -g` the server during the
#                           last run and write the report's top entries to FILE
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd
cargo build --release --quiet --bin intake --example prefill
bin=${BIN:-target/release/intake}
prefill_bin=${TOOLS:-target/release/examples}/prefill

duration=${DURATION:-20s}
prefill=${PREFILL:-0}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000)); smtp=$((port + 1))
python3 -m aiosmtpd -n -c aiosmtpd.handlers.Sink -l 127.0.0.1:$smtp &
find fixtures/cases -maxdepth 1 -name '*.eml' | sort > "$work/manifest"
if [ "$prefill" -gt 0 ]; then
  "$prefill_bin" fill "$work/data" "$prefill"
  echo "== store after prefill: $(du -sb "$work/data" | cut -f1) bytes"
fi
token=load-test-token
INTAKE__HTTP__LISTEN=127.0.0.1:$port INTAKE__STORE__PATH="$work/data" \
INTAKE__SMTP__RELAY=127.0.0.1:$smtp INTAKE__AUTH__GATEWAY_TOKEN=$token \
RUST_LOG=warn "$bin" serve &
server=$!
# Opening a large store (sled recovers its log at start) can take minutes at 1M tickets.
t0=$(date +%s)
for _ in $(seq 6000); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { echo "server not up after 10 min" >&2; exit 1; }
echo "== server ready after $(( $(date +%s) - t0 )) s"

printf '%-6s %10s %9s %9s %8s\n' conc "msg/s" p50 p99 non2xx > "$work/table"
for c in ${CONCURRENCY:-1 16 64}; do
  threads=$(( c < 2 ? 1 : 2 ))
  if [ -n "${PERF:-}" ] && [ "$c" = "${CONCURRENCY##* }" ]; then
    perf record -q -F 499 -g -p $server -o "$work/perf.data" 2>/dev/null &
    perf_pid=$!
  fi
  out=$(wrk -t$threads -c"$c" -d"$duration" --latency -s benches/load.lua "http://127.0.0.1:$port" -- "$work/manifest" "$token")
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  if [ -n "${perf_pid:-}" ]; then
    kill -INT $perf_pid; wait $perf_pid 2>/dev/null || true; perf_pid=
    { perf report -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null
      perf report -i "$work/perf.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null
    } | grep -v '^#' | grep -v '^$' > "$PERF" || true
  fi
  printf '%-6s %10s %9s %9s %8s\n' "$c" "$rate" "$p50" "$p99" "${bad:-0}" >> "$work/table"
done
rss=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
kill -TERM $server; wait $server 2>/dev/null || true
read -r count raw < <("$prefill_bin" stats "$work/data")
raw_log=$(du -sb "$work/data/raw" 2>/dev/null | cut -f1 || echo 0)
disk=$(du -sb "$work/data" | cut -f1)
echo "== $(nproc) cores, durable acknowledgement, ${duration} per run, prefill $prefill, corpus $(wc -l < "$work/manifest") messages"
cat "$work/table"
echo "peak RSS: $((rss / 1024)) MB"
echo "raw-message log: ${raw_log:-0} bytes; sled and the rest: $(( $(du -sb "$work/data" | cut -f1) - ${raw_log:-0} )) bytes"
echo "stored: $count messages, $raw raw bytes; disk $disk bytes: $((disk / (count > 0 ? count : 1))) bytes/message, $(awk -v d=$disk -v r=$raw 'BEGIN {printf "%.2f", (r > 0 ? d / r : 0)}')x raw"
