"""Functions in SQLite: a tenant's task types, each with its JSON config."""

from __future__ import annotations

import msgspec

from ...contract import FunctionConfig
from ..functions import function_configs
from .database import SQLiteDatabase
from .queries import Q

_fn_encoder = msgspec.json.Encoder()


class SQLiteFunctions(SQLiteDatabase):
    async def upsert_functions(
        self, tenant_id: str, configs: list[FunctionConfig], now: float
    ) -> None:
        params = [
            {"tenant_id": tenant_id, "name": f.name, "config": _fn_encoder.encode(f), "now": now}
            for f in configs
        ]
        await self._writer.submit(lambda c: c.executemany(Q["upsert_function"], params))

    async def list_functions(self, tenant_id: str) -> list[FunctionConfig]:
        rows = await self._read(Q["list_functions"], {"tenant_id": tenant_id})
        return function_configs([(name, bytes(config)) for name, config in rows])
