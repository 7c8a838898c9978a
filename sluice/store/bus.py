"""The cluster bus: short hints from one server node to the others.

A node acts on its own changes directly (wakes its dispatcher, tells its workers); the
bus carries the same hints to the other nodes of a PostgreSQL cluster (LISTEN/NOTIFY,
postgres/bus.py). Hints may be lost or late, never wrong: every receiver falls back to
the store (the dispatcher's poll, the long-poll's re-read). With SQLite there is one node
and the bus is `LocalBus`, which carries nothing.

Kinds: "ready" (tenant id): a tenant has new ready work; "cancel" (tenant|worker|ids):
tell a worker to stop tasks; "done" (task ids): tasks ended, wake long-polls;
"functions" (tenant id): a tenant's function config changed; "revoked" (key hash);
"ask" and "assigned": dispatch across nodes (engine/asks.py), sent without delay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Handler = Callable[[str, str], None]


class Bus(Protocol):
    local: bool
    """True when this node is the only one: it sees every end itself, so a waiter need
    not poll the store in case a hint from another node was lost."""

    async def start(self, handler: Handler) -> None:
        """Deliver other nodes' hints to `handler(kind, data)` until `stop()`."""
        ...

    async def stop(self) -> None: ...

    def publish(self, kind: str, data: str) -> None:
        """Send a hint to the other nodes; never blocks, coalesces repeats."""
        ...


class LocalBus:
    """One node: nobody else to tell."""

    local = True

    async def start(self, handler: Handler) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, kind: str, data: str) -> None:
        return None
