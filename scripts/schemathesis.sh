#!/usr/bin/env bash
# Checks Core's OpenAPI document against the running server with schemathesis: builds the binaries,
# makes a signing key, a JWKS and a platform service token with the `kisum` tool, starts `kisum-core`
# on a free loopback port over a fresh SQLite store seeded with the demo world, and runs every check of
# schemathesis on every operation with a bounded number of examples. Exits non-zero on any failure.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 25 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
max_examples=${1:-25}
scripts/install-test-tools.sh >/dev/null
cargo build -q -p kisum-cli -p kisum-core
work=$(mktemp -d)
core_pid=
cleanup() { [ -n "$core_pid" ] && kill "$core_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

kisum=target/debug/kisum
$kisum token kek > "$work/kek.hex"
$kisum token keygen --kid st-1 --kek-file "$work/kek.hex" --out "$work/st-1.key" >/dev/null
$kisum token jwks --key "$work/st-1.key" --kek-file "$work/kek.hex" > "$work/jwks.json"
now=$(date +%s)
# A platform service with every scope: schemathesis exercises every route as an authorized caller.
printf '{"iss":"http://127.0.0.1:7400","sub":"service:schemathesis","aud":"kisum","exp":%d,"iat":%d,"jti":"st","client_id":"schemathesis","scope":"*"}' \
  $((now + 900)) "$now" > "$work/claims.json"
token=$($kisum token sign --key "$work/st-1.key" --kek-file "$work/kek.hex" < "$work/claims.json")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
target/debug/kisum-core --listen "127.0.0.1:$port" --data "$work/data" --jwks "$work/jwks.json" > "$work/core.log" 2>&1 &
core_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "kisum-core did not start:"; cat "$work/core.log"; exit 1; }

status=0
root=$(pwd)
# Run from the scratch folder: schemathesis keeps a cache in its working directory.
cd "$work"
"$root/target/tools/venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$max_examples" \
  --seed 20261126 \
  --generation-deterministic \
  --max-time "${SCHEMATHESIS_MAX_TIME:-240}" \
  --request-timeout 10 \
  --workers 1 || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- kisum-core log (last 40 lines)"
  tail -40 "$work/core.log"
fi
exit "$status"
