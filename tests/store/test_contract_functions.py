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

    assert [r.config for r in await store.list_functions(tenant.id)] == [fine]


async def test_the_operators_settings_win_and_survive_the_codes_next_registration(
    store: Store,
) -> None:
    tenant = await store.create_tenant("owners", NOW)
    await store.upsert_functions(tenant.id, [FunctionConfig(name="send", priority=3)], NOW)
    await store.set_function_overrides(tenant.id, "send", {"timeout_s": 9.0}, NOW + 1)
    # The code changes and its worker reconnects: its priority applies, the timeout stays.
    code = FunctionConfig(name="send", priority=8, timeout_s=1.0, rate=5.0)
    await store.upsert_functions(tenant.id, [code], NOW + 2)

    [record] = await store.list_functions(tenant.id)
    assert record.config == FunctionConfig(name="send", priority=8, timeout_s=9.0, rate=5.0)
    assert record.overridden == {"timeout_s"}
    assert record.coded


async def test_a_function_only_an_operator_set_has_no_code(store: Store) -> None:
    tenant = await store.create_tenant("operator-only", NOW)
    await store.set_function_overrides(tenant.id, "hook", {"priority": 2}, NOW)

    [record] = await store.list_functions(tenant.id)
    assert record.config == FunctionConfig(name="hook", priority=2)
    assert not record.coded
    await store.set_function_overrides(tenant.id, "hook", {}, NOW + 1)
    assert [r.config for r in await store.list_functions(tenant.id)] == [FunctionConfig("hook")]
