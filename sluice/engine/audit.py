"""The audit log (DESIGN §9): who did which administrative or bulk action, to which
tenant, on which selector, to how many tasks, when.

Entries are written after the action, once its count is known (a bulk verb commits a
chunk at a time, so the entry cannot share one transaction with it); a failed write is
logged and does not undo the action. Entries are kept `audit_retention_s`, longer than
tasks, and purged by the timers leader.
"""

from __future__ import annotations

import logging

import msgspec

from ..contract import AuditEntry
from ..model import new_task_id
from .runtime import Runtime

log = logging.getLogger("sluice.audit")

ADMIN = "admin"
PURGE_BATCH = 1000
_encoder = msgspec.json.Encoder()


def key_actor(key_id: str) -> str:
    """A tenant key as an actor: its id (the first 16 hex digits of its hash), never
    the key."""
    return f"key:{key_id}"


class AuditLog:
    def __init__(self, rt: Runtime) -> None:
        self._store = rt.store
        self._clock = rt.clock
        self._retention_s = rt.settings.audit_retention_s

    async def record(
        self,
        actor: str,
        tenant_id: str | None,
        action: str,
        *,
        selector: object = None,
        count: int | None = None,
        detail: str | None = None,
    ) -> None:
        at = self._clock.now()
        entry = AuditEntry(
            id=new_task_id(at), tenant_id=tenant_id, actor=actor, action=action, at=at,
            selector=None if selector is None else _encoder.encode(selector).decode(),
            count=count, detail=detail,
        )  # fmt: skip
        try:
            await self._store.record_audit([entry])
        except Exception:
            log.exception("could not record %s by %s in the audit log", action, actor)

    async def list(
        self, tenant_id: str | None, before: str, limit: int, action: str | None = None
    ) -> list[AuditEntry]:
        return await self._store.list_audit(tenant_id, before, limit, action)

    async def purge_once(self) -> int:
        """Retention: drop entries older than `audit_retention_s`, a batch per commit."""
        before = self._clock.now() - self._retention_s
        total = 0
        while True:
            purged = await self._store.purge_audit(before, PURGE_BATCH)
            total += purged
            if purged < PURGE_BATCH:
                return total
