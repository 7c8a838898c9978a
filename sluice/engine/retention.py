"""Retention: ended tasks (with their attempts and history; their keys are free again)
are deleted `retention_s` after they ended, a batch per commit (the timers leader's
job). The audit log keeps its own, longer, retention (engine/audit.py)."""

from __future__ import annotations

from .runtime import Runtime

PURGE_BATCH = 1000


class Retention:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def purge_once(self) -> int:
        rt = self._rt
        before = rt.clock.now() - rt.settings.retention_s
        total = 0
        while True:
            purged = await rt.store.purge_tasks(before, PURGE_BATCH)
            total += purged
            if purged < PURGE_BATCH:
                return total
