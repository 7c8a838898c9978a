"""Notification routes: a task's deliveries (webhooks and destinations, with their
answers), the tenant's webhook receivers, and re-enabling a disabled one."""

from __future__ import annotations

import msgspec

from ..contract import (
    Delivery,
    DeliveryList,
    SigningSecret,
    Try,
    WebhookReceiver,
    WebhookReceiverList,
)
from ..engine.notifier import next_task
from ..engine.receivers import receiver_id
from ..model import Notification, WebhookEndpoint
from .route import Call, Route


def _delivery(n: Notification) -> Delivery:
    return Delivery(
        n.id, n.event, n.url, n.attempt, n.state, n.tries, n.created_at, n.next_at,
        n.answered_at, n.status, n.answer, next_task(n),
        _tries.decode(n.log) if n.log else [],
    )  # fmt: skip


_tries = msgspec.json.Decoder(list[Try])


async def list_deliveries(call: Call) -> DeliveryList:
    node, tenant_id, task_id = call.node, call.tenant, call.path["task_id"]
    await node.tasks.get(tenant_id, task_id)  # 404 task_not_found, whoever's it is
    found = await node.notifier.deliveries(tenant_id, task_id)
    return DeliveryList([_delivery(n) for n in found])


def _receiver(
    url: str, functions: list[str], state: WebhookEndpoint, retrying: int = 0
) -> WebhookReceiver:
    enabled = state.disabled_at is None
    return WebhookReceiver(
        receiver_id(url), url, functions, enabled, state.disabled_at, state.reason, retrying
    )


async def list_webhooks(call: Call) -> WebhookReceiverList:
    found = await call.node.notifier.receivers(call.tenant)
    return WebhookReceiverList([_receiver(*row) for row in found])


async def enable_webhook(call: Call) -> WebhookReceiver:
    node, tenant_id = call.node, call.tenant
    state = await node.notifier.enable(tenant_id, call.path["webhook_id"], call.caller.actor)
    rows = await node.notifier.receivers(tenant_id)
    functions = next((f for url, f, _, _ in rows if url == state.url), [])
    return _receiver(state.url, functions, state)


async def get_secret(call: Call) -> SigningSecret:
    found = await call.node.notifier.signing(call.tenant)
    return SigningSecret(0) if found is None else SigningSecret(len(found[0]), found[1])


async def rotate_secret(call: Call) -> SigningSecret:
    secrets, at = await call.node.notifier.rotate(call.tenant, call.caller.actor)
    return SigningSecret(len(secrets), at, secrets[0])


NOTIFICATION_ROUTES = [
    Route("GET", "/v1/tasks/{task_id}/notifications", "listNotifications",
          "A task's notifications (webhooks, destinations) and their answers, in order",
          list_deliveries, {200: DeliveryList}, tags=("notifications",)),
    Route("GET", "/v1/webhooks", "listWebhooks",
          "The tenant's webhook receivers and whether each is disabled", list_webhooks,
          {200: WebhookReceiverList}, tags=("notifications",)),
    Route("POST", "/v1/webhooks/{webhook_id}/enable", "enableWebhook",
          "Enable a disabled receiver: what waited for it is delivered", enable_webhook,
          {200: WebhookReceiver}, tags=("notifications",)),
    Route("GET", "/v1/webhooks/secret", "getWebhookSecret",
          "Whether the tenant has a signing secret for per-task webhooks (never the secret)",
          get_secret, {200: SigningSecret}, tags=("notifications",)),
    Route("POST", "/v1/webhooks/secret", "rotateWebhookSecret",
          "Make a new signing secret for per-task webhooks, shown this once; the one before "
          "it keeps signing until the next rotation", rotate_secret, {201: SigningSecret},
          tags=("notifications",)),
]  # fmt: skip
