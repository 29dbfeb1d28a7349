#!/usr/bin/env python3
"""Credentials under attack and slow clients, against a running Auth on loopback (RELIABILITY.md).

Usage: scripts/attack.py AUTH_URL PID [USER PASSWORD]

1. 300 concurrent wrong secrets for the `platform-admin` client (start the deployment with
   KISUM_ADMIN_CLIENT_SECRET set, so that the secret is argon2id-hashed), while one correct sign-in runs:
   prints the answers by status, the sign-in's status, and the server's resident memory before and at its
   peak (VmRSS of PID, sampled every 20 ms).
2. 1,500 connections that send half a request line and stop: prints how long a normal request took while
   they were open, and how many of them the server had closed after 45 s.

Loopback only, bounded in count and time; it stops by itself.
"""

import base64
import json
import resource
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import urlparse


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def post(url, body, headers, timeout=30):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:  # noqa: BLE001 - a refused or reset connection is an answer too
        return type(e).__name__


def flood(auth, pid, user, password):
    statuses = Counter()
    lock = threading.Lock()
    peak = [rss_kib(pid)]
    before = peak[0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    def guess(i):
        basic = base64.b64encode(f"platform-admin:wrong-guess-{i}".encode()).decode()
        status = post(f"{auth}/oauth/token", b"grant_type=client_credentials",
                      {"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"})
        with lock:
            statuses[status] += 1

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=guess, args=(i,)) for i in range(300)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.2)
    sign_in = post(f"{auth}/v1/sessions", json.dumps({"user": user, "password": password}).encode(),
                   {"content-type": "application/json"})
    for t in threads:
        t.join()
    took = time.monotonic() - started
    done.set()
    sampler.join()
    print(f"300 wrong client secrets in {took:.1f} s: {dict(statuses)}; sign-in during the flood: {sign_in}")
    print(f"resident memory: {before / 1024:.0f} MiB before, {peak[0] / 1024:.0f} MiB at the peak "
          f"(+{(peak[0] - before) / 1024:.0f} MiB)")


def slow_clients(auth, count=1500, wait=45):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    url = urlparse(auth)
    sockets = []
    for _ in range(count):
        s = socket.create_connection((url.hostname, url.port), timeout=5)
        s.sendall(b"GET /health/live HT")
        s.setblocking(False)
        sockets.append(s)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{auth}/health/live", timeout=10) as response:
            answered = response.status
    except Exception as e:  # noqa: BLE001
        answered = type(e).__name__
    print(f"{count} slow connections open: a normal request answered {answered} in {time.monotonic() - started:.2f} s")
    deadline = time.monotonic() + wait
    closed = set()
    while time.monotonic() < deadline and len(closed) < count:
        for i, s in enumerate(sockets):
            if i in closed:
                continue
            try:
                if s.recv(1024) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.2)
    print(f"after {time.monotonic() - started:.0f} s the server had closed {len(closed)} of {count} slow connections "
          f"({100 * len(closed) / count:.0f} %)")
    for s in sockets:
        s.close()


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    auth, pid = sys.argv[1].rstrip("/"), int(sys.argv[2])
    user = sys.argv[3] if len(sys.argv) > 3 else "maya"
    password = sys.argv[4] if len(sys.argv) > 4 else "kisum-demo"
    if urlparse(auth).hostname not in ("127.0.0.1", "localhost", "::1"):
        print("loopback only")
        sys.exit(2)
    flood(auth, pid, user, password)
    slow_clients(auth)


if __name__ == "__main__":
    main()
