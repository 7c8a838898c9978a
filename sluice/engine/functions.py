"""Function configs as a node holds them (a part of `Node`): registered by workers'
hello or `PUT /v1/functions/{name}`, cached per tenant, reloaded when another node
announces a change; a tenant may also use the functions shared pools serve."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..model import SHARED, FunctionConfig, RetryPolicy

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store
    from ..store.bus import Bus
    from .targets import Targets

log = logging.getLogger("sluice.node")


class FunctionConfigs:
    store: Store
    bus: Bus
    clock: Clock
    targets: Targets
    _functions: dict[str, dict[str, FunctionConfig]]
    _reloads: set[asyncio.Task[None]]

    async def register_functions(self, tenant_id: str, configs: list[FunctionConfig]) -> None:
        await self.store.upsert_functions(tenant_id, configs, self.clock.now())
        cache = await self.functions(tenant_id)  # the tenant's other functions stay known
        for config in configs:
            cache[config.name] = config
        self.targets.sync(tenant_id, cache)
        self.bus.publish("functions", tenant_id)

    async def functions(self, tenant_id: str) -> dict[str, FunctionConfig]:
        cache = self._functions.get(tenant_id)
        if cache is None:
            stored = {f.name: f for f in await self.store.list_functions(tenant_id)}
            # A registration may have landed while the list was read: keep it.
            cache = self._functions.setdefault(tenant_id, {})
            for name, config in stored.items():
                cache.setdefault(name, config)
        return cache

    async def usable(self, tenant_id: str) -> dict[str, FunctionConfig]:
        """The functions a tenant may submit to: its own, and those shared worker pools
        serve (its own config wins where both have a name)."""
        own = await self.functions(tenant_id)
        shared = await self.functions(SHARED) if tenant_id != SHARED else {}
        return {**shared, **own} if shared else own

    def cached_config(self, tenant_id: str, function: str) -> FunctionConfig | None:
        """A function's config as this node last read it, without a query."""
        return self._functions.get(tenant_id, {}).get(function)

    def retry_policy(self, tenant_id: str, function: str) -> RetryPolicy:
        config = self._functions.get(tenant_id, {}).get(function)
        if config is None:
            config = self._functions.get(SHARED, {}).get(function)
        return config.retry if config is not None else RetryPolicy()

    def _reload_functions(self, tenant_id: str) -> None:
        """Replace a tenant's cached function configs with the store's, in the background;
        the old ones serve (the dispatcher reads them for limits) until the new arrive."""

        async def reload() -> None:
            try:
                stored = await self.store.list_functions(tenant_id)
            except Exception:
                log.exception("reloading the functions of %s failed", tenant_id)
                self._functions.pop(tenant_id, None)  # the next submit reads them again
                return
            self._functions[tenant_id] = {f.name: f for f in stored}
            self.targets.sync(tenant_id, self._functions[tenant_id])

        task = asyncio.create_task(reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
