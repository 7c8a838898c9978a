"""Topics alone: an event fanned out to the subscribed functions whose filter it passes,
one keyed task each, through a real Intake (engine/topics.py)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sluice.contract import SubscriptionSpec
from sluice.engine.backpressure import Backpressure
from sluice.engine.delays import Delays
from sluice.engine.intake import Intake
from sluice.engine.pauses import Pauses
from sluice.engine.runtime import Runtime
from sluice.engine.topics import Topics, passes
from sluice.errors import InvalidRequest, NotFound
from sluice.policy.backpressure import Backpressure as Policy
from tests.engine.conftest import lower, make_function, make_tenant


def topics_of(rt: Runtime) -> Topics:
    below = lower(rt)
    policy = Policy(rt.clock.now(), random.Random(1))
    intake = Intake(
        rt, functions=below.functions, quotas=below.quotas,
        pauses=Pauses(rt, below.fairness, below.queues), fairness=below.fairness,
        backpressure=Backpressure(rt, below.quotas, below.partitions, policy),
        queues=below.queues, delays=Delays(rt, below.fairness, below.queues),
    )  # fmt: skip
    intake.accepting = True
    return Topics(rt, below.functions, intake)


async def test_an_event_makes_one_task_per_matching_subscription_and_once_per_id(
    rt: Runtime,
) -> None:
    topics = topics_of(rt)
    tenant = await make_tenant(rt)
    for name in ("email", "audit", "refund"):
        await make_function(rt, tenant, name)
    await topics.subscribe(tenant, "welcome", SubscriptionSpec(topic="signup", function="email"))
    await topics.subscribe(
        tenant,
        "log",
        SubscriptionSpec(topic="signup", function="audit", filter={"plan": ["pro", "team"]}),
    )
    await topics.subscribe(tenant, "other", SubscriptionSpec(topic="refund", function="refund"))

    event_id, made = await topics.publish(tenant, "signup", {"id": "e1", "plan": "free"})
    assert (event_id, [name for name, _ in made]) == ("e1", ["welcome"])
    _, made = await topics.publish(tenant, "signup", {"id": "e2", "plan": "pro"})
    assert sorted(name for name, _ in made) == ["log", "welcome"]

    _, again = await topics.publish(tenant, "signup", {"id": "e2", "plan": "pro"})  # a retry
    assert {r.id for _, r in again} == {r.id for _, r in made}
    assert not any(r.created for _, r in again)
    stored = [await rt.store.get_task(tenant, r.id) for _, r in made]
    (task,) = [t for t in stored if t is not None and t.function == "audit"]
    assert task.key == "sluice:event:log:e2" and b'"plan":"pro"' in task.payload


async def test_an_event_without_an_id_gets_one_and_is_not_deduplicated(rt: Runtime) -> None:
    topics = topics_of(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant, "email")
    await topics.subscribe(tenant, "welcome", SubscriptionSpec(topic="signup", function="email"))

    first, made = await topics.publish(tenant, "signup", {})
    second, again = await topics.publish(tenant, "signup", {})

    assert first != second and made[0][1].id != again[0][1].id


async def test_subscribing_needs_a_known_function_and_names_that_fit(rt: Runtime) -> None:
    topics = topics_of(rt)
    tenant = await make_tenant(rt)

    with pytest.raises(NotFound):
        await topics.subscribe(tenant, "w", SubscriptionSpec(topic="signup", function="email"))
    with pytest.raises(InvalidRequest):
        await topics.subscribe(tenant, "has space", SubscriptionSpec(topic="t", function="x"))
    with pytest.raises(InvalidRequest):
        await topics.publish(tenant, "signup", {"id": 7})
    with pytest.raises(NotFound):
        await topics.unsubscribe(tenant, "w")


@pytest.mark.parametrize(
    ("filter", "event", "expected"),
    [
        ({}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {}, False),
        ({"a": [1, 2]}, {"a": 2}, True),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
    ],
)
def test_a_filter_passes_events_whose_fields_equal_its_own(
    filter: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert passes(filter, event) is expected
