"""Who is told of a function's task ends: its webhooks and destinations, by (tenant,
function), kept in step with the function configs on this node (every tenant's, read at
start, then each change), so the end of a task looks its receivers up in one dictionary
lookup and a function without any costs nothing more (docs/notifications.md). And the
rules a receiver is set under: a webhook's address and secrets, a destination's form."""

from __future__ import annotations

import hashlib

import msgspec

from ..contract import Destination, FunctionConfig, Webhook
from ..errors import Forbidden, InvalidRequest, Unprocessable
from ..model import FUNCTION_DESTINATION, SHARED, TOPIC_DESTINATION, Hook
from . import egress
from .egress import EgressPolicy, EgressRefused
from .functions import Functions
from .runtime import Runtime
from .signatures import is_valid, new_secret


def hooks_of(config: FunctionConfig) -> tuple[Hook, ...]:
    """A function's receivers: each webhook's URL, each destination as "function:NAME"
    or "topic:NAME", with the events each asked for."""
    hooks = [Hook(w.url, tuple(w.events)) for w in config.webhooks]
    for d in config.destinations:
        where = (
            FUNCTION_DESTINATION + d.function if d.function else TOPIC_DESTINATION + (d.topic or "")
        )
        hooks.append(Hook(where, tuple(d.events)))
    return tuple(hooks)


class HookTable(dict[tuple[str, str], tuple[Hook, ...]]):
    """The receivers of each (tenant, function) that has any; a tenant's task of a
    function that shared pools serve, and that the tenant has no config of its own for,
    gets the shared function's receivers (`Functions.usable`: its own config wins)."""

    def __init__(self) -> None:
        super().__init__()
        self.own: dict[str, frozenset[str]] = {}  # each tenant's own functions

    def get(  # type: ignore[override]
        self, key: tuple[str, str], default: tuple[Hook, ...] | None = None
    ) -> tuple[Hook, ...] | None:
        found = super().get(key)
        if found is None and key[0] != SHARED and key[1] not in self.own.get(key[0], ()):
            found = super().get((SHARED, key[1]))
        return default if found is None else found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self.get(key) is not None  # type: ignore[arg-type]


class Receivers:
    def __init__(self, rt: Runtime, functions: Functions) -> None:
        self._rt = rt
        self._functions = functions
        self.hooks = HookTable()
        functions.on_change(self.sync)

    def sync(self, tenant_id: str, configs: dict[str, FunctionConfig]) -> None:
        """A tenant's configs changed (or were read): its receivers are these now."""
        for key in [k for k in self.hooks if k[0] == tenant_id]:
            del self.hooks[key]
        if tenant_id != SHARED:
            self.hooks.own[tenant_id] = frozenset(configs)
        for name, config in configs.items():
            if config.webhooks or config.destinations:
                self.hooks[(tenant_id, name)] = hooks_of(config)

    async def start(self) -> None:
        """Every tenant's receivers, and the shared pools' functions', before any end is
        written: an expiry or a reaped lease may end any tenant's task."""
        await self._functions.of(SHARED)
        for tenant in await self._rt.store.list_tenants():
            await self._functions.of(tenant.id)


def receiver_id(url: str) -> str:
    """A webhook receiver's id in the API (its URL would not fit a path)."""
    return hashlib.blake2b(url.encode(), digest_size=8).hexdigest()


def check_webhook(webhook: Webhook, old: Webhook | None, policy: EgressPolicy) -> Webhook:
    """A webhook to store: its URL one the server may call, with a secret (kept from the
    stored webhook of the same URL when none is given: reads never show it)."""
    try:
        egress.check_url(webhook.url, policy)
    except EgressRefused as exc:
        raise Forbidden(str(exc), code="webhook_not_allowed", field="webhooks.url") from None
    except ValueError as exc:
        raise Unprocessable(f"url {exc}", code="invalid_url", field="webhooks.url") from None
    if not all(is_valid(s) for s in webhook.secrets):
        raise InvalidRequest(
            "secrets are whsec_ and 24 to 64 bytes in base64", field="webhooks.secrets"
        )
    if webhook.secrets:
        return webhook
    kept = old.secrets if old is not None and old.url == webhook.url else []
    return msgspec.structs.replace(webhook, secrets=kept or [new_secret()])


def check_destination(destination: Destination) -> Destination:
    if (destination.function is None) == (destination.topic is None):
        raise Unprocessable(
            "a destination names a function or a topic, not both",
            code="invalid_destination", field="destinations",
        )  # fmt: skip
    return destination
