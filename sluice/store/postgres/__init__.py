"""The PostgreSQL backend (DESIGN §5 "Storage", "Multi-node"; ALGORITHMS.md §6).

asyncpg with a small connection pool. Every batch travels as arrays opened with
`unnest()`, so a frame of results or a batch of submits is one statement; the claim is
one `MATERIALIZED ... FOR UPDATE SKIP LOCKED` statement per worker, so several server
nodes can claim from one database without waiting on each other. PostgreSQL groups
concurrent commits itself, so there is no writer thread here.

Two pools. Writes a user was told about (submits, finishes, cancels) commit durably.
Claims, lease renewals and promotions go through a second, small pool whose sessions
run with `synchronous_commit = off`: they do not wait for the WAL flush, and losing the
last of them in a database crash only puts tasks back to ready or scheduled, which
at-least-once delivery already allows (the fencing on finish rejects a result for a
claim that was lost).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import msgspec

from ...model import (
    DEFAULT_MAX_ATTEMPTS,
    SHARED,
    ApiKey,
    AttemptRecord,
    ClaimedTask,
    EventRecord,
    Finish,
    FunctionConfig,
    NewTask,
    SubmitResult,
    TaskRecord,
    Tenant,
    time_ordered_id_floor,
)
from ...selector import Selector, TaskSummary
from ..base import (
    ACCEPTED,
    Cancelled,
    ClaimRequest,
    DeadSelector,
    DeadTask,
    Held,
    LeaseRenewal,
    Promoted,
    Reaped,
    function_configs,
)
from .audit import PostgresAudit
from .limits import PostgresLimits
from .pauses import PostgresPauses
from .queries import Q
from .schedules import PostgresSchedules
from .writes import (
    _attempt_columns,
    _columns,
    _columns_of,
    _delete,
    _events,
    _fair_order,
    _finish_columns,
    _GroupInsert,
    _judge_refused,
    _keep_session,
    migrate,
)

POOL_SIZE = 10
FAST_POOL_SIZE = 3
# The claims' connections (also renewals and promotions): commits that do not wait for
# the disk, and no sorts. Every claim has an index in its order; with statistics from
# when the table was small, the cached generic plan of a claim sorted every ready row
# instead (50-110 ms a claim with 200,000 ready: a 500/s limit released at 260/s).
# enable_sort=off prices such plans out whatever the statistics say.
FAST_SETTINGS = {"synchronous_commit": "off", "enable_sort": "off"}
CLOSE_TIMEOUT_S = 5.0

_fn_encoder = msgspec.json.Encoder()
_tags_decoder = msgspec.json.Decoder(list[str])


class PostgresStore(PostgresSchedules, PostgresPauses, PostgresLimits, PostgresAudit):
    def __init__(self, dsn: str, *, pool_size: int = POOL_SIZE) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: Any = None
        self._fast_pool: Any = None
        self._inserts = _GroupInsert(self)

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    @property
    def fast(self) -> Any:
        """The pool whose commits do not wait for the disk (see the module's docstring)."""
        if self._fast_pool is None:
            raise RuntimeError("the store is not open")
        return self._fast_pool

    async def open(self) -> None:
        await migrate(self.dsn)
        # A transaction left open would hold back vacuum and bloat the ready index.
        settings = {"idle_in_transaction_session_timeout": "60000"}
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=2,
            max_size=self.pool_size,
            server_settings=settings,
            reset=_keep_session,
        )
        self._fast_pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=FAST_POOL_SIZE,
            server_settings={**settings, **FAST_SETTINGS},
            reset=_keep_session,
        )

    async def close(self) -> None:
        for pool in (self._pool, self._fast_pool):
            if pool is None:
                continue
            try:
                # Waits for borrowed connections to come back; a stuck one must not keep
                # a stopping node alive.
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                pool.terminate()
        self._pool = self._fast_pool = None

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        return list(await self.pool.fetch(query, *args))

    # -- tenants, keys, functions ------------------------------------------------

    async def create_tenant(self, name: str, now: float) -> Tenant:
        tenant = Tenant(id=uuid.uuid4().hex, name=name, created_at=now)
        await self.pool.execute(Q["create_tenant"], tenant.id, name, now)
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        rows = await self._fetch(Q["get_tenant"], tenant_id)
        return Tenant(*rows[0]) if rows else None

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        rows = await self._fetch(Q["get_tenant_by_name"], name)
        return Tenant(*rows[0]) if rows else None

    async def create_api_key(self, tenant_id: str, key_hash: str, prefix: str, now: float) -> None:
        await self.pool.execute(Q["create_api_key"], key_hash, tenant_id, prefix, now)

    async def find_api_key(self, key_hash: str) -> str | None:
        rows = await self._fetch(Q["find_api_key"], key_hash)
        return str(rows[0][0]) if rows else None

    async def list_tenants(self) -> list[Tenant]:
        return [Tenant(*r) for r in await self._fetch(Q["list_tenants"])]

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        return [ApiKey(*r) for r in await self._fetch(Q["list_api_keys"], tenant_id)]

    async def revoke_api_key(self, tenant_id: str, key_id: str, now: float) -> str | None:
        rows = await self._fetch(Q["revoke_api_key"], tenant_id, key_id, now)
        return None if not rows else str(rows[0][0])

    async def upsert_functions(
        self, tenant_id: str, configs: list[FunctionConfig], now: float
    ) -> None:
        names = [f.name for f in configs]
        encoded = [_fn_encoder.encode(f) for f in configs]
        await self.pool.execute(Q["upsert_function"], tenant_id, names, encoded, now)

    async def list_functions(self, tenant_id: str) -> list[FunctionConfig]:
        rows = await self._fetch(Q["list_functions"], tenant_id)
        return function_configs([(name, bytes(config)) for name, config in rows])

    # -- submit and read tasks ---------------------------------------------------

    async def submit_tasks(
        self, tenant_id: str, tasks: list[NewTask], now: float
    ) -> list[SubmitResult]:
        plain = [t for t in tasks if t.key is None]
        # Keyed rows go in key order, so two batches racing for the same keys lock them in
        # the same order and never deadlock; the sort is stable, so within a batch the
        # first task with a key still wins.
        keyed = sorted((t for t in tasks if t.key is not None), key=lambda t: t.key or "")
        inserted: set[str] = set()
        holders: dict[str, Any] = {}
        if not keyed:
            await self._inserts.insert(tenant_id, plain, now)
            return [SubmitResult(t.id, True, t.state, t.run_at) for t in tasks]
        async with self.pool.acquire() as conn, conn.transaction():
            if plain:
                await conn.execute(Q["insert_task"], tenant_id, *_columns(plain, now))
            if keyed:
                rows = await conn.fetch(Q["insert_keyed_task"], tenant_id, *_columns(keyed, now))
                inserted = {r[0] for r in rows}
                lost = [t.key for t in keyed if t.id not in inserted]
                if lost:
                    found = await conn.fetch(Q["get_task_by_key"], tenant_id, lost)
                    holders = {r[0]: r for r in found}
        out = []
        for t in tasks:
            if t.key is None or t.id in inserted:
                out.append(SubmitResult(t.id, True, t.state, t.run_at))
            else:
                _key, held_id, state, run_at = holders[t.key]
                out.append(SubmitResult(held_id, False, state, run_at))
        return out

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRecord | None:
        rows = await self._fetch(Q["get_task"], tenant_id, task_id)
        return TaskRecord(*rows[0]) if rows else None

    async def get_task_states(self, tenant_id: str, task_ids: list[str]) -> dict[str, str]:
        rows = await self._fetch(Q["get_task_states"], tenant_id, task_ids)
        return {r[0]: r[1] for r in rows}

    async def list_attempts(self, tenant_id: str, task_id: str) -> list[AttemptRecord]:
        rows = await self._fetch(Q["list_attempts"], tenant_id, task_id)
        return [AttemptRecord(*r) for r in rows]

    async def list_events(self, tenant_id: str, task_id: str) -> list[EventRecord]:
        rows = await self._fetch(Q["list_events"], tenant_id, task_id)
        return [EventRecord(*r) for r in rows]

    # -- the hot path ------------------------------------------------------------

    async def claim_tasks(
        self, requests: list[ClaimRequest], now: float, lease_s: float
    ) -> list[list[ClaimedTask]]:
        lease_until = now + lease_s
        out = []
        # Each request is one statement, atomic on its own; no transaction spans them.
        async with self.fast.acquire() as conn:
            for r in requests:
                args = [r.tenant_id, list(r.functions), now, r.limit, r.worker, lease_until]
                parts = None if r.partitions is None else list(r.partitions)
                shared = r.tenant_id == SHARED  # a shared pool claims across tenants
                if r.priority is None:
                    if shared:
                        rows = await conn.fetch(Q["claim_shared"], *args, list(r.exclude), parts)
                    else:
                        rows = await conn.fetch(Q["claim_tasks"], *args, parts)
                elif shared:
                    rows = await conn.fetch(
                        Q["claim_shared_level"], *args, r.priority, list(r.exclude), parts
                    )
                else:
                    rows = await conn.fetch(Q["claim_level"], *args, r.priority, parts)
                claimed = sorted(rows, key=_fair_order)  # RETURNING yields no set order
                out.append([ClaimedTask(*row) for row in claimed])
        return out

    async def finish_attempts(self, finishes: list[Finish], now: float) -> list[str]:
        # One statement finishes every fenced attempt of the frame; a task named twice in
        # the frame (a resend) is judged after the first has been written.
        first: dict[str, Finish] = {}
        for f in finishes:
            first.setdefault(f.task_id, f)
        # In id order: concurrent batches lock their rows in the same order (no deadlock).
        batch = sorted(first.values(), key=lambda f: f.task_id)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q["finish_task"], *_finish_columns(batch, now))
            done = {r[0] for r in rows}
            accepted = [f for f in batch if f.task_id in done]
            if accepted:
                await conn.execute(Q["insert_attempt"], *_attempt_columns(accepted))
            out = []
            for f in finishes:
                if first[f.task_id] is f and f.task_id in done:
                    out.append(ACCEPTED)
                else:
                    out.append(await _judge_refused(conn, f, now))
        return out

    async def extend_leases(self, renewals: list[LeaseRenewal], lease_until: float) -> None:
        rows = sorted(
            (task_id, r.tenant_id, r.worker) for r in renewals for task_id in r.task_ids
        )  # by id: the lock order every batch update here follows
        if rows:
            ids, tenants, workers = (list(c) for c in zip(*rows, strict=True))
            await self.fast.execute(Q["extend_leases"], tenants, workers, ids, lease_until)

    async def cancel_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[Cancelled]:
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetch(Q["cancellable_tasks"], tenant_id, task_ids)
            if not found:
                return []
            await conn.execute(Q["cancel_task"], tenant_id, [r[0] for r in found], now)
            running = [r for r in found if r[1] == "running"]
            if running:
                # A running attempt ends here; the worker's late answer is then a duplicate.
                await conn.execute(
                    Q["insert_attempt"],
                    *_columns_of([
                        (tenant_id, task_id, attempt, owner, dispatched_at, None, now,
                         "cancelled", None, "cancelled while running", None)
                        for task_id, _state, attempt, owner, dispatched_at in running
                    ], 11),
                )  # fmt: skip
            await _events(conn, now, [(tenant_id, r[0], "cancelled", f"was {r[1]}") for r in found])
        return [Cancelled(r[0], r[1], r[3] if r[1] == "running" else None) for r in found]

    async def list_tasks(
        self, tenant_id: str, selector: Selector, before: str, limit: int
    ) -> list[TaskSummary]:
        tags = None if selector.tags is None else msgspec.json.encode(selector.tags).decode()
        rows = await self._fetch(
            Q["list_tasks"],
            tenant_id, before or "~",  # "~" sorts after every id
            selector.function, selector.state, tags, selector.priority_min,
            selector.priority_max, selector.created_after, selector.created_before,
            selector.key, limit,
        )  # fmt: skip
        out = []
        for task_id, function, state, priority, attempt, created, finished, key, tags_json in rows:
            tag_list = _tags_decoder.decode(tags_json) if tags_json else []
            out.append(
                TaskSummary(task_id, function, state, priority, attempt, created, finished, key,
                            tag_list)
            )  # fmt: skip
        return out

    async def delete_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [r[0] for r in await conn.fetch(Q["deletable_tasks"], tenant_id, task_ids)]
            if ids:
                await _delete(conn, tenant_id, ids)
        return ids

    async def list_dead(
        self, tenant_id: str, selector: DeadSelector, after: str, limit: int
    ) -> list[DeadTask]:
        rows = await self._fetch(
            Q["list_dead"],
            tenant_id, after, selector.function, selector.since, selector.until, limit,
        )  # fmt: skip
        return [DeadTask(*r) for r in rows]

    async def retry_dead(
        self, tenant_id: str, task_ids: list[str], max_attempts: dict[str, int], now: float
    ) -> list[str]:
        names = list(max_attempts)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                Q["retry_task"],
                tenant_id,
                task_ids,
                names,
                [max_attempts[n] for n in names],
                now,
                DEFAULT_MAX_ATTEMPTS,
            )
            retried = sorted(r[0] for r in rows)
            await _events(conn, now, [(tenant_id, i, "retried", "by hand") for i in retried])
        return retried

    async def leased_to(self, tenant_id: str, worker: str) -> list[Held]:
        rows = await self._fetch(Q["leased_to"], tenant_id, worker)
        return [(r[0], r[1], r[2]) for r in rows]

    async def release_tasks(
        self, tenant_id: str, worker: str, held: list[Held], now: float
    ) -> list[str]:
        if not held:
            return []
        # In id order, as every batch update here.
        ids, attempts, dispatched = _columns_of(sorted(held), 3)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                Q["release_task"], tenant_id, ids, attempts, dispatched, worker, now
            )
            released = {r[0]: r[1] for r in rows}  # id: its tenant (a shared pool's: anyone's)
            await _events(
                conn, now, [(released[i], i, "handed_back", worker) for i in ids if i in released]
            )
        return [i for i in ids if i in released]

    # -- timers ------------------------------------------------------------------

    async def due_soon(self, until: float, limit: int) -> list[tuple[float, str, str]]:
        rows = await self._fetch(Q["due_soon"], until, limit)
        return [(r[0], r[1], r[2]) for r in rows]

    async def promote_due(self, now: float, limit: int) -> list[Promoted]:
        return [Promoted(*r) for r in await self.fast.fetch(Q["promote_due"], now, limit)]

    async def promote_tasks(self, task_ids: list[str], now: float) -> list[Promoted]:
        return [Promoted(*r) for r in await self.fast.fetch(Q["promote_tasks"], task_ids, now)]

    async def retag(self, tags: list[tuple[str, float]]) -> None:
        if tags:
            ordered = sorted(tags)  # id order, as every batch update here
            await self.fast.execute(Q["retag"], [t[0] for t in ordered], [t[1] for t in ordered])

    async def ready_backlog(self) -> dict[int, int]:
        return {int(part): int(n) for part, n in await self._fetch(Q["ready_backlog"])}

    async def tenant_backlog(self, tenant_id: str) -> dict[int, int]:
        rows = await self._fetch(Q["tenant_backlog"], tenant_id)
        return {int(part): int(n) for part, n in rows}

    async def get_claimed(
        self, tenant_id: str, worker: str, task_ids: list[str]
    ) -> list[ClaimedTask]:
        rows = await self._fetch(Q["get_claimed"], tenant_id, task_ids, worker)
        return [ClaimedTask(*r) for r in sorted(rows, key=_fair_order)]

    async def task_tenant(self, task_id: str) -> str | None:
        rows = await self._fetch(Q["task_tenant"], task_id)
        return str(rows[0][0]) if rows else None

    async def fair_clock(self) -> float | None:
        rows = await self._fetch(Q["fair_clock"])
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def last_tag(self, tenant_id: str, functions: list[str]) -> float | None:
        rows = await self._fetch(Q["last_tag"], tenant_id, functions)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def reap_leases(self, now: float, limit: int) -> list[Reaped]:
        out = []
        async with self.pool.acquire() as conn, conn.transaction():
            expired = await conn.fetch(Q["expired_leases"], now, limit)
            lost = []
            for tenant_id, task_id, attempt, _max, owner, dispatched_at in expired:
                state = await conn.fetchval(Q["requeue_lost"], task_id, tenant_id, attempt, now)
                if state is None:
                    continue
                lost.append(
                    (tenant_id, task_id, attempt, owner, dispatched_at, None, now, "lost",
                     "LeaseExpired", "the worker stopped renewing its lease", None)
                )  # fmt: skip
                out.append(Reaped(tenant_id, task_id, state))
            if lost:
                await conn.execute(Q["insert_attempt"], *_columns_of(lost, 11))
                await _events(conn, now, [(t[0], t[1], "lease_lost", t[3]) for t in lost])
        return out

    async def purge_tasks(self, before: float, limit: int) -> int:
        """Delete ended tasks (with their attempts and events) that ended before `before`;
        their keys are free again."""
        id_before = time_ordered_id_floor(before)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q["retained_past"], id_before, before, limit)
            by_tenant: dict[str, list[str]] = {}
            for tenant_id, task_id in rows:
                by_tenant.setdefault(tenant_id, []).append(task_id)
            for tenant_id, ids in by_tenant.items():
                await _delete(conn, tenant_id, ids)
        return len(rows)

    async def expire_tasks(self, now: float, limit: int) -> list[tuple[str, str]]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = [(r[0], r[1]) for r in await conn.fetch(Q["expire_tasks"], now, limit)]
            await _events(conn, now, [(t, i, "expired", None) for t, i in rows])
        return rows

    async def list_leases(self, prefix: str) -> list[tuple[str, str, float]]:
        return [(r[0], r[1], r[2]) for r in await self._fetch(Q["list_leases"], prefix)]

    async def acquire_leases(self, names: list[str], holder: str, ttl_s: float) -> list[str]:
        unique = sorted(set(names))
        rows = await self.pool.fetch(Q["acquire_leases"], unique, holder, ttl_s)
        return [r[0] for r in rows]

    async def release_lease(self, name: str, holder: str) -> None:
        await self.pool.execute(Q["release_lease"], name, holder)

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        got = await self.pool.fetchval(Q["acquire_lease"], name, holder, ttl_s)
        return bool(got == holder)


__all__ = ["PostgresStore", "migrate"]
