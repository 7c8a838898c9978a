"""Tenant quotas (DESIGN §6 "Quotas"): most waiting tasks, largest payload.

The waiting count is read from the store at most once a second per tenant and node,
and counted up by this node's own submits in between, so a quota costs no query on the
hot path. Across several nodes the check is approximate: each node may admit up to a
second's worth of its own submits past the limit before its next read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from ..errors import InvalidRequest, PayloadTooLarge, QuotaExceeded
from ..model import NewTask, TenantQuota

if TYPE_CHECKING:
    from .node import Node

REFRESH_S = 1.0
_decoder = msgspec.json.Decoder(TenantQuota)
_encoder = msgspec.json.Encoder()


class Quotas:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._quotas: dict[str, TenantQuota | None] = {}
        self._queued: dict[str, tuple[int, float]] = {}  # (count, monotonic time read)

    async def get(self, tenant_id: str) -> TenantQuota | None:
        if tenant_id not in self._quotas:
            raw = await self._node.store.get_quota(tenant_id)
            self._quotas[tenant_id] = None if raw is None else _decoder.decode(raw)
        return self._quotas[tenant_id]

    async def set(self, tenant_id: str, quota: TenantQuota) -> TenantQuota:
        for name in ("max_queued", "max_payload_bytes"):
            value = getattr(quota, name)
            if value is not None and not 1 <= value <= 1_000_000_000:
                raise InvalidRequest(f"{name} is between 1 and 1,000,000,000", field=name)
        await self._node.store.put_quota(tenant_id, _encoder.encode(quota))
        self.forget(tenant_id)
        self._node.bus.publish("quotas", tenant_id)
        return quota

    def forget(self, tenant_id: str) -> None:
        self._quotas.pop(tenant_id, None)
        self._queued.pop(tenant_id, None)

    async def admit(self, tenant_id: str, tasks: list[NewTask], prefix: str) -> None:
        """Refuse a submit that a quota does not allow: 413 for a payload, 429 (with
        Retry-After) for the waiting count."""
        quota = await self.get(tenant_id)
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
        if time.monotonic() - read_at > REFRESH_S:
            count, read_at = await self._node.store.count_queued(tenant_id), time.monotonic()
        if count + len(tasks) > quota.max_queued:
            self._queued[tenant_id] = (count, read_at)
            raise QuotaExceeded(
                f"the tenant has {count:,} waiting tasks and a quota of {quota.max_queued:,}; "
                "submit again when some have run",
                field="tasks", retry_after_s=1,
            )  # fmt: skip
        self._queued[tenant_id] = (count + len(tasks), read_at)
