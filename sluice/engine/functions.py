"""Function configs as a node holds them: registered by workers' hello or `PUT
/v1/functions/{name}`, cached per tenant, reloaded when another node announces a change
(the bus's "functions" hint); a tenant may also use the functions shared pools serve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..contract import FunctionConfig, RetryPolicy
from ..model import SHARED
from .runtime import Runtime

log = logging.getLogger("sluice.functions")

Changed = Callable[[str, dict[str, FunctionConfig]], None]


class Functions:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._watchers: list[Changed] = []
        self._cache: dict[str, dict[str, FunctionConfig]] = {}
        self._reloads: set[asyncio.Task[None]] = set()

    def on_change(self, watcher: Changed) -> None:
        """Call `watcher(tenant, configs)` whenever a tenant's configs change here (HTTP
        targets follow their functions' configs)."""
        self._watchers.append(watcher)

    def _changed(self, tenant_id: str, configs: dict[str, FunctionConfig]) -> None:
        for watcher in self._watchers:
            watcher(tenant_id, configs)

    async def register(self, tenant_id: str, configs: list[FunctionConfig]) -> None:
        rt = self._rt
        await rt.store.upsert_functions(tenant_id, configs, rt.clock.now())
        cache = await self.of(tenant_id)  # the tenant's other functions stay known
        for config in configs:
            cache[config.name] = config
        self._changed(tenant_id, cache)
        rt.bus.publish("functions", tenant_id)

    async def of(self, tenant_id: str) -> dict[str, FunctionConfig]:
        """A tenant's own functions, by name."""
        cache = self._cache.get(tenant_id)
        if cache is None:
            stored = {f.name: f for f in await self._rt.store.list_functions(tenant_id)}
            # A registration may have landed while the list was read: keep it.
            cache = self._cache.setdefault(tenant_id, {})
            for name, config in stored.items():
                cache.setdefault(name, config)
        return cache

    async def usable(self, tenant_id: str) -> dict[str, FunctionConfig]:
        """The functions a tenant may submit to: its own, and those shared worker pools
        serve (its own config wins where both have a name)."""
        own = await self.of(tenant_id)
        shared = await self.of(SHARED) if tenant_id != SHARED else {}
        return {**shared, **own} if shared else own

    def cached(self, tenant_id: str, function: str) -> FunctionConfig | None:
        """A function's config as this node last read it, without a query."""
        return self._cache.get(tenant_id, {}).get(function)

    def cached_of(self, tenant_id: str) -> dict[str, FunctionConfig]:
        """A tenant's configs as this node last read them (the dispatcher's limits)."""
        return self._cache.get(tenant_id, {})

    def retry_policy(self, tenant_id: str, function: str) -> RetryPolicy:
        config = self.cached(tenant_id, function) or self.cached(SHARED, function)
        return config.retry if config is not None else RetryPolicy()

    def reload(self, tenant_id: str) -> None:
        """Replace a tenant's cached configs with the store's, in the background; the old
        ones serve (the dispatcher reads them for limits) until the new arrive."""

        async def reload() -> None:
            try:
                stored = await self._rt.store.list_functions(tenant_id)
            except Exception:
                log.exception("reloading the functions of %s failed", tenant_id)
                self._cache.pop(tenant_id, None)  # the next submit reads them again
                return
            self._cache[tenant_id] = {f.name: f for f in stored}
            self._changed(tenant_id, self._cache[tenant_id])

        task = asyncio.create_task(reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def reload_all(self) -> None:
        """Hints may have been missed: reload every tenant this node knows."""
        for tenant_id in list(self._cache):
            self.reload(tenant_id)
