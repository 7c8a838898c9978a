"""Ownership trusts no node's clock (issue 14 point 8): two nodes share one PostgreSQL
database, one of them with a clock 10 s fast. Leases are judged on the database's clock,
so the fast node never sees the other's leases as run out: each partition keeps one
owner and the timers keep their leader, round after round, past the leases' lifetime."""

from __future__ import annotations

import time

import asyncpg
import pytest

from sluice.clock import SystemClock
from sluice.config import Settings
from sluice.engine import timers
from sluice.engine.node import Node
from sluice.engine.partitions import PART
from tests import pg
from tests.harness import wait_for

pytestmark = pytest.mark.xdist_group("timing")

SKEW_S = 10.0
TTL_S = 1.0  # partition and timers leases: a few lifetimes pass in a few seconds


class FastClock(SystemClock):
    """A node's clock running SKEW_S ahead of everyone else's."""

    def now(self) -> float:
        return time.time() + SKEW_S


async def lease_holders(dsn: str, prefix: str) -> dict[str, str]:
    """Who holds which unexpired lease, read from the database as an auditor would."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, holder FROM leases WHERE left(name, length($1)) = $1 "
            "AND until >= extract(epoch FROM clock_timestamp())",
            prefix,
        )
    finally:
        await conn.close()
    return {r["name"]: r["holder"] for r in rows}


async def test_a_node_with_a_fast_clock_takes_no_lease_from_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(timers, "LEADER_TTL_S", TTL_S)
    monkeypatch.setattr(timers, "LEADER_RENEW_S", TTL_S / 4)
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        common = {"database": dsn, "partition_ttl_s": TTL_S, "partitions": 8,
                  "partition_k": 2, "dedicated_partitions": 2}  # fmt: skip
        a = Node(Settings.from_env({}, node_id="node-a", **common))
        b = Node(Settings.from_env({}, node_id="node-b", **common), clock=FastClock())
        await a.start()  # first: it leads the timers
        await wait_for(lambda: a.timers.leader)
        await b.start()
        try:
            total = a.partitions.total
            everything = {f"{PART}{p}" for p in range(total)}

            async def split() -> dict[str, str] | None:
                """The partitions' owners once both nodes hold their share, else None."""
                for node in (a, b):
                    await node.partitions.balance()
                held = await lease_holders(dsn, PART)
                return held if set(held) == everything and len(set(held.values())) == 2 else None

            owners = await wait_for(split, timeout=20, interval=0.05)
            # Both nodes agree with the database, and no partition has two owners.
            assert a.partitions.owned.isdisjoint(b.partitions.owned)
            assert len(a.partitions.owned) + len(b.partitions.owned) == total

            rounds = 0
            deadline = time.time() + 4 * TTL_S  # past several lifetimes of every lease

            async def a_round() -> bool:
                nonlocal rounds
                for node in (a, b):
                    await node.partitions.balance()
                    await node.timers.lead_once()
                rounds += 1
                assert await lease_holders(dsn, PART) == owners
                for node in (a, b):
                    mine = {f"{PART}{p}" for p in node.partitions.owned}
                    assert mine == {n for n, holder in owners.items() if holder == node.node_id}
                assert (a.timers.leader, b.timers.leader) == (True, False)
                assert await lease_holders(dsn, timers.LEADER_LEASE) == {"timers": "node-a"}
                return time.time() > deadline

            await wait_for(a_round, timeout=30, interval=0.1)
            assert rounds >= 10
        finally:
            await b.stop()
            await a.stop()
