"""Pause and resume by selector: `/v1/pauses`."""

from __future__ import annotations

import msgspec

from ..contract import Pause, PauseBody, PauseList, ReleasedCount, Selector
from ..model import PauseRow
from .route import Call, Route

_selector_decoder = msgspec.json.Decoder(Selector)


def pause_view(row: PauseRow, held: int | None = None) -> Pause:
    return Pause(row.id, _selector_decoder.decode(row.selector), row.created_at, held)


async def create_pause(call: Call) -> Pause:
    body: PauseBody = call.body
    selector = body.selector.selector()
    row, held = await call.node.pauses.pause(call.tenant, selector)
    await call.node.audit.record(call.caller.actor, call.tenant, "pause.create",
                                 selector=selector, count=held, detail=row.id)  # fmt: skip
    return pause_view(row, held)


async def list_pauses(call: Call) -> PauseList:
    rows = await call.node.pauses.list_all(call.tenant)
    return PauseList([pause_view(r) for r in rows])


async def delete_pause(call: Call) -> ReleasedCount:
    pause_id = call.path["pause_id"]
    released = await call.node.pauses.resume(call.tenant, pause_id)
    await call.node.audit.record(call.caller.actor, call.tenant, "pause.delete",
                                 count=released, detail=pause_id)  # fmt: skip
    return ReleasedCount(released)


PAUSE_ROUTES = [
    Route("POST", "/v1/pauses", "createPause",
          "Pause the waiting tasks a selector (function, tags, priority) matches, and new ones",
          create_pause, {201: Pause}, body=PauseBody, tags=("pauses",)),
    Route("GET", "/v1/pauses", "listPauses", "The tenant's pauses", list_pauses,
          {200: PauseList}, tags=("pauses",)),
    Route("DELETE", "/v1/pauses/{pause_id}", "deletePause",
          "Lift a pause (resume): its held tasks go back in their fair order", delete_pause,
          {200: ReleasedCount}, tags=("pauses",)),
]  # fmt: skip
