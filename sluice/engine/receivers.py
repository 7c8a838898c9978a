"""Who is told of a function's task ends: its webhooks and destinations, by (tenant,
function), kept in step with the function configs on this node (every tenant's, read at
start, then each change), so the end of a task looks its receivers up in one dictionary
lookup and a function without any costs nothing more (docs/notifications.md)."""

from __future__ import annotations

from ..contract import FunctionConfig
from ..model import FUNCTION_DESTINATION, TOPIC_DESTINATION, Hook
from .functions import Functions
from .runtime import Runtime


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


class Receivers:
    def __init__(self, rt: Runtime, functions: Functions) -> None:
        self._rt = rt
        self._functions = functions
        self.hooks: dict[tuple[str, str], tuple[Hook, ...]] = {}
        functions.on_change(self.sync)

    def sync(self, tenant_id: str, configs: dict[str, FunctionConfig]) -> None:
        """A tenant's configs changed (or were read): its receivers are these now."""
        for key in [k for k in self.hooks if k[0] == tenant_id]:
            del self.hooks[key]
        for name, config in configs.items():
            if config.webhooks or config.destinations:
                self.hooks[(tenant_id, name)] = hooks_of(config)

    async def start(self) -> None:
        """Every tenant's receivers, before any end is written: an expiry or a reaped
        lease may end any tenant's task."""
        for tenant in await self._rt.store.list_tenants():
            await self._functions.of(tenant.id)
