"""Admission: turn validated submit requests into `NewTask` rows with defaults resolved."""

from __future__ import annotations

import msgspec

from ..config import Settings
from ..errors import InvalidRequest, NotFound, PayloadTooLarge
from ..model import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    READY,
    SCHEDULED,
    FunctionConfig,
    NewTask,
    RetryPolicy,
    new_task_id,
)


class TaskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One task as a producer describes it (the body of `POST /v1/tasks`)."""

    function: str
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")
    delay: float | None = None
    run_at: float | None = None
    priority: int | None = None
    key: str | None = None
    ttl: float | None = None
    expires_at: float | None = None
    tags: list[str] | None = None
    max_attempts: int | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None


_tags_encoder = msgspec.json.Encoder()
_retry_encoder = msgspec.json.Encoder()


def check_retry_policy(policy: RetryPolicy, field: str) -> None:
    if not 1 <= policy.max_attempts <= 1000:
        raise InvalidRequest(
            "max_attempts must be between 1 and 1000", field=f"{field}.max_attempts"
        )
    if min(policy.base_s, policy.min_backoff_s, policy.cap_s) < 0:
        raise InvalidRequest("backoff times cannot be negative", field=field)
    if policy.max_retry_duration_s <= 0 or policy.max_throttles < 0:
        raise InvalidRequest(
            "max_retry_duration_s must be positive and max_throttles not negative", field=field
        )


def build_task(
    spec: TaskSpec,
    fn: FunctionConfig | None,
    settings: Settings,
    now: float,
    field: str = "",
    task_id: str | None = None,
) -> NewTask:
    """Validate one spec against its function and limits; a ClientError names the field."""
    if fn is None:
        raise NotFound(
            f"function {spec.function!r} is not registered for this tenant",
            code="unknown_function",
            field=f"{field}function",
        )
    # A Raw value starts at its first non-blank byte, so one byte tells its JSON type.
    args, kwargs = bytes(spec.args), bytes(spec.kwargs)
    if args[:1] != b"[":
        raise InvalidRequest("args must be a JSON array", field=f"{field}args")
    if kwargs[:1] != b"{":
        raise InvalidRequest("kwargs must be a JSON object", field=f"{field}kwargs")
    if len(args) + len(kwargs) > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"arguments take {len(args) + len(kwargs)} bytes; the limit is "
            f"{settings.max_payload_bytes}",
            field=f"{field}args",
        )
    if spec.delay is not None and spec.run_at is not None:
        raise InvalidRequest("give delay or run_at, not both", field=f"{field}delay")
    run_at = now
    if spec.delay is not None:
        if not 0 <= spec.delay <= settings.max_delay_s:
            raise InvalidRequest(
                f"delay must be between 0 and {settings.max_delay_s:g} seconds",
                field=f"{field}delay",
            )
        run_at = now + spec.delay
    elif spec.run_at is not None:
        if spec.run_at > now + settings.max_delay_s:
            raise InvalidRequest("run_at is too far in the future", field=f"{field}run_at")
        run_at = max(now, spec.run_at)  # a time in the past means "now"
    priority = fn.priority if spec.priority is None else spec.priority
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidRequest(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}",
            field=f"{field}priority",
        )
    if spec.ttl is not None and spec.expires_at is not None:
        raise InvalidRequest("give ttl or expires_at, not both", field=f"{field}ttl")
    ttl = spec.ttl if spec.ttl is not None else fn.ttl_s
    expires_at = spec.expires_at
    if ttl is not None and expires_at is None:
        if ttl <= 0:
            raise InvalidRequest("ttl must be positive", field=f"{field}ttl")
        expires_at = run_at + ttl
    if expires_at is not None and expires_at <= run_at:
        raise InvalidRequest("the task would expire before it may run", field=f"{field}expires_at")
    tags = spec.tags if spec.tags is not None else (fn.tags or None)
    if tags is not None:
        if len(tags) > settings.max_tags:
            raise InvalidRequest(f"at most {settings.max_tags} tags", field=f"{field}tags")
        if any(not 0 < len(t) <= settings.max_tag_length for t in tags):
            raise InvalidRequest(
                f"each tag takes 1 to {settings.max_tag_length} characters", field=f"{field}tags"
            )
    if spec.key is not None and not 0 < len(spec.key) <= 256:
        raise InvalidRequest("key takes 1 to 256 characters", field=f"{field}key")
    retry = None
    if spec.retry is not None:
        check_retry_policy(spec.retry, f"{field}retry")
        retry = _retry_encoder.encode(spec.retry)
    default_attempts = (spec.retry or fn.retry).max_attempts
    max_attempts = default_attempts if spec.max_attempts is None else spec.max_attempts
    if not 1 <= max_attempts <= 1000:
        raise InvalidRequest(
            "max_attempts must be between 1 and 1000", field=f"{field}max_attempts"
        )
    timeout = fn.timeout_s if spec.timeout is None else spec.timeout
    if timeout is not None and timeout <= 0:
        raise InvalidRequest("timeout must be positive", field=f"{field}timeout")
    payload = b"".join((b'{"args":', args, b',"kwargs":', kwargs, b"}"))
    return NewTask(
        id=task_id or new_task_id(),
        function=spec.function,
        payload=payload,
        state=READY if run_at <= now else SCHEDULED,
        priority=priority,
        stag=0.0,  # the fair start tag is given by engine/fairness.py
        run_at=run_at,
        max_attempts=max_attempts,
        timeout_s=timeout,
        key=spec.key,
        tags=_tags_encoder.encode(tags).decode() if tags else None,
        expires_at=expires_at,
        retry=retry,
    )


def check_limits(config: FunctionConfig, field: str = "") -> None:
    """A function's rate and concurrency limits make sense."""
    if config.rate is not None and not 0 < config.rate <= 1_000_000:
        raise InvalidRequest("rate is above 0 and at most 1,000,000 a second", field=f"{field}rate")
    if not 1 <= config.burst <= 1_000_000:
        raise InvalidRequest("burst is between 1 and 1,000,000", field=f"{field}burst")
    if config.max_concurrency is not None and not 1 <= config.max_concurrency <= 1_000_000:
        raise InvalidRequest(
            "max_concurrency is between 1 and 1,000,000", field=f"{field}max_concurrency"
        )
