"""Admission: a producer's task spec becomes a `NewTask`, or a ClientError naming the field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from sluice.api.route import decode, decoder
from sluice.config import Settings
from sluice.contract import FunctionConfig, RetryPolicy, TaskSpec
from sluice.engine.admission import build_task
from sluice.errors import ClientError, InvalidRequest, NotFound, PayloadTooLarge, Unprocessable
from sluice.model import READY, SCHEDULED

NOW = 1_700_000_000.0
SETTINGS = Settings()
SEND = FunctionConfig(name="send")


def spec(**fields: Any) -> TaskSpec:
    """A spec decoded from JSON, as the API receives it: what the type states (ranges,
    lengths) is refused here, the rest by build_task; both name the field."""
    body = {"function": "send", **fields}
    return decode(decoder(TaskSpec), msgspec.json.encode(body))


# (case, spec fields, error class, field)
BAD = [
    ("args not an array", {"args": {"a": 1}}, InvalidRequest, "args"),
    ("args a string", {"args": "x"}, InvalidRequest, "args"),
    ("kwargs not an object", {"kwargs": [1]}, InvalidRequest, "kwargs"),
    ("oversized payload", {"args": ["x" * SETTINGS.max_payload_bytes]}, PayloadTooLarge, "args"),
    ("delay and run_at both", {"delay": 5, "run_at": NOW + 5}, InvalidRequest, "delay"),
    ("negative delay", {"delay": -1}, InvalidRequest, "delay"),
    ("delay past the limit", {"delay": SETTINGS.max_delay_s + 1}, InvalidRequest, "delay"),
    ("run_at past the limit", {"run_at": NOW + SETTINGS.max_delay_s + 1}, Unprocessable, "run_at"),
    ("priority 10", {"priority": 10}, InvalidRequest, "priority"),
    ("priority -1", {"priority": -1}, InvalidRequest, "priority"),
    ("too many tags", {"tags": ["t"] * (SETTINGS.max_tags + 1)}, InvalidRequest, "tags"),
    ("empty tag", {"tags": ["ok", ""]}, InvalidRequest, "tags[1]"),
    ("tag too long", {"tags": ["t" * (SETTINGS.max_tag_length + 1)]}, InvalidRequest, "tags"),
    ("ttl zero", {"ttl": 0}, InvalidRequest, "ttl"),
    ("ttl negative", {"ttl": -5}, InvalidRequest, "ttl"),
    ("ttl and expires_at both", {"ttl": 5, "expires_at": NOW + 50}, InvalidRequest, "ttl"),
    ("expires before run", {"expires_at": NOW - 1}, Unprocessable, "expires_at"),
    ("expires as it runs", {"expires_at": NOW}, Unprocessable, "expires_at"),
    (
        "expires before the delay ends",
        {"delay": 10, "expires_at": NOW + 5},
        Unprocessable,
        "expires_at",
    ),
    ("empty key", {"key": ""}, InvalidRequest, "key"),
    ("key too long", {"key": "k" * 257}, InvalidRequest, "key"),
    ("max_attempts 0", {"max_attempts": 0}, InvalidRequest, "max_attempts"),
    ("max_attempts 1001", {"max_attempts": 1001}, InvalidRequest, "max_attempts"),
    ("timeout zero", {"timeout": 0}, InvalidRequest, "timeout"),
]


@pytest.mark.parametrize(
    ("fields", "error", "field"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_spec_raises_a_client_error_naming_the_field(
    fields: dict[str, Any], error: type[ClientError], field: str
) -> None:
    with pytest.raises(error) as raised:
        build_task(spec(**fields), SEND, SETTINGS, NOW)

    assert type(raised.value) is error
    assert raised.value.field == field


def test_unknown_function_is_not_found() -> None:
    with pytest.raises(NotFound) as raised:
        build_task(spec(function="nope"), None, SETTINGS, NOW)

    assert (raised.value.code, raised.value.field, raised.value.status) == (
        "unknown_function",
        "function",
        404,
    )


def test_payload_limit_comes_from_settings() -> None:
    small = Settings(max_payload_bytes=16)

    build_task(spec(args=[1]), SEND, small, NOW)
    with pytest.raises(PayloadTooLarge):
        build_task(spec(args=["x" * 16]), SEND, small, NOW)


def test_error_field_carries_the_batch_prefix() -> None:
    with pytest.raises(InvalidRequest) as raised:
        build_task(spec(tags=["t"] * 20), SEND, SETTINGS, NOW, field="tasks[3].")

    assert raised.value.field == "tasks[3].tags"


def test_plain_spec_is_ready_now() -> None:
    task = build_task(spec(args=[1, 2], kwargs={"a": 1}), SEND, SETTINGS, NOW)

    assert (task.function, task.state, task.run_at, task.stag) == ("send", READY, NOW, 0.0)
    assert task.payload == b'{"args":[1,2],"kwargs":{"a":1}}'
    assert msgspec.json.decode(task.payload) == {"args": [1, 2], "kwargs": {"a": 1}}
    assert (task.key, task.tags, task.expires_at) == (None, None, None)


def test_each_task_gets_its_own_id() -> None:
    ids = {build_task(spec(), SEND, SETTINGS, NOW).id for _ in range(50)}

    assert len(ids) == 50


def test_delay_schedules_the_task_at_now_plus_delay() -> None:
    task = build_task(spec(delay=30), SEND, SETTINGS, NOW)

    assert (task.state, task.run_at, task.stag) == (SCHEDULED, NOW + 30, 0.0)


def test_zero_delay_is_ready_now() -> None:
    task = build_task(spec(delay=0), SEND, SETTINGS, NOW)

    assert (task.state, task.run_at) == (READY, NOW)


def test_run_at_in_the_past_is_ready_now() -> None:
    task = build_task(spec(run_at=NOW - 3600), SEND, SETTINGS, NOW)

    assert (task.state, task.run_at, task.stag) == (READY, NOW, 0.0)


def test_run_at_in_the_future_is_scheduled() -> None:
    task = build_task(spec(run_at=NOW + 90), SEND, SETTINGS, NOW)

    assert (task.state, task.run_at) == (SCHEDULED, NOW + 90)


def test_function_defaults_apply_when_the_spec_is_silent() -> None:
    fn = FunctionConfig(
        name="send", priority=7, retry=RetryPolicy(max_attempts=4), timeout_s=12.5, ttl_s=60.0
    )

    task = build_task(spec(delay=10), fn, SETTINGS, NOW)

    assert (task.priority, task.max_attempts, task.timeout_s) == (7, 4, 12.5)
    assert task.expires_at == NOW + 10 + 60.0  # the ttl counts from when it may run


def test_spec_overrides_function_defaults() -> None:
    fn = FunctionConfig(
        name="send", priority=7, retry=RetryPolicy(max_attempts=4), timeout_s=12.5, ttl_s=60.0
    )

    task = build_task(
        spec(priority=0, max_attempts=9, timeout=3, expires_at=NOW + 500), fn, SETTINGS, NOW
    )

    assert (task.priority, task.max_attempts, task.timeout_s) == (0, 9, 3.0)
    assert task.expires_at == NOW + 500


def test_default_function_config_gives_library_defaults() -> None:
    task = build_task(spec(), SEND, SETTINGS, NOW)

    assert (task.priority, task.max_attempts, task.timeout_s) == (5, 25, None)


@pytest.mark.parametrize("priority", [0, 9])
def test_priority_bounds_are_accepted(priority: int) -> None:
    assert build_task(spec(priority=priority), SEND, SETTINGS, NOW).priority == priority


def test_key_and_tags_are_kept() -> None:
    task = build_task(spec(key="order-1", tags=["a", "b"]), SEND, SETTINGS, NOW)

    assert task.key == "order-1"
    assert task.tags == '["a","b"]'


def test_a_function_s_tags_are_the_default_tags_of_its_tasks() -> None:
    fn = FunctionConfig(name="bill", tags=["billing"])
    plain = build_task(TaskSpec(function="bill"), fn, Settings(), NOW)
    own = build_task(TaskSpec(function="bill", tags=["vip"]), fn, Settings(), NOW)
    assert (plain.tags, own.tags) == ('["billing"]', '["vip"]')


def test_every_field_reaches_its_own_place_in_the_task() -> None:
    # build_task makes NewTask positionally: each value must land in its field.
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    webhook = {"url": "https://hooks.example.com/x", "events": ["succeeded"]}
    task = build_task(
        spec(args=[1], kwargs={"k": 2}, delay=5, priority=3, key="k1", ttl=60, tags=["t"],
             max_attempts=4, retry={"max_attempts": 6}, timeout=7, traceparent=parent,
             tracestate="a=b", webhooks=[webhook]),
        SEND, SETTINGS, NOW, task_id="the-id",
    )  # fmt: skip

    assert (task.id, task.function) == ("the-id", "send")
    assert task.payload == b'{"args":[1],"kwargs":{"k":2}}'
    assert (task.state, task.priority, task.stag, task.run_at) == (SCHEDULED, 3, 0.0, NOW + 5)
    assert (task.max_attempts, task.timeout_s, task.key, task.tags) == (4, 7, "k1", '["t"]')
    assert (task.expires_at, task.partition) == (NOW + 65, 0)
    assert task.retry is not None and msgspec.json.decode(task.retry)["max_attempts"] == 6
    assert (task.trace_parent, task.trace_state) == (parent, "a=b")
    assert task.webhooks is not None and "hooks.example.com" in task.webhooks
