"""Result notifications as the API shows them: a task's deliveries (webhooks and
destinations, from the outbox) and the tenant's webhook receivers."""

from __future__ import annotations

import msgspec


class Try(msgspec.Struct, frozen=True, omit_defaults=True):
    """One try of a delivery: when, the receiver's HTTP status (None: no answer, and
    `error` says why) and the start of its answer, and how long it took."""

    at: float
    status: int | None = None
    duration_s: float = 0.0
    answer: str | None = None
    error: str | None = None


class Delivery(msgspec.Struct, frozen=True):
    """One event of a task for one receiver, and what became of it so far."""

    id: str
    """The `webhook-id`: the same on every try, the receiver's key to deduplicate."""
    event: str  # succeeded, failed, dead, cancelled, expired
    url: str  # the webhook's URL, or "function:NAME" / "topic:NAME" for a destination
    attempt: int
    state: str  # pending, delivered, failed (for good), dropped (no such receiver now)
    tries: int
    created_at: float
    next_at: float | None
    """When it is tried next (None: settled)."""
    answered_at: float | None
    status: int | None
    """The receiver's last HTTP status (None: no answer; a destination's: 201 or 200)."""
    answer: str | None
    """The start of the last answer's body, or why there was none."""
    next_task: str | None = None
    """A destination's task: the next step of the chain."""
    log: list[Try] = []
    """Every try, oldest first (the last 20 of them)."""


class DeliveryList(msgspec.Struct, frozen=True):
    notifications: list[Delivery]


class WebhookReceiver(msgspec.Struct, frozen=True):
    """A webhook URL of the tenant's functions, and whether it is disabled."""

    id: str  # for POST /v1/webhooks/{id}/enable
    url: str
    functions: list[str]
    enabled: bool
    disabled_at: float | None = None
    reason: str | None = None
    retrying: int = 0
    """Its deliveries pending after a failed try (being retried, or held while disabled)."""


class WebhookReceiverList(msgspec.Struct, frozen=True):
    webhooks: list[WebhookReceiver]


class SigningSecret(msgspec.Struct, frozen=True, omit_defaults=True):
    """The tenant's signing secret of per-task webhooks (`webhooks` given at submit).
    `secret` is shown once, in the answer of the POST that made it; `keys` is how many
    sign each delivery (2 after a rotation: the new and the one before)."""

    keys: int
    rotated_at: float | None = None
    secret: str | None = None
