"""Function configs as a node holds them: the code's registered by workers' hello, the
operator's set by `PUT /v1/functions/{name}` (they win field by field, and no hello
touches them), cached per tenant, reloaded when another node announces a change (the
bus's "functions" hint); a tenant may also use the functions shared pools serve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from ..contract import FunctionConfig, RetryPolicy
from ..model import SHARED
from ..store.functions import FunctionRecord
from .runtime import Runtime

log = logging.getLogger("sluice.functions")

# The settings of a function an operator may own (every field of its config but the name).
SETTINGS: tuple[str, ...] = tuple(f for f in FunctionConfig.__struct_fields__ if f != "name")

Changed = Callable[[str, dict[str, FunctionConfig]], None]
Source = Literal["default", "code", "operator"]


class Functions:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._watchers: list[Changed] = []
        self._cache: dict[str, dict[str, FunctionConfig]] = {}
        self._records: dict[str, dict[str, FunctionRecord]] = {}
        self._reloads: set[asyncio.Task[None]] = set()

    def on_change(self, watcher: Changed) -> None:
        """Call `watcher(tenant, configs)` whenever a tenant's configs change here (HTTP
        targets follow their functions' configs)."""
        self._watchers.append(watcher)

    def _changed(self, tenant_id: str, configs: dict[str, FunctionConfig]) -> None:
        for watcher in self._watchers:
            watcher(tenant_id, configs)

    async def register(self, tenant_id: str, configs: list[FunctionConfig]) -> None:
        """The code's configs (a worker's hello, the app's registration): the defaults
        under the operator's settings, which stay."""
        rt = self._rt
        await rt.store.upsert_functions(tenant_id, configs, rt.clock.now())
        await self._load(tenant_id)
        rt.bus.publish("functions", tenant_id)

    async def set(self, tenant_id: str, name: str, overrides: dict[str, Any]) -> FunctionConfig:
        """Replace the operator's settings of a function (field: JSON value); returns the
        effective config."""
        rt = self._rt
        await rt.store.set_function_overrides(tenant_id, name, overrides, rt.clock.now())
        configs = await self._load(tenant_id)
        rt.bus.publish("functions", tenant_id)
        return configs[name]

    async def _load(self, tenant_id: str) -> dict[str, FunctionConfig]:
        records = {r.config.name: r for r in await self._rt.store.list_functions(tenant_id)}
        self._records[tenant_id] = records
        configs = self._cache[tenant_id] = {name: r.config for name, r in records.items()}
        self._changed(tenant_id, configs)
        return configs

    async def of(self, tenant_id: str) -> dict[str, FunctionConfig]:
        """A tenant's own functions, by name."""
        cache = self._cache.get(tenant_id)
        if cache is None:
            records = {r.config.name: r for r in await self._rt.store.list_functions(tenant_id)}
            # A registration may have landed while the list was read: keep it.
            cache = self._cache.setdefault(tenant_id, {})
            known = self._records.setdefault(tenant_id, {})
            for name, record in records.items():
                if name not in cache:
                    cache[name], known[name] = record.config, record
            self._changed(tenant_id, cache)  # read for the first time: watchers learn it
        return cache

    async def sources(self, tenant_id: str, name: str) -> dict[str, Source]:
        """Where each setting of a function comes from: the operator's setting, the
        code's decorator, or the default (a function no code registered)."""
        await self.of(tenant_id)
        record = self._records.get(tenant_id, {}).get(name)
        if record is None:
            return {}
        code: Source = "code" if record.coded else "default"
        return {f: "operator" if f in record.overridden else code for f in SETTINGS}

    async def record(self, tenant_id: str, name: str) -> FunctionRecord | None:
        """A function as stored: effective config, the code's, the operator's fields."""
        await self.of(tenant_id)
        return self._records.get(tenant_id, {}).get(name)

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
                self._records.pop(tenant_id, None)
                return
            self._records[tenant_id] = {r.config.name: r for r in stored}
            self._cache[tenant_id] = {r.config.name: r.config for r in stored}
            self._changed(tenant_id, self._cache[tenant_id])

        task = asyncio.create_task(reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def reload_all(self) -> None:
        """Hints may have been missed: reload every tenant this node knows."""
        for tenant_id in list(self._cache):
            self.reload(tenant_id)
