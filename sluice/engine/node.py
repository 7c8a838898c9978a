"""A server node: the store, the dispatcher, the gateway and the timers, tied together.

The API layer talks only to a Node. Everything here is asynchronous and in-process;
`start()` launches the loops, `stop()` ends them and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

import msgspec

from ..clock import Clock, SystemClock
from ..config import Settings
from ..errors import Conflict, NotFound, Unavailable
from ..model import (
    CANCELLED,
    PAUSED,
    READY,
    SCHEDULED,
    SHARED,
    TERMINAL,
    ClaimedTask,
    Finish,
    FunctionConfig,
    SubmitResult,
    TaskRecord,
    Tenant,
    new_task_ids,
)
from ..protocol import Cancel
from ..selector import Selector, TaskSummary
from ..store import ACCEPTED, DeadSelector, Reaped, Store, open_bus, open_store
from .adaptive import AdaptivePools
from .admission import TaskSpec, build_task
from .asks import Asks
from .audit import AuditLog
from .backpressure import Backpressure
from .cron import Schedules
from .dispatcher import Dispatcher
from .events import Events
from .fairness import Fairness
from .functions import FunctionConfigs
from .gateway import Gateway
from .partitions import Partitions
from .pauses import Pauses
from .quotas import Quotas
from .registry import POOL_PREFIX, Registry
from .targets import Targets
from .timers import Timers

log = logging.getLogger("sluice.node")

KEY_PREFIX = "sk_"
RETRY_CHUNK = 1000
BULK_CHUNK = 1000  # tasks per commit in a bulk verb: a big selector never holds the writer long
_encoder = msgspec.json.Encoder()
KEY_CACHE_S = 5.0  # a revoked key stops working within this on other nodes, if a hint is lost
REMOTE_WAIT_S = 0.5  # a long-poll re-reads this often, for ends it was not told about


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Node(FunctionConfigs):
    def __init__(
        self, settings: Settings, store: Store | None = None, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store or open_store(settings)
        self.node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.bus = open_bus(settings, self.node_id)
        self.registry = Registry()
        # (tenant, function) of tasks whose results arrived and whose finishes are being
        # written: still running in the store, no longer holding a slot.
        self.settling: dict[str, tuple[str, str]] = {}  # task id: (tenant, function)
        self.fairness = Fairness(self)
        self.dispatcher = Dispatcher(
            self.store, self.registry, self.clock, settings, self.bus,
            configs=lambda tenant_id: self._functions.get(tenant_id, {}),
            dispatched=self.fairness.dispatched,
            quotas=lambda: self.quotas.limited(),
            settling=self._settling,
            partitions=lambda: self.partitions.claim_filter,
            rooms=lambda tenant_id, functions: self.adaptive.rooms(tenant_id, functions),
            sent=lambda tenant_id, tasks: self.adaptive.sent(tenant_id, tasks),
            held_back=lambda tenant_id, function: self.adaptive.held_back(tenant_id, function),
        )  # fmt: skip
        self.adaptive = AdaptivePools(self)
        self.partitions = Partitions(self, changed=self.dispatcher.resync)
        self.dispatcher.asks = asks = Asks(self, self.dispatcher.wake)
        self.gateway = Gateway(self)
        self.timers = Timers(self)
        self.schedules = Schedules(self)
        self.pauses = Pauses(self)
        self.events = Events(self)
        self.quotas = Quotas(self)
        self.targets = Targets(self)
        self.backpressure = Backpressure(self)
        self.audit = AuditLog(self.store, self.clock, settings.audit_retention_s)
        self.accepting = False
        self._functions: dict[str, dict[str, FunctionConfig]] = {}
        self._reloads: set[asyncio.Task[None]] = set()
        self._keys: dict[str, tuple[str, float]] = {}
        self._waiters: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._loops: list[asyncio.Task[None]] = []
        self._hints: dict[str, Callable[[str], object]] = {  # bus hints, by kind
            "ready": self.dispatcher.hint, "ask": asks.on_ask, "assigned": asks.on_assigned,
            "done": self._wake_waiters, "cancel": self._cancel_hint,
            "functions": self._reload_functions, "revoked": self._forget_key,
            "pauses": self.pauses.forget, "quotas": self.quotas.forget,
        }  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        await self.quotas.start()
        await self.fairness.start()
        await self.targets.start()
        await self.bus.start(self._on_hint)
        await self.partitions.balance()  # before the first claim: which partitions are ours
        self._loops = [
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(self.timers.run(), name="timers"),
        ]
        self.accepting = True

    async def stop(self) -> None:
        self.accepting = False
        for task in self._loops:
            # asyncio.wait_for may swallow a cancel that lands as its wait ends (Python
            # 3.11): ask again until the loop has stopped.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        await self.pauses.stop()
        await self.targets.stop()
        try:
            await self.partitions.release()
        except Exception:
            log.exception("could not hand back the partitions; their leases run out by themselves")
        try:
            await self.timers.step_down()
        except Exception:
            log.exception("could not hand back the timers lease; it runs out by itself")
        for conn in self.registry:
            await conn.close()
        for waiters in self._waiters.values():
            for w in waiters:
                if not w.done():
                    w.cancel()
        await self.bus.stop()
        await self.store.close()

    # -- tenants and keys --------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        if await self.store.get_tenant_by_name(name) is not None:
            raise Conflict(f"tenant {name!r} exists", code="tenant_exists", field="name")
        return await self.store.create_tenant(name, self.clock.now())

    async def ensure_tenant(self, name: str) -> Tenant:
        return await self.store.get_tenant_by_name(name) or await self.create_tenant(name)

    async def create_api_key(self, tenant_id: str) -> str:
        """A new random key; only its hash is stored, so this is the one time it is seen."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        await self.store.create_api_key(tenant_id, hash_key(key), key[:10], self.clock.now())
        return key

    async def authenticate(self, key: str) -> str | None:
        """The tenant of a key. Keys are looked up by their hash, so the comparison of
        secrets never happens character by character."""
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        hit = self._keys.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        tenant_id = await self.store.find_api_key(digest)
        if tenant_id is None:
            return None
        self._keys[digest] = (tenant_id, time.monotonic() + KEY_CACHE_S)
        return tenant_id

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> None:
        digest = await self.store.revoke_api_key(tenant_id, key_id, self.clock.now())
        if digest is None:
            raise NotFound(f"no live key {key_id}", code="key_not_found", field="key_id")
        self._keys.pop(digest, None)  # at once on this node; on the others when the hint lands
        self.bus.publish("revoked", digest)

    async def authenticate_worker(self, key: str) -> str | None:
        """A worker's tenant, or SHARED for a shared pool's worker (the pool key)."""
        pool = self.settings.pool_key
        if pool is not None and hmac.compare_digest(key.encode(), pool.encode()):
            return SHARED
        return await self.authenticate(key)

    def is_admin(self, key: str) -> bool:
        admin = self.settings.admin_key
        return admin is not None and hmac.compare_digest(key.encode(), admin.encode())

    # -- tasks -------------------------------------------------------------------

    async def submit(self, tenant_id: str, specs: list[TaskSpec]) -> list[SubmitResult]:
        if not self.accepting:
            raise Unavailable("the server is not accepting tasks right now", retry_after_s=1)
        self.backpressure.admit(tenant_id, len(specs))  # 429/503 for heavy tenants in overload
        functions = await self.usable(tenant_id)
        now = self.clock.now()
        many = len(specs) > 1
        ids = new_task_ids(len(specs))
        tasks = [
            build_task(
                s,
                functions.get(s.function),
                self.settings,
                now,
                f"tasks[{i}]." if many else "",
                ids[i],
            )
            for i, s in enumerate(specs)
        ]
        await self.quotas.admit(tenant_id, tasks, "tasks[]" if many else "")
        if await self.pauses.rules(tenant_id):
            tasks = [
                msgspec.structs.replace(t, state=PAUSED)
                if self.pauses.holds(tenant_id, t.function, t.tags, t.priority)
                else t
                for t in tasks
            ]
        tasks = await self.fairness.tag(tenant_id, tasks)
        results = await self.store.submit_tasks(tenant_id, tasks, now)
        ready = [t for t, r in zip(tasks, results, strict=True) if r.created and r.state == READY]
        if ready:
            self.dispatcher.notify(
                tenant_id, {t.priority for t in ready}, {t.function for t in ready}
            )
        for r in results:
            if r.created and r.state == SCHEDULED:
                self.timers.schedule(r.run_at, tenant_id, r.id)
        return results

    async def cancel(self, tenant_id: str, task_id: str) -> TaskRecord:
        """Cancel a task that has not ended; a running one's worker is told to stop it."""
        cancelled = await self._cancel_ids(tenant_id, [task_id])
        task = await self.get_task(tenant_id, task_id)
        if not cancelled and task.state != CANCELLED:
            raise Conflict(
                f"task {task_id} already ended {task.state}", code="task_ended", field="task_id"
            )
        return task

    async def _cancel_ids(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        cancelled = await self.store.cancel_tasks(tenant_id, task_ids, self.clock.now())
        stop: dict[str, list[str]] = {}
        for c in cancelled:
            self._task_ended(c.task_id)
            if c.worker:
                stop.setdefault(c.worker, []).append(c.task_id)
        for worker, ids in stop.items():
            if not self._stop_tasks(tenant_id, worker, ids):
                # Connected to another node, perhaps: tell them all.
                self.bus.publish("cancel", f"{tenant_id}|{worker}|{','.join(ids)}")
        return [c.task_id for c in cancelled]

    async def delete(self, tenant_id: str, task_id: str) -> None:
        task = await self.get_task(tenant_id, task_id)
        if not await self.store.delete_tasks(tenant_id, [task_id]):
            raise Conflict(
                f"task {task_id} is {task.state}; cancel it before deleting it",
                code="task_running",
                field="task_id",
            )

    async def list_tasks(
        self, tenant_id: str, selector: Selector, cursor: str, limit: int
    ) -> list[TaskSummary]:
        return await self.store.list_tasks(tenant_id, selector.validate(), cursor, limit)

    async def bulk(self, tenant_id: str, verb: str, selector: Selector) -> int:
        """Cancel, delete or retry every task the selector matches, a chunk per commit, so
        a hundred thousand tasks never hold the writer for long; returns how many."""
        selector.validate()
        actions: dict[str, Callable[[str, list[str]], Awaitable[list[str]]]] = {
            "cancel": self._cancel_ids,
            "delete": self.store.delete_tasks,
            "retry": self._retry_dead,
        }
        act = functools.partial(actions[verb], tenant_id)
        total, before = 0, ""
        while True:
            page = await self.store.list_tasks(tenant_id, selector, before, BULK_CHUNK)
            if page:
                total += len(await act([t.id for t in page]))
                before = page[-1].id
            if len(page) < BULK_CHUNK:
                return total

    async def retry(self, tenant_id: str, task_id: str) -> TaskRecord:
        """Run a dead task again: a new attempt series; its history stays."""
        task = await self.get_task(tenant_id, task_id)
        if not await self._retry_dead(tenant_id, [task_id]):
            raise Conflict(
                f"task {task_id} is {task.state}; only dead tasks are retried",
                code="task_not_dead",
                field="task_id",
            )
        return await self.get_task(tenant_id, task_id)

    async def retry_dead(self, tenant_id: str, selector: DeadSelector) -> int:
        """Retry every dead task the selector matches, a chunk per commit."""
        total, after = 0, ""
        while True:
            chunk = await self.store.list_dead(tenant_id, selector, after, RETRY_CHUNK)
            if not chunk:
                return total
            total += len(await self._retry_dead(tenant_id, [t.id for t in chunk]))
            after = chunk[-1].id

    async def _retry_dead(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        functions = await self.usable(tenant_id)
        allowance = {name: f.retry.max_attempts for name, f in functions.items()}
        retried = await self.store.retry_dead(tenant_id, task_ids, allowance, self.clock.now())
        if retried:
            self.dispatcher.notify(tenant_id)
        return retried

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRecord:
        task = await self.store.get_task(tenant_id, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}", code="task_not_found", field="task_id")
        return task

    async def wait(self, tenant_id: str, task_id: str, timeout: float) -> TaskRecord:
        """The task once it is terminal, or as it is when `timeout` runs out.

        Woken at once by an end this node sees or hears of on the bus; it also re-reads
        every REMOTE_WAIT_S, in case a hint from another node was lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[task_id].append(waiter)  # before the read, so no finish slips between
        try:
            while True:
                task = await self.get_task(tenant_id, task_id)
                left = deadline - loop.time()
                if task.state in TERMINAL or left <= 0:
                    return task
                if waiter.done():
                    # Woken, yet not ended on this read: the read may have begun before
                    # the end was written. Wait afresh, but read again first.
                    self._waiters[task_id].remove(waiter)
                    waiter = loop.create_future()
                    self._waiters[task_id].append(waiter)
                    continue
                # One node (SQLite) sees every end itself; in a cluster a hint may be lost.
                poll = min(left, REMOTE_WAIT_S) if self.settings.is_postgres else left
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), poll)
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    del self._waiters[task_id]

    async def lookup_claimed(self, tenant_id: str, task_id: str) -> ClaimedTask | None:
        """Rebuild what was delivered, for a result whose delivery this node did not make."""
        if tenant_id == SHARED:  # a shared pool's task: anyone's
            found = await self.store.task_tenant(task_id)
            if found is None:
                return None
            tenant_id = found
        task = await self.store.get_task(tenant_id, task_id)
        if task is None:
            return None
        return ClaimedTask(
            tenant_id=tenant_id,
            id=task.id,
            function=task.function,
            payload=task.payload,
            attempt=task.attempt,
            max_attempts=task.max_attempts,
            timeout_s=task.timeout_s,
            priority=task.priority,
            created_at=task.series_at or task.created_at,
            dispatched_at=task.dispatched_at or task.created_at,
            lease_until=task.lease_until or 0.0,
            throttles=task.throttles,
            retry=task.retry,
            tags=task.tags,
        )

    # -- what the loops report ---------------------------------------------------

    def finished(self, finishes: list[Finish], outcomes: list[str]) -> None:
        requeued = set()
        for f, outcome in zip(finishes, outcomes, strict=True):
            if outcome != ACCEPTED:
                continue
            self.backpressure.finished += 1
            if f.next_state in TERMINAL:
                self._task_ended(f.task_id)
            elif f.next_state == READY:
                requeued.add(f.tenant_id)
            elif f.next_state == SCHEDULED and f.run_at is not None:
                self.timers.schedule(f.run_at, f.tenant_id, f.task_id)
        for tenant_id in requeued:
            self.dispatcher.notify(tenant_id)

    def expired(self, tasks: list[tuple[str, str]]) -> None:
        for _tenant_id, task_id in tasks:
            self._task_ended(task_id)

    def reaped(self, reaped: list[Reaped]) -> None:
        for r in reaped:
            if r.state in TERMINAL:
                self._task_ended(r.task_id)

    async def hold_requeued(self, reaped: list[Reaped]) -> None:
        """A task whose lease was lost went back to ready: hold it if a pause matches."""
        by_tenant: dict[str, list[str]] = {}
        for r in reaped:
            if r.state == READY:
                by_tenant.setdefault(r.tenant_id, []).append(r.task_id)
        for tenant_id, ids in by_tenant.items():
            if not await self.pauses.rules(tenant_id):
                continue
            held = []
            for task_id in ids:
                task = await self.store.get_task(tenant_id, task_id)
                if task and self.pauses.holds(tenant_id, task.function, task.tags, task.priority):
                    held.append(task_id)
            if held:
                await self.store.hold_tasks(tenant_id, held)

    def _task_ended(self, task_id: str) -> None:
        self._wake_waiters(task_id)
        self.bus.publish("done", task_id)

    def _settling(self, tenant_id: str, function: str | None) -> tuple[str, ...]:
        """A tenant's tasks (of one function, or all) whose finishes are being written:
        the store may still count them as running."""
        return tuple(
            task_id
            for task_id, (tenant, fn) in self.settling.items()
            if tenant == tenant_id and (function is None or fn == function)
        )

    def _stop_tasks(self, tenant_id: str, worker: str, task_ids: list[str]) -> bool:
        if worker.startswith(POOL_PREFIX):  # a shared pool's worker runs the task
            tenant_id = SHARED
        conn = self.registry.get(tenant_id, worker)
        if conn is None:
            return False
        conn.send(_encoder.encode(Cancel(task_ids)))
        return True

    def _on_hint(self, kind: str, data: str) -> None:
        """A hint from another node (see store/bus.py); items are newline-separated."""
        if kind == "resync":
            self.dispatcher.resync()
            for tenant_id in list(self._functions):
                self._reload_functions(tenant_id)
            self._keys.clear()
            self.pauses.forget()
            self.quotas.resync()
            return
        handle = self._hints.get(kind)
        for item in data.split("\n") if handle is not None else ():
            handle(item)  # type: ignore[misc]

    def _cancel_hint(self, item: str) -> None:
        tenant_id, worker, ids = item.split("|", 2)
        self._stop_tasks(tenant_id, worker, ids.split(","))

    def _forget_key(self, digest: str) -> None:
        self._keys.pop(digest, None)

    def _wake_waiters(self, task_id: str) -> None:
        for waiter in self._waiters.get(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)
