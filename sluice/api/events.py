"""Event triggers: `/v1/subscriptions` and `POST /v1/events/{topic}`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post, put

from ..errors import InvalidRequest, Unprocessable
from ..model import SubscriptionRow, SubscriptionSpec
from ..rawjson import MAX_DEPTH, within_depth
from .routes import _body, _decode, _json, caller_of, decoder, node_of, tenant_of
from .schemas import EventTask, EventView, SubscriptionList, SubscriptionView

_spec_decoder = decoder(SubscriptionSpec)
_event_decoder = decoder(dict[str, Any])


def subscription_view(row: SubscriptionRow) -> SubscriptionView:
    spec = _spec_decoder.decode(row.config)
    return SubscriptionView(
        row.name, spec.topic, spec.function, spec.filter, spec.priority, spec.tags, row.created_at
    )


@put("/v1/subscriptions/{name:str}", summary="Subscribe a function to a topic",
     tags=["events"])  # fmt: skip
async def put_subscription(request: Request[Any, Any, Any]) -> Response[SubscriptionView]:
    tenant_id, actor = await caller_of(request)
    spec = _decode(_spec_decoder, await _body(request, 64 * 1024))
    node, name = node_of(request.app.state), request.path_params["name"]
    row = await node.events.subscribe(tenant_id, name, spec)
    await node.audit.record(actor, tenant_id, "subscription.put", detail=name)
    return _json(subscription_view(row))  # type: ignore[return-value]


@get("/v1/subscriptions", summary="The tenant's event subscriptions", tags=["events"])
async def list_subscriptions(request: Request[Any, Any, Any]) -> Response[SubscriptionList]:
    tenant_id = await tenant_of(request)
    rows = await node_of(request.app.state).events.list_all(tenant_id)
    return _json(SubscriptionList([subscription_view(r) for r in rows]))  # type: ignore[return-value]


@delete("/v1/subscriptions/{name:str}", status_code=204, summary="Delete a subscription",
        tags=["events"])  # fmt: skip
async def delete_subscription(request: Request[Any, Any, Any]) -> None:
    tenant_id, actor = await caller_of(request)
    node, name = node_of(request.app.state), request.path_params["name"]
    await node.events.unsubscribe(tenant_id, name)
    await node.audit.record(actor, tenant_id, "subscription.delete", detail=name)


@post("/v1/events/{topic:str}", status_code=200,
      summary="Post an event: one task per matching subscription, deduplicated by its id",
      tags=["events"])  # fmt: skip
async def post_event(request: Request[Any, Any, Any]) -> Response[EventView]:
    tenant_id = await tenant_of(request)
    node = node_of(request.app.state)
    body = await _body(request, node.settings.max_payload_bytes)
    event = _decode(_event_decoder, body)
    if not isinstance(event, dict):
        raise InvalidRequest("an event is a JSON object")
    # Each task gets the event as its one argument: a level deeper than it came.
    if not within_depth(body, MAX_DEPTH - 1):
        raise Unprocessable(f"the event nests deeper than {MAX_DEPTH - 1} levels", code="too_deep")
    event_id, made = await node.events.publish(tenant_id, request.path_params["topic"], event)
    tasks = [EventTask(name, r.id, r.created, r.state) for name, r in made]
    return _json(EventView(event_id, tasks))  # type: ignore[return-value]


EVENT_ROUTES = [put_subscription, list_subscriptions, delete_subscription, post_event]
