"""Regressions of dispatch across nodes and of AIMD pools (found in review): an ask that
times out must not hand back another node's HTTP-target calls, and an AIMD limit holds
across every worker of a pool and frees its room when tasks are handed back."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from sluice.config import Settings
from sluice.contract import FunctionConfig, HttpTarget, TaskSpec
from sluice.engine.node import Node
from sluice.engine.partitions import PART
from sluice.engine.registry import WorkerConn
from sluice.protocol import RunningTask
from sluice.store import open_store
from tests import pg
from tests.harness import free_port, wait_for

pytestmark = pytest.mark.xdist_group("timing")


async def test_a_timed_out_ask_never_hands_back_another_nodes_target_calls() -> None:
    calls: Counter[str] = Counter()
    running: Counter[str] = Counter()
    overlapping: set[str] = set()

    async def handle(request: web.Request) -> web.Response:
        task_id = request.headers["webhook-id"]
        calls[task_id] += 1
        running[task_id] += 1
        if running[task_id] > 1:
            overlapping.add(task_id)
        await asyncio.sleep(3)  # longer than an ask's time-out (2 s)
        running[task_id] -= 1
        return web.json_response(None)

    port = free_port()
    service = web.Application()
    service.router.add_post("/", handle)
    runner = web.AppRunner(service, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await pg.require_postgres()
    try:
        async with pg.fresh_database() as dsn:
            common = {"database": dsn, "partitions": 4, "partition_k": 4,
                      "dedicated_partitions": 0, "targets_allow_loopback": True}  # fmt: skip
            store = open_store(Settings.from_env({}, **common))
            await store.open()
            # A hung node holds a partition: asks to it time out.
            assert await store.acquire_lease(f"{PART}0", "ghost", 3600)
            await store.close()
            a = Node(Settings.from_env({}, node_id="node-a", **common))
            b = Node(Settings.from_env({}, node_id="node-b", **common))
            await a.start()
            await b.start()
            try:
                for node in (a, b, a):
                    await node.partitions.balance()
                tenant = await a.tenants.ensure("t")
                target = HttpTarget(url=f"http://127.0.0.1:{port}/")
                for node in (a, b):
                    await node.functions.register(tenant.id, [FunctionConfig("f", target=target)])
                await a.intake.submit(tenant.id, [TaskSpec("f") for _ in range(20)])
                # The ghost's partition keeps the rest; each call takes 3 s, past the
                # 2 s within which an ask must be answered.
                await wait_for(lambda: len(calls) >= 15, timeout=20)
                await wait_for(lambda: sum(running.values()) == 0, timeout=10)
            finally:
                await a.stop()
                await b.stop()
    finally:
        await runner.cleanup()
    assert calls and max(calls.values()) == 1, calls  # each task called once
    assert not overlapping


async def test_a_pool_limit_holds_across_workers_and_frees_handed_back_room(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'x.db'}")
    node = Node(settings)
    await node.start()
    try:
        tenant = await node.tenants.ensure("t")
        await node.functions.register(tenant.id, [FunctionConfig(name="f")])
        node.adaptive.start((tenant.id, "f"), initial=3)  # as its first throttle would

        async def send(_frame: bytes) -> None:
            return None

        conns = [WorkerConn(tenant.id, f"w{i}", 10, ("f",), send, node.clock.now())
                 for i in range(5)]  # fmt: skip
        await node.intake.submit(tenant.id, [TaskSpec("f") for _ in range(50)])
        for conn in conns:
            node.registry.add(conn)
        node.queues.wake()
        await wait_for(lambda: sum(len(c.inflight) for c in conns) >= 3)
        for _ in range(3):  # more rounds, every worker with free slots: none goes past L
            done = node.dispatcher.rounds
            node.queues.wake()
            await wait_for(lambda done=done: node.dispatcher.rounds > done)  # type: ignore[misc]
        assert sum(len(c.inflight) for c in conns) == 3
        # Handed back (a drain): the room comes back without an answer for those tasks.
        holder = next(c for c in conns if c.inflight)
        items = [RunningTask(task_id, task.attempt) for task_id, task in holder.inflight.items()
                 if task is not None]  # fmt: skip
        await node.gateway._on_release(holder, items)
        node.registry.remove(holder)
        others = [c for c in conns if c is not holder]
        await wait_for(lambda: sum(len(c.inflight) for c in others) == 3, timeout=5)
    finally:
        await node.stop()
