"""Functions in SQLite: a tenant's task types, each with the code's config and the
operator's overrides."""

from __future__ import annotations

from typing import Any

import msgspec

from ...contract import FunctionConfig
from ..functions import FunctionRecord, function_records
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

    async def set_function_overrides(
        self, tenant_id: str, name: str, overrides: dict[str, Any], now: float
    ) -> None:
        params = {
            "tenant_id": tenant_id,
            "name": name,
            "config": _fn_encoder.encode(FunctionConfig(name)),
            "now": now,
            "overrides": _fn_encoder.encode(overrides),
        }
        await self._writer.submit(lambda c: c.execute(Q["set_function_overrides"], params))

    async def list_functions(self, tenant_id: str) -> list[FunctionRecord]:
        rows = await self._read(Q["list_functions"], {"tenant_id": tenant_id})
        return function_records(
            [
                (name, bytes(config), None if over is None else bytes(over), code_at)
                for name, config, over, code_at in rows
            ]
        )
