"""Result notifications as the API shows them: a task's deliveries (webhooks and
destinations, from the outbox) and the tenant's webhook receivers."""

from __future__ import annotations

import msgspec


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


class WebhookReceiverList(msgspec.Struct, frozen=True):
    webhooks: list[WebhookReceiver]
