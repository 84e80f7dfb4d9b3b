#!/usr/bin/env bash
# Load run against the release build on a fresh data directory: posts the corpus
# messages (each with a fresh Message-ID, so every request is a durable new filing)
# with wrk, and prints messages/s and latency.
#
# usage: benches/load.sh [CONCURRENCY...]      (default: 16)   DURATION=30s
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd
cargo build --release --quiet

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18088; smtp=18025
python3 -m aiosmtpd -n -c aiosmtpd.handlers.Sink -l 127.0.0.1:$smtp &
find fixtures/cases -maxdepth 1 -name '*.eml' | sort > "$work/manifest"
token=load-test-token
INTAKE__HTTP__LISTEN=127.0.0.1:$port INTAKE__STORE__PATH="$work/data" \
INTAKE__SMTP__RELAY=127.0.0.1:$smtp INTAKE__AUTH__GATEWAY_TOKEN=$token \
RUST_LOG=warn target/release/intake serve &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

for c in "${@:-16}"; do
  echo "== concurrency $c, ${DURATION:-30s}, $(wc -l < "$work/manifest") distinct messages"
  wrk -t2 -c"$c" -d"${DURATION:-30s}" --latency -s benches/load.lua "http://127.0.0.1:$port" -- "$work/manifest" "$token" \
    | grep -E "Requests/sec|Latency|50%|99%|requests in|Non-2xx"
done
echo "== peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2" "$3}')"
echo "== data directory: $(du -sh "$work/data" | cut -f1)"
