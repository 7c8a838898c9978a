"""Function configs as a node holds them, alone (engine/functions.py)."""

from __future__ import annotations

from sluice.contract import FunctionConfig, RetryPolicy
from sluice.engine.functions import Functions
from sluice.engine.runtime import Runtime
from sluice.model import SHARED
from tests.engine.conftest import heard, make_function, make_tenant, until


async def test_a_registration_is_stored_keeps_the_tenants_other_functions_and_is_told(
    rt: Runtime,
) -> None:
    functions = Functions(rt)
    told: list[tuple[str, list[str]]] = []
    functions.on_change(lambda tenant, configs: told.append((tenant, sorted(configs))))
    tenant = await make_tenant(rt)

    await functions.register(tenant, [FunctionConfig(name="send")])
    await functions.register(tenant, [FunctionConfig(name="resize", priority=8)])

    assert sorted(await functions.of(tenant)) == ["resize", "send"]
    stored = await rt.store.list_functions(tenant)
    assert sorted(f.config.name for f in stored) == ["resize", "send"]
    assert told == [(tenant, ["send"]), (tenant, ["resize", "send"])]
    assert heard(rt, "functions") == [tenant, tenant]
    cached = functions.cached(tenant, "resize")
    assert cached is not None and cached.priority == 8


async def test_a_tenant_may_use_shared_pool_functions_and_its_own_config_wins(
    rt: Runtime,
) -> None:
    functions = Functions(rt)
    tenant = await make_tenant(rt)
    pool_retry = RetryPolicy(max_attempts=3)
    await make_function(rt, SHARED, "send", priority=1)
    await make_function(rt, SHARED, "resize", retry=pool_retry)
    await make_function(rt, tenant, "send", priority=7)

    usable = await functions.usable(tenant)

    assert {name: f.priority for name, f in usable.items()} == {"send": 7, "resize": 5}
    assert functions.retry_policy(tenant, "resize") == pool_retry  # the pool's, cached
    assert functions.retry_policy(tenant, "unknown") == RetryPolicy()


async def test_a_reload_replaces_the_cache_with_the_stores_in_the_background(
    rt: Runtime,
) -> None:
    functions = Functions(rt)
    told: list[str] = []
    functions.on_change(lambda tenant, configs: told.append(tenant))
    tenant = await make_tenant(rt)
    await functions.register(tenant, [FunctionConfig(name="send")])
    await make_function(rt, tenant, "send", priority=9)  # another node changed it
    assert functions.cached(tenant, "send") == FunctionConfig(name="send")  # serves meanwhile

    functions.reload_all()

    await until(lambda: (c := functions.cached(tenant, "send")) and c.priority == 9)
    assert told == [tenant, tenant]


async def test_the_operators_settings_survive_a_worker_registering_its_code_again(
    rt: Runtime,
) -> None:
    functions = Functions(rt)
    tenant = await make_tenant(rt)
    await functions.register(tenant, [FunctionConfig(name="send", priority=3, rate=10.0)])
    assert await functions.sources(tenant, "send") == dict.fromkeys(
        FunctionConfig.__struct_fields__[1:], "code"
    )

    await functions.set(tenant, "send", {"rate": 2.0})
    await functions.register(tenant, [FunctionConfig(name="send", priority=4, rate=10.0)])

    cached = functions.cached(tenant, "send")
    assert cached is not None and (cached.rate, cached.priority) == (2.0, 4)
    sources = await functions.sources(tenant, "send")
    assert sources["rate"] == "operator" and sources["priority"] == "code"
