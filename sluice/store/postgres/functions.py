"""Functions in PostgreSQL: a tenant's task types, each with the code's config and the
operator's overrides."""

from __future__ import annotations

from typing import Any

import msgspec

from ...contract import FunctionConfig
from ..functions import FunctionRecord, function_records
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

    async def set_function_overrides(
        self, tenant_id: str, name: str, overrides: dict[str, Any], now: float
    ) -> None:
        default = _fn_encoder.encode(FunctionConfig(name))
        await self.pool.execute(
            Q["set_function_overrides"], tenant_id, name, default, now,
            _fn_encoder.encode(overrides),
        )  # fmt: skip

    async def list_functions(self, tenant_id: str) -> list[FunctionRecord]:
        rows = await self._fetch(Q["list_functions"], tenant_id)
        return function_records(
            [
                (name, bytes(config), None if over is None else bytes(over), code_at)
                for name, config, over, code_at in rows
            ]
        )
