"""Operations: health and the audit log."""

from __future__ import annotations

import msgspec

from ..model import (
    new_task_id,
)
from .fields import Action, Cursor, PageSize, TenantId


class Health(msgspec.Struct, frozen=True):
    status: str
    workers: int


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One administrative or bulk action in the audit log: who did what, to which
    tenant, on which selector, to how many, when."""

    id: str = msgspec.field(default_factory=new_task_id)
    """Time-ordered, like a task id: the listing's order and its page cursor."""
    tenant_id: str | None
    """The tenant acted on; None for a cluster-wide action (creating a tenant), which
    only the admin's listing shows."""
    actor: str
    """Who: "admin", or "key:<key id>" for the tenant key used."""
    action: str
    """What, as noun.verb: "tasks.cancel", "dead.retry", "pause.create", "key.revoke"..."""
    at: float
    """When (epoch seconds)."""
    selector: str | None = None
    """The selector or the ids acted on (JSON), if any."""
    count: int | None = None
    """How many tasks (or items) the action touched, if it counts any."""
    detail: str | None = None


class AuditPage(msgspec.Struct, frozen=True):
    entries: list[AuditEntry]
    next: str | None  # pass as `before` for the next page; null on the last one


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/audit`: one tenant's (the admin key only), one kind of action, before a
    cursor."""

    tenant_id: TenantId | None = None
    action: Action | None = None
    before: Cursor | None = None
    limit: PageSize = 100
