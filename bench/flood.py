"""A flooding producer, in its own process, for the noisy-neighbour benchmark:

    python -m bench.flood URL KEY FUNCTION BATCH INTERVAL_S

Batches of BATCH tasks every INTERVAL_S until killed; prints one status code per line.
"""

from __future__ import annotations

import sys
import time

import httpx


def main() -> None:
    url, key, function = sys.argv[1], sys.argv[2], sys.argv[3]
    batch, interval = int(sys.argv[4]), float(sys.argv[5])
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        while True:
            tasks = [{"function": function, "args": [10.0]} for _ in range(batch)]
            answer = http.post("/v1/tasks/batch", json={"tasks": tasks})
            print(answer.status_code, flush=True)
            time.sleep(interval)


if __name__ == "__main__":
    main()
