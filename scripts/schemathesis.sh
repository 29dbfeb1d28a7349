#!/usr/bin/env bash
# Checks a server's OpenAPI document against the running server with schemathesis: builds the binaries,
# starts the server on a free loopback port over a fresh SQLite store seeded with the demo world, and runs
# every check of schemathesis on every operation with a bounded number of examples, as a platform service
# holding every scope. Exits non-zero on any failure.
#
#   scripts/schemathesis.sh [core|auth] [MAX_EXAMPLES]      (default: core, 25 per operation)
#
# Core verifies with a key made by the `kisum` tool; Auth issues the token itself (client credentials of
# `platform-admin`). Auth's change feed is excluded: its default answer is an endless event stream.
set -euo pipefail
cd "$(dirname "$0")/.."
server=core
case "${1:-}" in core|auth) server=$1; shift ;; esac
max_examples=${1:-25}
scripts/install-test-tools.sh >/dev/null
cargo build -q -p kisum-cli -p "kisum-$server"
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
wait_ready() {
  for _ in $(seq 1 100); do
    curl -fs "$base/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "kisum-$server did not start:"; cat "$work/server.log"; exit 1
}
exclude=()
if [ "$server" = core ]; then
  kisum=target/debug/kisum
  $kisum token kek > "$work/kek.hex"
  $kisum token keygen --kid st-1 --kek-file "$work/kek.hex" --out "$work/st-1.key" >/dev/null
  $kisum token jwks --key "$work/st-1.key" --kek-file "$work/kek.hex" > "$work/jwks.json"
  now=$(date +%s)
  # A platform service with every scope: schemathesis exercises every route as an authorized caller.
  printf '{"iss":"http://127.0.0.1:7400","sub":"service:schemathesis","aud":"kisum","exp":%d,"iat":%d,"jti":"st","client_id":"schemathesis","scope":"*"}' \
    $((now + 900)) "$now" > "$work/claims.json"
  token=$($kisum token sign --key "$work/st-1.key" --kek-file "$work/kek.hex" < "$work/claims.json")
  target/debug/kisum-core --listen "127.0.0.1:$port" --data "$work/data" --jwks "$work/jwks.json" > "$work/server.log" 2>&1 &
  server_pid=$!
  wait_ready
else
  KISUM_ADMIN_CLIENT_SECRET=schemathesis-operator-secret-0123456789ab target/debug/kisum-auth --listen "127.0.0.1:$port" --data "$work/data" \
    --issuer http://127.0.0.1:7400 > "$work/server.log" 2>&1 &
  server_pid=$!
  wait_ready
  token=$(curl -fs -u platform-admin:schemathesis-operator-secret-0123456789ab -d grant_type=client_credentials "$base/oauth/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  exclude=(--exclude-path /v1/changes)
fi

status=0
root=$(pwd)
# Run from the scratch folder: schemathesis keeps a cache in its working directory.
cd "$work"
"$root/target/tools/venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  "${exclude[@]}" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$max_examples" \
  --seed 20261126 \
  --generation-deterministic \
  --max-time "${SCHEMATHESIS_MAX_TIME:-240}" \
  --request-timeout 10 \
  --workers 1 || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- kisum-$server log (last 40 lines)"
  tail -40 "$work/server.log"
fi
exit "$status"
