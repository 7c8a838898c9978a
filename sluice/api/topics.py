"""Topic routes, the event triggers: `/v1/subscriptions` and `POST /v1/events/{topic}`."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..contract import (
    EventBody,
    EventOutcome,
    EventTask,
    Subscription,
    SubscriptionList,
    SubscriptionSpec,
)
from ..errors import InvalidRequest, Unprocessable
from ..model import SubscriptionRow
from ..rawjson import MAX_DEPTH, within_depth
from .route import Call, Route, decode, decoder

_spec_decoder = decoder(SubscriptionSpec)
_event_decoder = decoder(dict[str, Any])


def subscription_view(row: SubscriptionRow) -> Subscription:
    spec = _spec_decoder.decode(row.config)
    return Subscription(
        row.name, spec.topic, spec.function, spec.filter, spec.priority, spec.tags, row.created_at
    )


async def put_subscription(call: Call) -> Subscription:
    name = call.path["name"]
    row = await call.node.topics.subscribe(call.tenant, name, call.body)
    await call.node.audit.record(call.caller.actor, call.tenant, "subscription.put", detail=name)
    return subscription_view(row)


async def list_subscriptions(call: Call) -> SubscriptionList:
    rows = await call.node.topics.list_all(call.tenant)
    return SubscriptionList([subscription_view(r) for r in rows])


async def delete_subscription(call: Call) -> None:
    name = call.path["name"]
    await call.node.topics.unsubscribe(call.tenant, name)
    await call.node.audit.record(call.caller.actor, call.tenant, "subscription.delete",
                                 detail=name)  # fmt: skip


async def post_event(call: Call) -> EventOutcome:
    raw: bytes = call.body
    event = decode(_event_decoder, raw)
    if not isinstance(event, dict):
        raise InvalidRequest("an event is a JSON object")
    # Each task gets the event as its one argument: a level deeper than it came.
    if not within_depth(raw, MAX_DEPTH - 1):
        raise Unprocessable(f"the event nests deeper than {MAX_DEPTH - 1} levels", code="too_deep")
    event_id, made = await call.node.topics.publish(call.tenant, call.path["topic"], event)
    return EventOutcome(event_id, [EventTask(name, r.id, r.created, r.state) for name, r in made])


def _event_bytes(settings: Settings) -> int:
    return settings.max_payload_bytes


TOPIC_ROUTES = [
    Route("PUT", "/v1/subscriptions/{name}", "putSubscription",
          "Subscribe a function to a topic (with an optional filter on the event's fields)",
          put_subscription, {200: Subscription}, body=SubscriptionSpec, tags=("events",)),
    Route("GET", "/v1/subscriptions", "listSubscriptions", "The tenant's event subscriptions",
          list_subscriptions, {200: SubscriptionList}, tags=("events",)),
    Route("DELETE", "/v1/subscriptions/{name}", "deleteSubscription", "Delete a subscription",
          delete_subscription, {204: None}, tags=("events",)),
    Route("POST", "/v1/events/{topic}", "postEvent",
          "Post an event (a JSON object; its `id` deduplicates): one task per matching "
          "subscription", post_event, {200: EventOutcome}, body=EventBody, raw_body=True,
          body_bytes=_event_bytes, tags=("events",)),
]  # fmt: skip
