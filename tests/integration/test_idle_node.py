"""An idle node's periodic work runs cleanly: every timer once, with nothing queued,
nothing running and no worker (a division by an idle drain rate once logged an error
every second here)."""

from __future__ import annotations

from pathlib import Path

import sluice
from tests.harness import running_server

app = sluice.App("idle")


@app.task
async def nothing() -> None:
    return None


async def test_every_timer_runs_on_an_idle_node(tmp_path: Path, backend: str) -> None:
    async with running_server(tmp_path, app, backend) as server:
        node = server.node
        for _ in range(2):  # the second backpressure tick closes an interval
            node.backpressure.policy.started -= node.settings.backpressure_interval_s
            await node.backpressure.tick()
            await node.fairness.sync()
            await node.delays.promote_once()
            await node.reaper.reap_once()
            await node.reaper.renew_once()
            await node.retention.purge_once()
            await node.schedules.tick()
            await node.snapshot.take_once()
            await node.snapshot.read_once()
            await node.meters.flush()
        assert node.backpressure.backlog == 0 and not node.backpressure.policy.overloaded
        assert node.backpressure.policy.refuse_all == 0.0
