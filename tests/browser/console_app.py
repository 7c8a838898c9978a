"""The console tests' app: a task that fails until it is fixed, and two plain ones. It
runs in a real `sluice worker` process; `charge` fails while the file named by
SLUICE_TEST_BROKEN exists (the test "deploys a fix" by removing it)."""

from __future__ import annotations

import asyncio
import logging
import os

import sluice

app = sluice.App("shop")
log = logging.getLogger("shop.payments")


@app.task(retry=sluice.RetryPolicy(max_attempts=1))
def charge(order: int) -> dict[str, int]:  # a plain function: it runs in a worker thread
    log.info("charging order %d", order, extra={"order": order})
    print(f"card lookup for order {order}")
    if os.path.exists(os.environ.get("SLUICE_TEST_BROKEN", "")):
        raise ValueError(f"card declined for order {order}")
    return {"charged": order}


@app.task
async def ping(n: int) -> int:
    return n


@app.task
async def export(rows: int) -> int:
    await asyncio.sleep(0.01)
    return rows
