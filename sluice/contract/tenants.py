"""Tenants, their API keys and quotas (admin)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from .fields import Count, Rate

TENANT_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class TenantCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=TENANT_NAME)]


class Tenant(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class NewTenant(msgspec.Struct, frozen=True):
    """A tenant just created, with its first API key: the only time the key is shown."""

    id: str
    name: str
    api_key: str


class TenantList(msgspec.Struct, frozen=True):
    tenants: list[Tenant]


class ApiKey(msgspec.Struct, frozen=True):
    """A key as it can be shown again: never the key itself, which is stored hashed."""

    id: str  # the first 16 hex digits of its SHA-256
    prefix: str
    created_at: float
    revoked_at: float | None


class NewKey(msgspec.Struct, frozen=True):
    """A key just created: the only time `api_key` is shown; only its hash is stored."""

    id: str
    api_key: str


class KeyList(msgspec.Struct, frozen=True):
    keys: list[ApiKey]


QuotaCount = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


class TenantQuota(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tenant's quotas (admin: `PUT /v1/tenants/{id}/quota`); None: no limit."""

    max_queued: QuotaCount | None = None
    """Most waiting tasks (ready, scheduled, paused); past it a submit gets 429."""
    max_payload_bytes: QuotaCount | None = None
    """Largest payload, below the server's own limit."""
    weight: Annotated[float, msgspec.Meta(ge=0.001, le=1000)] = 1.0
    """The tenant's share of shared capacity against others' (fair queueing): at 3 it
    gets three tasks started to a weight-1 tenant's one, when both have work waiting."""
    rate: Rate | None = None
    """Most starts a second of all the tenant's tasks, cluster-wide (GCRA)."""
    burst: Count = 1
    """Starts allowed at once on top of `rate`."""
    max_concurrency: Count | None = None
    """Most of the tenant's tasks running at once, cluster-wide: its maximum share of
    worker slots."""
    min_slots: QuotaCount | None = None
    """Shared pool slots reserved for the tenant: while it has work waiting and fewer
    running, its tasks are claimed before anyone's fair turn (its minimum share)."""

    @property
    def limited(self) -> bool:
        return self.rate is not None or self.max_concurrency is not None
