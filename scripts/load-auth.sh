#!/usr/bin/env bash
# Auth under load on loopback (BENCHMARKS.md): a release `kisum-auth` on the demo world, `wrk` (installed
# from Debian if missing) for a bounded time per route:
#   - POST /v1/access/check and GET /v1/access/snapshot with a service token (`auth:access:read`);
#   - POST /v1/sessions (sign-in: one argon2id verification each, m=19456 KiB, t=2, p=1);
#   - POST /oauth/token, client credentials with a generated secret (SHA-256 checked).
# The in-process baselines are `cargo bench -p kisum-auth --bench access`.
#
#   scripts/load-auth.sh [SECONDS] [CONNECTIONS]      (default 10 s, 32 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build -q --release -p kisum-auth
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
RUST_LOG=warn target/release/kisum-auth --listen "127.0.0.1:$port" --data "$work/data" > "$work/auth.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "$base/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
secret=$(sed -n 's/.*`platform-admin`.*secret shown once: //p' "$work/auth.log")
service=$(curl -fs -u "platform-admin:$secret" -d grant_type=client_credentials -d scope=auth:access:read "$base/oauth/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
cat > "$work/check.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal":"user:maya","company":"encore","permission":"finance:invoice:approve"}'
LUA
# Sign-ins rotate over the seven demo users (one user's sign-ins are verified one at a time).
cat > "$work/login.lua" <<'LUA'
local users = {"maya", "leo", "ines", "sam", "kai", "ops", "una"}
local i = 0
request = function()
  i = i + 1
  local body = '{"user":"' .. users[(i % #users) + 1] .. '","password":"kisum-demo"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA
cat > "$work/token.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf 'platform-admin:%s' "$secret" | base64 -w0)"
wrk.body = "grant_type=client_credentials&scope=auth:access:read"
LUA
run() {
  echo "== $1"
  shift
  wrk -t1 -c"$connections" -d"${seconds}s" --latency "$@" | grep -E "Requests/sec|Latency  |50%|99%|Non-2xx"
}
run "POST /v1/access/check" -s "$work/check.lua" -H "Authorization: Bearer $service" "$base/v1/access/check"
run "GET /v1/access/snapshot" -H "Authorization: Bearer $service" "$base/v1/access/snapshot?principal=user:maya&company=encore"
run "POST /oauth/token (client credentials)" -s "$work/token.lua" "$base/oauth/token"
run "POST /v1/sessions (sign-in, argon2id, 7 users)" -s "$work/login.lua" "$base/v1/sessions"
