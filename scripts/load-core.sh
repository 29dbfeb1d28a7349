#!/usr/bin/env bash
# Entitlements reads per second through HTTP on loopback (BENCHMARKS.md): a release `kisum-core` on the
# demo world, `wrk` (installed from Debian if missing) for a bounded time with one user token.
#
#   scripts/load-core.sh [SECONDS] [CONNECTIONS]      (default 10 s, 32 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build -q --release -p kisum-cli -p kisum-core
work=$(mktemp -d)
core_pid=
cleanup() { [ -n "$core_pid" ] && kill "$core_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
kisum=target/release/kisum
$kisum token kek > "$work/kek.hex"
$kisum token keygen --kid load-1 --kek-file "$work/kek.hex" --out "$work/k.key" >/dev/null
$kisum token jwks --key "$work/k.key" --kek-file "$work/kek.hex" > "$work/jwks.json"
now=$(date +%s)
printf '{"iss":"http://127.0.0.1:7400","sub":"maya","aud":"kisum","exp":%d,"iat":%d,"jti":"load","cid":"encore","sid":"s","ver":0}' \
  $((now + 900)) "$now" > "$work/claims.json"
token=$($kisum token sign --key "$work/k.key" --kek-file "$work/kek.hex" < "$work/claims.json")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
RUST_LOG=warn target/release/kisum-core --listen "127.0.0.1:$port" --data "$work/data" --jwks "$work/jwks.json" > "$work/core.log" 2>&1 &
core_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port/v1/companies/encore/entitlements"
curl -fs -H "Authorization: Bearer $token" "$url" >/dev/null
wrk -t1 -c"$connections" -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$url"
