"""The embedded SQLite backend (DESIGN §5 "Storage").

WAL, `synchronous=NORMAL` by default, `BEGIN IMMEDIATE` for every write, one writer
thread that group-commits (writer.py), and a small pool of read connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ...model import (
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
    Cancelled,
    ClaimRequest,
    DeadSelector,
    DeadTask,
    LeaseRenewal,
    Promoted,
    Reaped,
    function_configs,
)
from ..writer import Writer
from .audit import SQLiteAudit
from .fairness import SQLiteFairness
from .files import create_private
from .limits import SQLiteLimits
from .pauses import SQLitePauses
from .queries import Q
from .schedules import SQLiteSchedules, _task_row
from .writes import (
    _allowance,
    _dead_params,
    _event,
    _fair_order,
    _finish_many,
    _migrate,
    _parts,
)

READ_THREADS = 2
CHECKPOINT_INTERVAL_S = 1.0
GIL_SWITCH_S = 0.0005
SMALL_OP = 8  # rows a write may touch and still run inline when the writer is idle
SMALL_CLAIM = 64
CACHE_KIB = 64 * 1024  # per connection; the default 2 MiB thrashes on batches of 1,000
T = TypeVar("T")

_fn_encoder = msgspec.json.Encoder()
_tags_decoder = msgspec.json.Decoder(list[str])


class SQLiteStore(SQLiteSchedules, SQLitePauses, SQLiteLimits, SQLiteFairness, SQLiteAudit):
    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        # With synchronous=NORMAL a commit does not wait for the disk, so small writes may
        # run inline when the writer is idle (see writer.py).
        self._writer = Writer(self._connect_writer, inline_small=self.synchronous == "NORMAL")
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sluice-sqlite-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sluice-sqlite-checkpoint", daemon=True
        )

    # -- connections -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        create_private(self.path)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        # Checkpoints run on their own thread (below), never inside a commit on the hot path.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        _migrate(conn)
        return conn

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints every second: they never block the writer or readers."""
        conn = self._connect()
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._read_conns.append(conn)
        return conn

    async def _read(self, query: str, params: Any = ()) -> list[Any]:
        def run() -> list[Any]:
            return self._reader().execute(query, params).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    def schema_version(self) -> int:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    async def open(self) -> None:
        # The writer and reader threads need the GIL between SQLite calls; at the default
        # 5 ms switch interval a busy event loop starves them (a bulk verb slowed 100x).
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        await asyncio.get_running_loop().run_in_executor(None, self._writer.start)
        self._checkpointer.start()

    async def close(self) -> None:
        self._stopping.set()
        if self._checkpointer.is_alive():
            self._checkpointer.join()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    # -- tenants, keys, functions ------------------------------------------------

    async def create_tenant(self, name: str, now: float) -> Tenant:
        tenant = Tenant(id=uuid.uuid4().hex, name=name, created_at=now)
        await self._writer.submit(
            lambda c: c.execute(Q["create_tenant"], {"id": tenant.id, "name": name, "now": now})
        )
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        rows = await self._read(Q["get_tenant"], {"id": tenant_id})
        return Tenant(*rows[0]) if rows else None

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        rows = await self._read(Q["get_tenant_by_name"], {"name": name})
        return Tenant(*rows[0]) if rows else None

    async def create_api_key(self, tenant_id: str, key_hash: str, prefix: str, now: float) -> None:
        params = {"key_hash": key_hash, "tenant_id": tenant_id, "prefix": prefix, "now": now}
        await self._writer.submit(lambda c: c.execute(Q["create_api_key"], params))

    async def find_api_key(self, key_hash: str) -> str | None:
        rows = await self._read(Q["find_api_key"], {"key_hash": key_hash})
        return str(rows[0][0]) if rows else None

    async def list_tenants(self) -> list[Tenant]:
        return [Tenant(*r) for r in await self._read(Q["list_tenants"])]

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._read(Q["list_api_keys"], {"tenant_id": tenant_id})
        return [ApiKey(*r) for r in rows]

    async def revoke_api_key(self, tenant_id: str, key_id: str, now: float) -> str | None:
        params = {"tenant_id": tenant_id, "key_id": key_id, "now": now}

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(Q["revoke_api_key"], params).fetchone()
            return None if row is None else str(row[0])

        return await self._writer.submit(op, small=True)

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

    # -- submit and read tasks ---------------------------------------------------

    async def submit_tasks(
        self, tenant_id: str, tasks: list[NewTask], now: float
    ) -> list[SubmitResult]:
        def rows(t: NewTask) -> tuple[Any, ...]:
            return _task_row(tenant_id, t, now)

        def op(conn: sqlite3.Connection) -> list[SubmitResult]:
            plain = [rows(t) for t in tasks if t.key is None]
            if plain:
                conn.executemany(Q["insert_task"], plain)
            out = []
            for t in tasks:
                if t.key is None:
                    out.append(SubmitResult(t.id, True, t.state, t.run_at))
                    continue
                if conn.execute(Q["insert_keyed_task"], rows(t)).fetchone() is not None:
                    out.append(SubmitResult(t.id, True, t.state, t.run_at))
                else:
                    held = conn.execute(Q["get_task_by_key"], (tenant_id, t.key)).fetchone()
                    out.append(SubmitResult(held[0], False, held[1], held[2]))
            return out

        return await self._writer.submit(op, small=len(tasks) <= SMALL_OP)

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRecord | None:
        rows = await self._read(Q["get_task"], {"tenant_id": tenant_id, "id": task_id})
        return TaskRecord(*rows[0]) if rows else None

    async def get_task_states(self, tenant_id: str, task_ids: list[str]) -> dict[str, str]:
        ids = msgspec.json.encode(task_ids).decode()
        rows = await self._read(Q["get_task_states"], {"tenant_id": tenant_id, "ids": ids})
        return {r[0]: r[1] for r in rows}

    async def list_attempts(self, tenant_id: str, task_id: str) -> list[AttemptRecord]:
        rows = await self._read(Q["list_attempts"], {"tenant_id": tenant_id, "task_id": task_id})
        return [AttemptRecord(*r) for r in rows]

    async def list_events(self, tenant_id: str, task_id: str) -> list[EventRecord]:
        rows = await self._read(Q["list_events"], {"tenant_id": tenant_id, "task_id": task_id})
        return [EventRecord(*r) for r in rows]

    # -- the hot path ------------------------------------------------------------

    async def claim_tasks(
        self, requests: list[ClaimRequest], now: float, lease_s: float
    ) -> list[list[ClaimedTask]]:
        lease_until = now + lease_s

        def op(conn: sqlite3.Connection) -> list[list[ClaimedTask]]:
            out = []
            for r in requests:
                params = {
                    "tenant_id": r.tenant_id,
                    "worker": r.worker,
                    "functions": msgspec.json.encode(r.functions).decode(),
                    "limit": r.limit,
                    "now": now,
                    "lease_until": lease_until,
                    "exclude": msgspec.json.encode(r.exclude).decode(),
                    "parts": _parts(r.partitions),
                }
                shared = r.tenant_id == SHARED  # a shared pool claims across tenants
                if r.priority is None:
                    query = Q["claim_shared"] if shared else Q["claim_tasks"]
                    rows = conn.execute(query, params).fetchall()
                else:
                    level = {**params, "priority": r.priority}
                    query = Q["claim_shared_level"] if shared else Q["claim_level"]
                    rows = conn.execute(query, level).fetchall()
                rows.sort(key=_fair_order)  # UPDATE ... RETURNING yields rows in no set order
                out.append([ClaimedTask(*row) for row in rows])
            return out

        return await self._writer.submit(op, small=sum(r.limit for r in requests) <= SMALL_CLAIM)

    async def finish_attempts(self, finishes: list[Finish], now: float) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            return _finish_many(conn, finishes, now)

        return await self._writer.submit(op, small=len(finishes) <= SMALL_OP)

    async def extend_leases(self, renewals: list[LeaseRenewal], lease_until: float) -> None:
        params = [
            {
                "tenant_id": r.tenant_id,
                "worker": r.worker,
                "ids": msgspec.json.encode(r.task_ids).decode(),
                "lease_until": lease_until,
            }
            for r in renewals
            if r.task_ids
        ]
        if params:
            await self._writer.submit(lambda c: c.executemany(Q["extend_leases"], params))

    async def cancel_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[Cancelled]:
        ids = msgspec.json.encode(task_ids).decode()

        def op(conn: sqlite3.Connection) -> list[Cancelled]:
            found = conn.execute(
                Q["cancellable_tasks"], {"tenant_id": tenant_id, "ids": ids}
            ).fetchall()
            # executemany: the rows go through SQLite in C, not one Python call each.
            conn.executemany(
                Q["cancel_task"],
                [{"tenant_id": tenant_id, "id": row[0], "now": now} for row in found],
            )
            # A running attempt ends here; the worker's late answer is then a duplicate.
            conn.executemany(
                Q["insert_attempt"],
                [
                    {
                        "tenant_id": tenant_id, "task_id": task_id, "attempt": attempt,
                        "worker": owner, "dispatched_at": dispatched_at, "started_at": None,
                        "finished_at": now, "outcome": "cancelled", "error_type": None,
                        "error_message": "cancelled while running", "traceback": None,
                    }
                    for task_id, state, attempt, owner, dispatched_at in found
                    if state == "running"
                ],
            )  # fmt: skip
            conn.executemany(
                Q["insert_event"],
                [
                    {"tenant_id": tenant_id, "task_id": row[0], "now": now,
                     "kind": "cancelled", "detail": f"was {row[1]}"}
                    for row in found
                ],
            )  # fmt: skip
            return [
                Cancelled(row[0], row[1], row[3] if row[1] == "running" else None) for row in found
            ]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def list_tasks(
        self, tenant_id: str, selector: Selector, before: str, limit: int
    ) -> list[TaskSummary]:
        def encoded(values: Sequence[str] | None) -> str | None:
            return None if values is None else msgspec.json.encode(values).decode()

        params = {
            "tenant_id": tenant_id,
            "before": before or "~",  # "~" sorts after every id
            "functions": encoded(selector.function),
            "states": encoded(selector.state),
            "tags": encoded(selector.tags),
            "priority_min": selector.priority_min,
            "priority_max": selector.priority_max,
            "created_after": selector.created_after,
            "created_before": selector.created_before,
            "key": selector.key,
            "limit": limit,
        }
        rows = await self._read(Q["list_tasks"], params)
        out = []
        for task_id, function, state, priority, attempt, created, finished, key, tags in rows:
            tag_list = _tags_decoder.decode(tags) if tags else []
            out.append(
                TaskSummary(task_id, function, state, priority, attempt, created, finished, key,
                            tag_list)
            )  # fmt: skip
        return out

    async def delete_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        ids = msgspec.json.encode(task_ids).decode()

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                Q["deletable_tasks"], {"tenant_id": tenant_id, "ids": ids}
            ).fetchall()
            params = [{"tenant_id": tenant_id, "id": r[0]} for r in rows]
            conn.executemany(Q["delete_attempts"], params)
            conn.executemany(Q["delete_events"], params)
            conn.executemany(Q["delete_task"], params)
            return [r[0] for r in rows]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def list_dead(
        self, tenant_id: str, selector: DeadSelector, after: str, limit: int
    ) -> list[DeadTask]:
        rows = await self._read(Q["list_dead"], _dead_params(tenant_id, selector, after, limit))
        return [DeadTask(*r) for r in rows]

    async def retry_dead(
        self, tenant_id: str, task_ids: list[str], max_attempts: dict[str, int], now: float
    ) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            retried = []
            for task_id in task_ids:
                row = conn.execute(
                    Q["get_task"], {"tenant_id": tenant_id, "id": task_id}
                ).fetchone()
                if row is None:
                    continue
                params = {"tenant_id": tenant_id, "id": task_id, "now": now,
                          "max_attempts": _allowance(row[23], row[2], max_attempts)}  # fmt: skip
                if conn.execute(Q["retry_task"], params).rowcount == 1:
                    _event(conn, tenant_id, task_id, now, "retried", "by hand")
                    retried.append(task_id)
            return retried

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    # -- timers ------------------------------------------------------------------

    async def due_soon(self, until: float, limit: int) -> list[tuple[float, str, str]]:
        rows = await self._read(Q["due_soon"], {"until": until, "limit": limit})
        return [(r[0], r[1], r[2]) for r in rows]

    async def promote_due(self, now: float, limit: int) -> list[Promoted]:
        def op(conn: sqlite3.Connection) -> list[Promoted]:
            rows = conn.execute(Q["promote_due"], {"now": now, "limit": limit})
            return [Promoted(*r) for r in rows]

        return await self._writer.submit(op)

    async def promote_tasks(self, task_ids: list[str], now: float) -> list[Promoted]:
        ids = msgspec.json.encode(task_ids).decode()

        def op(conn: sqlite3.Connection) -> list[Promoted]:
            rows = conn.execute(Q["promote_tasks"], {"ids": ids, "now": now})
            return [Promoted(*r) for r in rows]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def reap_leases(self, now: float, limit: int) -> list[Reaped]:
        def op(conn: sqlite3.Connection) -> list[Reaped]:
            out = []
            expired = conn.execute(Q["expired_leases"], {"now": now, "limit": limit}).fetchall()
            for tenant_id, task_id, attempt, _max, owner, dispatched_at in expired:
                row = conn.execute(
                    Q["requeue_lost"],
                    {"id": task_id, "tenant_id": tenant_id, "attempt": attempt, "now": now},
                ).fetchone()
                if row is None:
                    continue
                conn.execute(
                    Q["insert_attempt"],
                    {
                        "tenant_id": tenant_id, "task_id": task_id, "attempt": attempt,
                        "worker": owner, "dispatched_at": dispatched_at, "started_at": None,
                        "finished_at": now, "outcome": "lost", "error_type": "LeaseExpired",
                        "error_message": "the worker stopped renewing its lease",
                        "traceback": None,
                    },
                )  # fmt: skip
                _event(conn, tenant_id, task_id, now, "lease_lost", owner)
                out.append(Reaped(tenant_id, task_id, row[0]))
            return out

        return await self._writer.submit(op)

    async def purge_tasks(self, before: float, limit: int) -> int:
        """Delete ended tasks (with their attempts and events) that ended before `before`;
        their keys are free again."""
        id_before = time_ordered_id_floor(before)

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                Q["retained_past"], {"id_before": id_before, "before": before, "limit": limit}
            ).fetchall()
            params = [{"tenant_id": t, "id": i} for t, i in rows]
            conn.executemany(Q["delete_attempts"], params)
            conn.executemany(Q["delete_events"], params)
            conn.executemany(Q["delete_task"], params)
            return len(rows)

        return await self._writer.submit(op)

    async def expire_tasks(self, now: float, limit: int) -> list[tuple[str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(Q["expire_tasks"], {"now": now, "limit": limit}).fetchall()
            for tenant_id, task_id in rows:
                _event(conn, tenant_id, task_id, now, "expired", None)
            return [(r[0], r[1]) for r in rows]

        return await self._writer.submit(op)
