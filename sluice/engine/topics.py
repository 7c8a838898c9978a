"""Topics, the event triggers (DESIGN §4 "Triggers"): `POST /v1/events/{topic}` fans an
event out to every function subscribed to the topic whose filter it passes, one task
each. (An "event" here is what a producer posts; a task's own history is engine-side
"history".)

Each task carries the event as its one argument and the key
`sluice:event:{subscription}:{event id}`, so posting the same event again (a producer's
retry) returns the tasks made the first time instead of making more. An event without
an `id` field gets a fresh one and is not deduplicated.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from ..contract import TEXT, SubscriptionSpec, TaskSpec
from ..errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from ..model import NAME, SubmitResult, SubscriptionRow, new_task_id
from .admission import build_task
from .functions import Functions
from .intake import Intake
from .runtime import Runtime

MAX_EVENT_ID = 100
# One event makes a task per subscription of its topic, in one commit: a bound on both,
# as on a batch (an event of 100 KB to 2,000 subscriptions wrote 200 MB in one commit).
MAX_TOPIC_SUBSCRIPTIONS = 100
_TEXT = re.compile(TEXT)  # the task key "sluice:event:{name}:{id}" stays within 256 characters
_spec_decoder = msgspec.json.Decoder(SubscriptionSpec)
_encoder = msgspec.json.Encoder()


def passes(filter: dict[str, Any], event: dict[str, Any]) -> bool:
    """Every filter field equals the event's (a list: the event's value is one of them)."""
    for field, wanted in filter.items():
        if field not in event:
            return False
        value = event[field]
        if isinstance(wanted, list) and not isinstance(value, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


class Topics:
    def __init__(self, rt: Runtime, functions: Functions, intake: Intake) -> None:
        self._rt = rt
        self._functions = functions
        self._intake = intake

    async def subscribe(self, tenant_id: str, name: str, spec: SubscriptionSpec) -> SubscriptionRow:
        rt = self._rt
        if not NAME.match(name):
            raise InvalidRequest(f"subscription names match {NAME.pattern}", field="name")
        if not NAME.match(spec.topic):
            raise InvalidRequest(f"topics match {NAME.pattern}", field="topic")
        functions = await self._functions.usable(tenant_id)
        if spec.function not in functions:
            raise NotFound(
                f"no function {spec.function!r}; a worker registers it when it connects",
                code="unknown_function", field="function",
            )  # fmt: skip
        others = [r for r in await rt.store.list_subscriptions(tenant_id, spec.topic)
                  if r.name != name]  # fmt: skip
        if len(others) >= MAX_TOPIC_SUBSCRIPTIONS:
            raise Conflict(
                f"topic {spec.topic!r} has {len(others)} subscriptions, the most a topic may "
                "have (each event makes a task for every one): unsubscribe one first",
                code="too_many_subscriptions", field="topic",
            )  # fmt: skip
        now = rt.clock.now()
        # The tasks it will make must be valid submits: same checks, same errors.
        probe = TaskSpec(function=spec.function, priority=spec.priority, tags=spec.tags,
                         key=f"sluice:event:{name}:x")  # fmt: skip
        build_task(probe, functions[spec.function], rt.settings, now, "", new_task_id(now))
        await rt.store.put_subscription(tenant_id, name, spec.topic, _encoder.encode(spec), now)
        (row,) = [r for r in await rt.store.list_subscriptions(tenant_id) if r.name == name]
        return row

    async def list_all(self, tenant_id: str) -> list[SubscriptionRow]:
        return await self._rt.store.list_subscriptions(tenant_id)

    async def unsubscribe(self, tenant_id: str, name: str) -> None:
        if not await self._rt.store.delete_subscription(tenant_id, name):
            raise NotFound(f"no subscription {name!r}", code="subscription_not_found",
                           field="name")  # fmt: skip

    async def publish(
        self, tenant_id: str, topic: str, event: dict[str, Any]
    ) -> tuple[str, list[tuple[str, SubmitResult]]]:
        """Fan an event out; returns its id and (subscription, task) for each match."""
        if not NAME.match(topic):
            raise InvalidRequest(f"topics match {NAME.pattern}", field="topic")
        event_id = event.get("id")
        if event_id is None:
            event_id = uuid.uuid4().hex
            event = {**event, "id": event_id}
        elif (
            not isinstance(event_id, str)
            or not 0 < len(event_id) <= MAX_EVENT_ID
            or not _TEXT.match(event_id)
        ):
            raise InvalidRequest(
                f"an event's id is a string of 1 to {MAX_EVENT_ID} characters", field="id"
            )
        matched = []
        for row in await self._rt.store.list_subscriptions(tenant_id, topic):
            spec = _spec_decoder.decode(row.config)
            if passes(spec.filter, event):
                matched.append((row.name, spec))
        if not matched:
            return event_id, []
        args = msgspec.Raw(_encoder.encode([event]))
        settings = self._rt.settings
        if len(matched) > settings.max_batch or len(args) * len(matched) > settings.max_batch_bytes:
            raise PayloadTooLarge(
                f"the event would make {len(matched)} tasks of {len(args):,} bytes each, "
                f"more than a batch may hold ({settings.max_batch} tasks, "
                f"{settings.max_batch_bytes:,} bytes)", code="fan_out_too_large",
            )  # fmt: skip
        specs = [
            TaskSpec(
                function=spec.function, args=args, priority=spec.priority, tags=spec.tags,
                key=f"sluice:event:{name}:{event_id}",
            )
            for name, spec in matched
        ]  # fmt: skip
        results = await self._intake.submit(tenant_id, specs)
        return event_id, [(name, r) for (name, _), r in zip(matched, results, strict=True)]
