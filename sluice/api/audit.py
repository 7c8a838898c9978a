"""The audit log: `GET /v1/audit` (engine/audit.py records it).

A tenant's key reads its own tenant's entries; the admin key reads everyone's (or one
tenant's, with `tenant_id`), the cluster-wide ones included.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response, get

from ..errors import InvalidRequest
from .routes import _json, _limit, bearer, node_of, tenant_of
from .schemas import AuditPage

AUDIT_PAGE = 100
MAX_AUDIT_PAGE = 1000
ACTION = re.compile(r"^[a-z]+\.[a-z]+$")
TENANT_ID = re.compile(r"^[0-9a-f]{32}$")


@get("/v1/audit", summary="Administrative and bulk actions, newest first", tags=["ops"])
async def list_audit(request: Request[Any, Any, Any]) -> Response[AuditPage]:
    node = node_of(request.app.state)
    query = request.query_params
    asked = query.get("tenant_id")
    if asked is not None and not TENANT_ID.match(asked):
        raise InvalidRequest(f"tenant ids match {TENANT_ID.pattern}", field="tenant_id")
    if node.is_admin(bearer(request.headers)):
        tenant_id = query.get("tenant_id") or None
    else:
        tenant_id = await tenant_of(request)  # a tenant sees its own, whatever it asks
    action = query.get("action")
    if action is not None and not ACTION.match(action):
        raise InvalidRequest(f"actions match {ACTION.pattern}", field="action")
    limit = _limit(request, AUDIT_PAGE, MAX_AUDIT_PAGE)
    entries = await node.audit.list(tenant_id, query.get("before", ""), limit, action)
    following = entries[-1].id if len(entries) == limit else None
    return _json(AuditPage(entries, following))  # type: ignore[return-value]


AUDIT_ROUTES = [list_audit]
