"""Tenants, their API keys, and who a key is (DESIGN §9).

Keys are random, shown once, stored as their SHA-256 and looked up by it, so no secret
is ever compared character by character; the admin and pool keys (settings) are
compared in constant time. A looked-up key is cached for KEY_CACHE_S: a revoked key
stops at once on the node that revoked it, and on the others when the "revoked" hint
lands (or the cache runs out, if the hint is lost).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..contract import ApiKey, Tenant
from ..errors import Conflict, NotFound
from ..model import SHARED
from .runtime import Runtime

KEY_PREFIX = "sk_"
KEY_CACHE_S = 5.0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str:
    """A key's public name: the first 16 hex digits of its hash."""
    return hash_key(key)[:16]


class Tenants:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._keys: dict[str, tuple[str, float]] = {}  # hash: (tenant, cached until)

    async def create(self, name: str) -> Tenant:
        store = self._rt.store
        if await store.get_tenant_by_name(name) is not None:
            raise Conflict(f"tenant {name!r} exists", code="tenant_exists", field="name")
        return await store.create_tenant(name, self._rt.clock.now())

    async def ensure(self, name: str) -> Tenant:
        return await self._rt.store.get_tenant_by_name(name) or await self.create(name)

    async def get(self, tenant_id: str) -> Tenant:
        tenant = await self._rt.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id}", code="tenant_not_found", field="tenant_id")
        return tenant

    async def all(self) -> list[Tenant]:
        return await self._rt.store.list_tenants()

    async def create_key(self, tenant_id: str) -> str:
        """A new random key; only its hash is stored, so this is the one time it is seen."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        rt = self._rt
        await rt.store.create_api_key(tenant_id, hash_key(key), key[:10], rt.clock.now())
        return key

    async def keys(self, tenant_id: str) -> list[ApiKey]:
        return await self._rt.store.list_api_keys(tenant_id)

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        """Revoke a key by its id; it stops here at once, elsewhere on the hint."""
        rt = self._rt
        digest = await rt.store.revoke_api_key(tenant_id, key_id, rt.clock.now())
        if digest is None:
            raise NotFound(f"no live key {key_id}", code="key_not_found", field="key_id")
        self.forget(digest)
        rt.bus.publish("revoked", digest)

    def forget(self, digest: str) -> None:
        """A key was revoked (here, or on another node): stop trusting the cache."""
        self._keys.pop(digest, None)

    def forget_all(self) -> None:
        self._keys.clear()

    async def authenticate(self, key: str) -> str | None:
        """The tenant of a live key, or None."""
        if not key.startswith(KEY_PREFIX):
            return None
        return await self.authenticate_digest(hash_key(key))

    async def authenticate_digest(self, digest: str) -> str | None:
        """The tenant of a live key known by its hash (a console session holds the hash,
        never the key), or None once the key is revoked."""
        clock = self._rt.clock
        hit = self._keys.get(digest)
        if hit is not None and hit[1] > clock.monotonic():
            return hit[0]
        tenant_id = await self._rt.store.find_api_key(digest)
        if tenant_id is None:
            return None
        self._keys[digest] = (tenant_id, clock.monotonic() + KEY_CACHE_S)
        return tenant_id

    async def authenticate_worker(self, key: str) -> str | None:
        """A worker's tenant, or SHARED for a shared pool's worker (the pool key)."""
        pool = self._rt.settings.pool_key
        if pool is not None and hmac.compare_digest(key.encode(), pool.encode()):
            return SHARED
        return await self.authenticate(key)

    def is_admin(self, key: str) -> bool:
        admin = self._rt.settings.admin_key
        return admin is not None and hmac.compare_digest(key.encode(), admin.encode())
