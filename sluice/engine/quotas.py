"""Tenant quotas (DESIGN §6 "Quotas"): most waiting tasks, largest payload, weight,
rate and concurrency limits, reserved shared slots.

Every tenant's quotas are held in memory (only tenants an admin gave quotas have any),
read at start and re-read for one tenant when a node announces a change, so the
dispatcher can see them without a query. The waiting count is read from the store at
most once a second per tenant and node, and counted up by this node's own submits in
between, so a quota costs no query on the hot path. Across several nodes the check is
approximate: each node may admit up to a second's worth of its own submits past the
limit before its next read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from ..contract import TenantQuota
from ..errors import PayloadTooLarge, QuotaExceeded, Unprocessable
from ..model import MIN_RATE, NewTask
from .runtime import Runtime

log = logging.getLogger("sluice.quotas")
REFRESH_S = 1.0
_decoder = msgspec.json.Decoder(TenantQuota)
_encoder = msgspec.json.Encoder()


class Quotas:
    def __init__(self, rt: Runtime, changed: Callable[[], None]) -> None:
        """`changed()`: quotas moved, the dispatcher looks again."""
        self._rt = rt
        self._changed = changed
        self._quotas: dict[str, TenantQuota] = {}
        self._queued: dict[str, tuple[int, float]] = {}  # (count, monotonic time read)
        self._reloads: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        read = ((t, _read(t, raw)) for t, raw in await self._rt.store.list_quotas())
        self._quotas = {t: quota for t, quota in read if quota is not None}

    async def get(self, tenant_id: str) -> TenantQuota | None:
        return self._quotas.get(tenant_id)

    def cached(self, tenant_id: str) -> TenantQuota | None:
        return self._quotas.get(tenant_id)

    def all(self) -> dict[str, TenantQuota]:
        return self._quotas

    def limited(self) -> dict[str, TenantQuota]:
        """Tenants whose tasks are claimed under limits or a reserve."""
        return {t: q for t, q in self._quotas.items() if q.limited or q.min_slots}

    async def set(self, tenant_id: str, quota: TenantQuota) -> TenantQuota:
        """Store a tenant's quotas (their type holds them to their ranges)."""
        if (quota.min_slots is not None and quota.max_concurrency is not None
                and quota.min_slots > quota.max_concurrency):  # fmt: skip
            raise Unprocessable(
                f"min_slots ({quota.min_slots}) reserves more slots than max_concurrency "
                f"({quota.max_concurrency}) lets the tenant use",
                code="min_slots_above_max_concurrency", field="min_slots",
            )  # fmt: skip
        await self._rt.store.put_quota(tenant_id, _encoder.encode(quota))
        self._quotas[tenant_id] = quota
        self._queued.pop(tenant_id, None)
        self._rt.bus.publish("quotas", tenant_id)
        self._changed()
        return quota

    def forget(self, tenant_id: str) -> None:
        """Another node changed a tenant's quotas: read them again, in the background."""
        self._queued.pop(tenant_id, None)

        async def reload() -> None:
            try:
                raw = await self._rt.store.get_quota(tenant_id)
            except Exception:
                log.exception("reading the quotas of %s failed", tenant_id)
                return
            quota = None if raw is None else _read(tenant_id, raw)
            if quota is None:
                self._quotas.pop(tenant_id, None)
            else:
                self._quotas[tenant_id] = quota
            self._changed()

        task = asyncio.create_task(reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def resync(self) -> None:
        """Hints may have been missed: read every tenant's quotas again."""

        async def reload() -> None:
            try:
                await self.start()
            except Exception:
                log.exception("reading the quotas failed")

        task = asyncio.create_task(reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def admit(self, tenant_id: str, tasks: list[NewTask], prefix: str) -> None:
        """Refuse a submit that a quota does not allow: 413 for a payload, 429 (with
        Retry-After) for the waiting count."""
        quota = self._quotas.get(tenant_id)
        if quota is None:
            return
        if quota.max_payload_bytes is not None:
            for i, task in enumerate(tasks):
                if len(task.payload) > quota.max_payload_bytes:
                    field = f"tasks[{i}].args" if prefix else "args"
                    raise PayloadTooLarge(
                        f"the payload takes {len(task.payload)} bytes; this tenant's quota "
                        f"is {quota.max_payload_bytes}", field=field,
                    )  # fmt: skip
        if quota.max_queued is None:
            return
        count, read_at = self._queued.get(tenant_id, (0, float("-inf")))
        clock = self._rt.clock
        if clock.monotonic() - read_at > REFRESH_S:
            count, read_at = await self._rt.store.count_queued(tenant_id), clock.monotonic()
        if count + len(tasks) > quota.max_queued:
            self._queued[tenant_id] = (count, read_at)
            raise QuotaExceeded(
                f"the tenant has {count:,} waiting tasks and a quota of {quota.max_queued:,}; "
                "submit again when some have run",
                field="tasks", retry_after_s=1,
            )  # fmt: skip
        self._queued[tenant_id] = (count + len(tasks), read_at)


def _read(tenant_id: str, raw: bytes) -> TenantQuota | None:
    """A stored quota under today's rules. A rate stored before the contract refused one
    too slow to compute with counts as the slowest allowed (dropping the quota would drop
    its other limits too); one that breaks a rule otherwise is left out with an error in
    the log, so it cannot keep the node from starting. The admin's next PUT mends it."""
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        error = exc
    try:
        fields = msgspec.json.decode(raw, type=dict[str, Any])
        rate = fields.get("rate")
        if isinstance(rate, (int, float)) and 0 < rate < MIN_RATE:
            return msgspec.convert({**fields, "rate": MIN_RATE}, TenantQuota)
    except msgspec.ValidationError as exc:
        error = exc
    log.error("the quotas of %s are left out: they break a rule (%s)", tenant_id, error)
    return None
