"""Topics: subscriptions, and the events published to them."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from .fields import TEXT, FunctionName, Name, Priority, Tags

MAX_FILTER_FIELDS: Final = 16


class SubscriptionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function's subscription to a topic (the body of `PUT /v1/subscriptions/{name}`).

    `filter` keeps the events whose top-level fields equal the given values (a list
    value: any of them)."""

    topic: Name
    function: FunctionName
    filter: Annotated[dict[str, Any], msgspec.Meta(max_length=MAX_FILTER_FIELDS)] = {}
    priority: Priority | None = None
    tags: Tags | None = None


class Subscription(msgspec.Struct, frozen=True):
    name: str
    topic: str
    function: str
    filter: dict[str, Any]
    priority: int | None
    tags: list[str] | None
    created_at: float


class SubscriptionList(msgspec.Struct, frozen=True):
    subscriptions: list[Subscription]


class EventBody(msgspec.Struct):
    """An event as documented: any JSON object; `id`, when given, deduplicates it."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=TEXT)] | None = None


class EventTask(msgspec.Struct, frozen=True):
    subscription: str
    id: str
    created: bool  # False: this event was posted before; the task is the first one's
    state: str


class EventOutcome(msgspec.Struct, frozen=True):
    """What posting an event did: one task per matching subscription."""

    id: str  # the event's id (given, or made up when the event had none)
    tasks: list[EventTask]
