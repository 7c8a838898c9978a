"""Pause and resume by selector: `/v1/pauses`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post

from ..model import PauseRow
from ..selector import PauseBody, Selector
from .routes import _body, _decode, _json, caller_of, decoder, node_of, tenant_of
from .schemas import PauseList, PauseView, ReleasedCount

_body_decoder = decoder(PauseBody)
_selector_decoder = msgspec.json.Decoder(Selector)


def pause_view(row: PauseRow, held: int | None = None) -> PauseView:
    return PauseView(row.id, _selector_decoder.decode(row.selector), row.created_at, held)


@post("/v1/pauses", status_code=201, summary="Pause the waiting tasks a selector matches",
      tags=["pauses"])  # fmt: skip
async def create_pause(request: Request[Any, Any, Any]) -> Response[PauseView]:
    tenant_id, actor = await caller_of(request)
    body = _decode(_body_decoder, await _body(request, 64 * 1024))
    selector = body.selector.selector()
    node = node_of(request.app.state)
    row, held = await node.pauses.pause(tenant_id, selector)
    await node.audit.record(actor, tenant_id, "pause.create", selector=selector, count=held,
                            detail=row.id)  # fmt: skip
    return _json(pause_view(row, held), status=201)  # type: ignore[return-value]


@get("/v1/pauses", summary="The tenant's pauses", tags=["pauses"])
async def list_pauses(request: Request[Any, Any, Any]) -> Response[PauseList]:
    tenant_id = await tenant_of(request)
    rows = await node_of(request.app.state).pauses.list_all(tenant_id)
    return _json(PauseList([pause_view(r) for r in rows]))  # type: ignore[return-value]


@delete("/v1/pauses/{pause_id:str}", status_code=200,
        summary="Lift a pause (resume): its held tasks go back in their fair order",
        tags=["pauses"])  # fmt: skip
async def delete_pause(request: Request[Any, Any, Any]) -> Response[ReleasedCount]:
    tenant_id, actor = await caller_of(request)
    node, pause_id = node_of(request.app.state), request.path_params["pause_id"]
    released = await node.pauses.resume(tenant_id, pause_id)
    await node.audit.record(actor, tenant_id, "pause.delete", count=released, detail=pause_id)
    return _json(ReleasedCount(released))  # type: ignore[return-value]


PAUSE_ROUTES = [create_pause, list_pauses, delete_pause]
