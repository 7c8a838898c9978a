"""Tenant A's flood, in its own process: batches of BATCH every INTERVAL_S until killed;
prints one status code per line."""

from __future__ import annotations

import sys
import time

import httpx

url, key, batch, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
    n = 0
    while True:
        tasks = [{"function": "work", "args": [f"a-{n}-{j}"]} for j in range(batch)]
        n += 1
        answer = http.post("/v1/tasks/batch", json={"tasks": tasks})
        line = str(answer.status_code)
        if answer.status_code == 429:
            error = answer.json()["error"]
            line += f" {error['code']} {error.get('scope')} {answer.headers.get('retry-after')}"
        print(line, flush=True)
        time.sleep(interval)
