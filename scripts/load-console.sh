#!/usr/bin/env bash
# The console under load (BENCHMARKS.md "The console"): the one-command deployment on its own ports, one
# signed-in owner (maya), then wrk for SECONDS on each page next to the Auth calls that page makes, in
# the same run — the company home (`/`: GET /v1/me/access) and the explorer (`/explorer?…`: me/access,
# Core's catalog, a check, who-can, grantors and a batch of every catalog permission) — and every page's
# weight in bytes.
#
#   scripts/load-console.sh [SECONDS] [--release]       (default 10 s each, a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
profile=release
[ "${2:-}" = "--debug" ] && profile=debug
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ "$profile" = release ]; then cargo build -q --release -p kisum-platform; else cargo build -q -p kisum-platform; fi
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
offset=$((500 + RANDOM % 300))
auth="http://127.0.0.1:$((7400 + offset))"
core="http://127.0.0.1:$((7401 + offset))"
console="http://127.0.0.1:$((7402 + offset))"
RUST_LOG=warn KISUM_ADMIN_CLIENT_SECRET="load-console-operator-secret-0123456789" "target/$profile/kisum-platform" \
  --data "$work/data" --port-offset "$offset" > "$work/platform.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -fs "$console/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
# Sign in through the console (cookie), and directly at Auth for the baseline calls.
jar="$work/jar"
csrf=$(curl -s -c "$jar" -b "$jar" "$console/login" | grep -o 'name="_csrf" value="[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}')
curl -s -o /dev/null -c "$jar" -b "$jar" "$console/login" --data "_csrf=$csrf&user=maya&password=kisum-demo"
cookie="kisum_console=$(awk '$6 == "kisum_console" {print $7}' "$jar")"
token=$(python3 - "$auth" <<'PY'
import json, sys, urllib.request
auth = sys.argv[1]
def post(url, body, ct):
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"content-type": ct}, method="POST")) as r:
        return json.load(r)
s = post(f"{auth}/v1/sessions", json.dumps({"user": "maya", "password": "kisum-demo"}).encode(), "application/json")
t = post(f"{auth}/oauth/token", f"grant_type=refresh_token&refresh_token={s['refresh_token']}&company=encore".encode(), "application/x-www-form-urlencoded")
print(t["access_token"])
PY
)
explorer="/explorer?principal=user:leo&permission=finance:invoice:approve"
keys=$(curl -s -H "Authorization: Bearer $token" "$core/v1/catalog" | python3 -c 'import json,sys; print(json.dumps([p["key"] for p in json.load(sys.stdin)["permissions"]]))')
python3 - "$keys" > "$work/batch.lua" <<'PY'
import json, sys
keys = json.loads(sys.argv[1])
body = json.dumps({"checks": [{"principal": "user:leo", "company": "encore", "permission": k} for k in keys]})
print('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ' + json.dumps(body))
PY
cat > "$work/check.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal":"user:leo","company":"encore","permission":"finance:invoice:approve"}'
LUA
n=0
run() { # name, wrk args…
  local name=$1; shift
  n=$((n + 1))
  wrk -t1 -c4 -d"${seconds}s" --latency "$@" > "$work/run$n.txt"
  python3 - "$name" "$work/run$n.txt" <<'PY'
import re, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
lat = dict(re.findall(r"\n\s+(50|99)%\s+([\d.]+\w+)", text))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"| {name} | {float(rps):,.0f} | {lat.get('50')} | {lat.get('99')} | {bad.group(1) if bad else 0} |")
PY
}
echo "| what (wrk -t1 -c4, ${seconds} s, $profile) | req/s | p50 | p99 | non-2xx |"
echo "| --- | ---: | ---: | ---: | ---: |"
run "console GET / (home)" -H "Cookie: $cookie" "$console/"
run "Auth GET /v1/me/access (what home calls)" -H "Authorization: Bearer $token" "$auth/v1/me/access"
run "console GET /explorer (why not, who can, grantors, effective table)" -H "Cookie: $cookie" "$console$explorer"
run "Auth POST /v1/access/check (one of its calls)" -H "Authorization: Bearer $token" -s "$work/check.lua" "$auth/v1/access/check"
run "Auth POST /v1/access/check-batch, every catalog permission (one of its calls)" -H "Authorization: Bearer $token" -s "$work/batch.lua" "$auth/v1/access/check-batch"
echo
echo "| page | bytes (HTML; CSS $(curl -s "$console/assets/console.css" | wc -c), JS $(curl -s "$console/assets/live.js" | wc -c), cached) |"
echo "| --- | ---: |"
for page in / /m/finance /m/artist /m/venue /m/promoters /m/touring /m/ai /access/members /access/roles /access/agents \
            /access/delegations "$explorer"; do
  echo "| \`$page\` | $(curl -s -b "$jar" "$console$page" | wc -c) |"
done
echo "| \`/login\` (signed out) | $(curl -s "$console/login" | wc -c) |"
