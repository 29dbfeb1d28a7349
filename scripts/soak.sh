#!/usr/bin/env bash
# A soak of the one-command deployment on loopback (RELIABILITY.md): mixed traffic for SECONDS — module
# reads behind the SDK (finance), access checks (Auth), entitlement reads (Core) with wrk; access writes,
# sign-ins and a change-feed consumer from a Python loop — then the answers by status, throughput, latency
# and the process's resident memory after warm-up and at the end. Exits 1 on any unexpected status, or
# (runs of 5 minutes or more) on memory growing more than 10 % after warm-up.
#
#   scripts/soak.sh [SECONDS] [--release]       (default 60 s, a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
profile=debug
[ "${2:-}" = "--release" ] && profile=release
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if [ "$profile" = release ]; then cargo build -q --release -p kisum-platform; else cargo build -q -p kisum-platform; fi
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
offset=$((200 + RANDOM % 300))
auth="http://127.0.0.1:$((7400 + offset))"
core="http://127.0.0.1:$((7401 + offset))"
finance="http://127.0.0.1:$((7410 + offset))"
secret="soak-operator-secret-of-at-least-32-characters"
RUST_LOG=warn KISUM_ADMIN_CLIENT_SECRET="$secret" "target/$profile/kisum-platform" --data "$work/data" \
  --port-offset "$offset" > "$work/platform.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do curl -fs "$finance/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
read -r maya service < <(python3 - "$auth" "$secret" <<'PY'
import base64, json, sys, urllib.request
auth, secret = sys.argv[1], sys.argv[2]
def post(url, body, headers):
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST")) as r:
        return json.load(r)
s = post(f"{auth}/v1/sessions", json.dumps({"user": "maya", "password": "kisum-demo"}).encode(), {"content-type": "application/json"})
form = {"content-type": "application/x-www-form-urlencoded"}
t = post(f"{auth}/oauth/token", f"grant_type=refresh_token&refresh_token={s['refresh_token']}&company=encore".encode(), form)
basic = base64.b64encode(f"platform-admin:{secret}".encode()).decode()
svc = post(f"{auth}/oauth/token", b"grant_type=client_credentials&scope=auth%3Aaccess%3Aread", {**form, "authorization": f"Basic {basic}"})
print(t["access_token"], svc["access_token"])
PY
)
cat > "$work/check.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"principal":"user:leo","company":"encore","permission":"artist:profile:read"}'
LUA
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
warm=$(( seconds / 10 > 30 ? 30 : seconds / 10 ))
( sleep "$warm"; rss > "$work/rss.warm" ) &
wrk -t1 -c16 -d"${seconds}s" --latency -H "Authorization: Bearer $maya" "$finance/v1/invoices" > "$work/finance.txt" &
w1=$!
wrk -t1 -c8 -d"${seconds}s" --latency -H "Authorization: Bearer $service" -s "$work/check.lua" "$auth/v1/access/check" > "$work/check.txt" &
w2=$!
wrk -t1 -c8 -d"${seconds}s" --latency -H "Authorization: Bearer $maya" "$core/v1/companies/encore/entitlements" > "$work/core.txt" &
w3=$!
python3 - "$auth" "$maya" "$service" "$seconds" > "$work/mixed.txt" <<'PY'
import json, sys, threading, time, urllib.error, urllib.request
from collections import Counter
auth, maya, service, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
end = time.monotonic() + seconds
statuses = Counter()
def call(method, url, body=None, headers=None, expect=(200,)):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception as e:  # noqa: BLE001
        status = type(e).__name__
    statuses[(method, url.split("/v1/")[-1].split("?")[0], status, status in expect)] += 1
events = [0]
def feed():
    req = urllib.request.Request(f"{auth}/v1/changes", headers={"authorization": f"Bearer {service}"})
    try:
        with urllib.request.urlopen(req, timeout=seconds + 30) as r:
            for line in r:
                if line.startswith(b"data:"):
                    events[0] += 1
                if time.monotonic() > end:
                    return
    except Exception:  # noqa: BLE001
        pass
threading.Thread(target=feed, daemon=True).start()
n = 0
while time.monotonic() < end:
    roles = ["booker"] if n % 2 else ["booker", "viewer"]
    call("PUT", f"{auth}/v1/companies/encore/memberships/leo", json.dumps({"roles": roles}).encode(),
         {"authorization": f"Bearer {maya}", "content-type": "application/json"})
    if n % 10 == 0:
        call("POST", f"{auth}/v1/sessions", json.dumps({"user": "ines", "password": "kisum-demo"}).encode(),
             {"content-type": "application/json"}, expect=(201,))
    n += 1
    time.sleep(0.2)
unexpected = sum(c for (m, p, s, ok), c in statuses.items() if not ok)
print(json.dumps({"writes_and_sign_ins": {f"{m} {p} {s}": c for (m, p, s, ok), c in statuses.items()},
                  "feed_events": events[0], "unexpected": unexpected}))
PY
wait "$w1" "$w2" "$w3"
end_rss=$(rss)
warm_rss=$(cat "$work/rss.warm" 2>/dev/null || echo "$end_rss")
bad=0
for f in finance check core; do
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$f.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/$f.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$f.txt")
  total=$(awk '/requests in/ {print $1}' "$work/$f.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$work/$f.txt")
  errors=$(awk '/Socket errors/ {print}' "$work/$f.txt")
  echo "$f: $total requests, $rps/s, p50 $p50, p99 $p99, non-2xx ${non2xx:-0} ${errors}"
  [ -n "${non2xx:-}" ] && [ "${non2xx:-0}" != "0" ] && bad=1
done
cat "$work/mixed.txt"
python3 -c 'import json,sys; sys.exit(1 if json.load(open(sys.argv[1]))["unexpected"] else 0)' "$work/mixed.txt" || bad=1
echo "resident memory: $((warm_rss / 1024)) MiB after ${warm}s of warm-up, $((end_rss / 1024)) MiB at the end"
if [ "$seconds" -ge 300 ] && [ "$end_rss" -gt $((warm_rss * 110 / 100)) ]; then
  echo "memory grew more than 10 % after warm-up"; bad=1
fi
if [ "$bad" != 0 ]; then
  echo "soak: unexpected answers (see above)"; tail -20 "$work/platform.log"; exit 1
fi
echo "soak: every answer as expected"
