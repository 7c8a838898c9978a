"""Functions in PostgreSQL: a tenant's task types, each with its JSON config."""

from __future__ import annotations

import msgspec

from ...contract import FunctionConfig
from ..functions import function_configs
from .database import PostgresDatabase
from .queries import Q

_fn_encoder = msgspec.json.Encoder()


class PostgresFunctions(PostgresDatabase):
    async def upsert_functions(
        self, tenant_id: str, configs: list[FunctionConfig], now: float
    ) -> None:
        names = [f.name for f in configs]
        encoded = [_fn_encoder.encode(f) for f in configs]
        await self.pool.execute(Q["upsert_function"], tenant_id, names, encoded, now)

    async def list_functions(self, tenant_id: str) -> list[FunctionConfig]:
        rows = await self._fetch(Q["list_functions"], tenant_id)
        return function_configs([(name, bytes(config)) for name, config in rows])
