"""Tenants and their keys alone; a key's cache entry lives KEY_CACHE_S of fake monotonic
time (engine/tenants.py)."""

from __future__ import annotations

import pytest

from sluice.clock import FakeClock
from sluice.engine.runtime import Runtime
from sluice.engine.tenants import KEY_CACHE_S, Tenants, hash_key, key_id
from sluice.errors import Conflict, NotFound
from sluice.model import SHARED
from tests.engine.conftest import heard, with_settings


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(rt: Runtime) -> None:
    tenants = Tenants(rt)
    tenant = await tenants.create("acme")

    key = await tenants.create_key(tenant.id)

    assert await tenants.authenticate(key) == tenant.id
    assert await rt.store.find_api_key(hash_key(key)) == tenant.id
    (listed,) = await tenants.keys(tenant.id)
    assert key not in repr(listed)
    assert await tenants.authenticate("sk_not-a-key") is None
    assert await tenants.authenticate("no-prefix") is None


async def test_a_cached_key_outlives_a_revocation_elsewhere_for_key_cache_s_of_fake_time(
    rt: Runtime, clock: FakeClock
) -> None:
    tenants = Tenants(rt)
    tenant = await tenants.create("acme")
    key = await tenants.create_key(tenant.id)
    assert await tenants.authenticate(key) == tenant.id  # cached from here

    # Another node revokes it and its hint is lost: this node trusts its cache a while.
    await rt.store.revoke_api_key(tenant.id, key_id(key), clock.now())
    clock.advance(KEY_CACHE_S - 0.01)
    assert await tenants.authenticate(key) == tenant.id
    clock.advance(0.02)
    assert await tenants.authenticate(key) is None


async def test_a_key_revoked_here_stops_at_once_and_the_other_nodes_are_told(
    rt: Runtime,
) -> None:
    tenants = Tenants(rt)
    tenant = await tenants.create("acme")
    key = await tenants.create_key(tenant.id)
    assert await tenants.authenticate(key) == tenant.id

    await tenants.revoke_key(tenant.id, key_id(key))

    assert await tenants.authenticate(key) is None
    assert heard(rt, "revoked") == [hash_key(key)]
    with pytest.raises(NotFound):
        await tenants.revoke_key(tenant.id, key_id(key))


async def test_a_tenant_name_is_taken_once_and_ensure_finds_it(rt: Runtime) -> None:
    tenants = Tenants(rt)
    made = await tenants.create("acme")

    with pytest.raises(Conflict):
        await tenants.create("acme")
    assert await tenants.ensure("acme") == made
    assert [t.name for t in await tenants.all()] == ["acme"]
    with pytest.raises(NotFound):
        await tenants.get("nobody")


async def test_the_pool_key_makes_a_shared_worker_and_the_admin_key_an_admin(
    rt: Runtime,
) -> None:
    tenants = Tenants(with_settings(rt, pool_key="pool-secret", admin_key="admin-secret"))
    tenant = await tenants.create("acme")
    key = await tenants.create_key(tenant.id)

    assert await tenants.authenticate_worker("pool-secret") == SHARED
    assert await tenants.authenticate_worker(key) == tenant.id
    assert tenants.is_admin("admin-secret")
    assert not tenants.is_admin("pool-secret")
    assert not Tenants(rt).is_admin("admin-secret")  # no admin key set: no admin
