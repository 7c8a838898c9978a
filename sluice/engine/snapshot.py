"""The backlog snapshot: tasks waiting by state, per tenant and function, cluster-wide,
without counting tasks per scrape or per request (OBSERVABILITY.md §2.5).

The timers leader takes it every SNAPSHOT_S: one grouped count through the states'
partial indexes (ready with the oldest ready time, scheduled, paused, running, dead),
plus the ready tasks that a limit holds back now (engine/blockers.py), and writes it to
the store's small `backlog` table, replacing the last. Every node reads that table on
the same beat and serves its gauges from memory, so any node answers a scrape with the
cluster's figures and no scrape touches the tasks. The leader also trims the rollup's
minutes past ROLLUP_KEEP_S.
"""

from __future__ import annotations

from ..store import BacklogRow
from .blockers import Blockers
from .runtime import Runtime

SNAPSHOT_S = 10.0  # a grouped count of every waiting task through the partial indexes
ROLLUP_KEEP_S = 24 * 3600.0  # minute rows of the rollup are kept a day


class Snapshot:
    def __init__(self, rt: Runtime, blockers: Blockers) -> None:
        self._rt = rt
        self._blockers = blockers
        self.rows: list[BacklogRow] = []
        self.taken_at: float | None = None

    async def take_once(self) -> int:
        """Count, write the snapshot and keep it (the timers leader's job)."""
        rt = self._rt
        now = rt.clock.now()
        rows = await rt.store.count_backlog()
        rows += await self._blockers.held(rows)
        await rt.store.put_backlog(rows, now)
        self.rows, self.taken_at = rows, now
        await rt.store.purge_rollup(now - ROLLUP_KEEP_S)
        return len(rows)

    async def read_once(self) -> None:
        """Read the leader's last snapshot (every node; the leader's own is already kept)."""
        self.rows, self.taken_at = await self._rt.store.list_backlog(None)
