"""Function configs in the store (both backends): a config stored before a rule it breaks
existed is left out of the tenant's functions, never breaking the others."""

from __future__ import annotations

from sluice.contract import FunctionConfig
from sluice.store import Store

NOW = 1_700_000_000.0


async def test_a_stored_config_that_breaks_todays_rules_is_left_out(store: Store) -> None:
    tenant = await store.create_tenant("legacy", NOW)
    # Built in code, a Struct is not checked: this is what an older server stored.
    broken = FunctionConfig(name="old", timeout_s=-1.0, tags=[""])
    fine = FunctionConfig(name="new", priority=7)
    await store.upsert_functions(tenant.id, [broken, fine], NOW)

    assert await store.list_functions(tenant.id) == [fine]
