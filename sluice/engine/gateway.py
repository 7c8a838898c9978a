"""The worker gateway: speaks the worker protocol (docs/protocol.md) on one connection.

It is transport-neutral: the API layer hands it `receive` and `send` callables of a
websocket. Results are decided here (success, retry with backoff, dead), written in
one fenced batch per frame, and acknowledged so the worker can forget them.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from ..config import Settings
from ..errors import InvalidRequest
from ..model import (
    CANCELLED,
    DEAD,
    FUNCTION_NAME,
    PAUSED,
    READY,
    SCHEDULED,
    SHARED,
    SUCCEEDED,
    ClaimedTask,
    Finish,
    FunctionConfig,
    RetryPolicy,
)
from ..policy.backoff import next_after_failure
from ..protocol import (
    Ack,
    AckItem,
    Credit,
    ErrorFrame,
    Heartbeat,
    Hello,
    Release,
    ResultItem,
    Results,
    RunningTask,
    Welcome,
    WorkerFrame,
)
from ..rawjson import MAX_DEPTH, within_depth
from ..store import ACCEPTED, DUPLICATE, LeaseRenewal
from .admission import check_function
from .registry import POOL_PREFIX, WorkerConn
from .targets import TARGET_PREFIX

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("sluice.gateway")

_decoder = msgspec.json.Decoder(WorkerFrame)
_encoder = msgspec.json.Encoder()
_config_decoder = msgspec.json.Decoder(dict[str, object])
_policy_decoder = msgspec.json.Decoder(RetryPolicy)

MAX_SLOTS = 10_000
# Worker ids are written into leases and logs: printable, no spaces, bounded.
WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,200}$")
_OUTCOMES = {
    "ok": "succeeded",
    "error": "failed",
    "reject": "rejected",
    "retry": "retry",
    "throttled": "throttled",
    "timeout": "timed_out",
    "cancelled": "cancelled",
}


class ProtocolError(Exception):
    """A frame the protocol does not allow where it came: the connection is closed."""


class Gateway:
    def __init__(self, node: Node, rng: random.Random | None = None) -> None:
        self._node = node
        self._rng = rng or random.Random()

    async def serve(
        self,
        tenant_id: str,
        receive: Callable[[], Awaitable[bytes | str]],
        send: Callable[[bytes], Awaitable[None]],
    ) -> bool:
        """Serve one worker until it leaves; returns True if it was refused at hello."""
        node = self._node
        first = _decoder.decode(await receive())
        if not isinstance(first, Hello):
            await send(_encoder.encode(ErrorFrame("protocol", "the first frame must be hello")))
            return True
        try:
            if not WORKER_ID.match(first.worker_id):
                raise InvalidRequest(f"worker ids match {WORKER_ID.pattern}")
            if first.worker_id.startswith((POOL_PREFIX, TARGET_PREFIX)):
                raise InvalidRequest(
                    f"worker ids may not start with {POOL_PREFIX!r} or {TARGET_PREFIX!r}"
                )
            configs = _function_configs(first, node.settings)
            await self._check_room(tenant_id, configs)
        except InvalidRequest as exc:
            await send(_encoder.encode(ErrorFrame(exc.code, exc.message)))
            return True
        await node.register_functions(tenant_id, configs)
        now = node.clock.now()
        # A shared pool's worker serves every tenant (tenant_id is SHARED); its leases
        # carry a prefix no tenant worker's id can take.
        worker_id = POOL_PREFIX + first.worker_id if tenant_id == SHARED else first.worker_id
        conn = WorkerConn(
            tenant_id,
            worker_id,
            max(0, min(first.slots, MAX_SLOTS)),
            tuple(sorted(c.name for c in configs)),
            send,
            now,
        )
        for held in first.running:
            conn.inflight[held.id] = None
        # The old connection of a reconnecting worker leaves first, so no claim lands on
        # it after the reconcile; welcome is queued before any delivery can be.
        old = node.registry.get(tenant_id, worker_id)
        if old is not None:
            node.registry.remove(old)
            await old.close()
        await self._reconcile(tenant_id, worker_id, first)
        conn.send(
            _encoder.encode(
                Welcome(
                    first.worker_id,
                    node.settings.heartbeat_s,
                    node.settings.lease_s,
                    max_frame_bytes=node.settings.max_frame_bytes,
                    max_result_bytes=node.settings.max_result_bytes,
                )
            )
        )
        node.registry.add(conn)
        log.info("worker %s connected: %d slots, %s", conn.worker_id, conn.slots, conn.functions)
        node.dispatcher.wake()
        try:
            while True:
                frame = _decoder.decode(await receive())
                conn.last_seen = node.clock.now()
                if isinstance(frame, Results):
                    await self._on_results(conn, frame.items)
                elif isinstance(frame, Credit):
                    conn.slots = max(0, min(frame.slots, MAX_SLOTS))
                    node.dispatcher.wake()
                elif isinstance(frame, Release):
                    await self._on_release(conn, frame.items)
                elif isinstance(frame, Heartbeat):
                    pass
                elif isinstance(frame, Hello):
                    raise ProtocolError("hello comes once, as the first frame")
        finally:
            node.registry.remove(conn)
            await conn.close()
            log.info("worker %s disconnected", conn.worker_id)

    async def _check_room(self, tenant_id: str, configs: list[FunctionConfig]) -> None:
        """A tenant holds at most `max_functions` functions, however many workers name
        new ones."""
        node = self._node
        known = await node.functions(tenant_id)
        new = {c.name for c in configs} - known.keys()
        if new and len(known) + len(new) > node.settings.max_functions:
            raise InvalidRequest(
                f"the tenant has {len(known)} functions and a limit of "
                f"{node.settings.max_functions}; this worker names {len(new)} more"
            )

    async def results(self, conn: WorkerConn, items: list[ResultItem]) -> None:
        """Answers of an HTTP target (engine/targets.py), written like a worker's."""
        await self._on_results(conn, items)

    async def _on_results(self, conn: WorkerConn, items: list[ResultItem]) -> None:
        node = self._node
        now = node.clock.now()
        held = [conn.take(item.id, item.attempt) for item in items]
        # The slots are free now, whatever the store says; until the finishes are
        # written, the store still counts these tasks as running, so claims under a
        # concurrency cap or a reserve are told how many of those are settling.
        settling = {t.id: (t.tenant_id, t.function) for t in held if t is not None}
        node.settling.update(settling)
        node.adaptive.answered(conn, items, held)  # throttles start or cut a pool's limit
        node.dispatcher.wake()
        await self._finish(conn, items, held, now, settling)

    async def _finish(
        self,
        conn: WorkerConn,
        items: list[ResultItem],
        held: list[ClaimedTask | None],
        now: float,
        settling: dict[str, tuple[str, str]],
    ) -> None:
        node = self._node
        try:
            await self._write(conn, items, held, now)
        finally:  # written (or failed): the store's running count is right again
            for task_id in settling:
                node.settling.pop(task_id, None)

    async def _write(
        self, conn: WorkerConn, items: list[ResultItem], held: list[ClaimedTask | None], now: float
    ) -> None:
        node = self._node
        tasks = [
            task if task is not None else await node.lookup_claimed(conn.tenant_id, item.id)
            for item, task in zip(items, held, strict=True)
        ]
        # A retry that a pause matches is held: know each tenant's pauses (a shared
        # pool's results are of many tenants).
        for tenant_id in {t.tenant_id for t in tasks if t is not None} or {conn.tenant_id}:
            await node.pauses.rules(tenant_id)
        finishes = [
            self._decide(conn, item, task, now) for item, task in zip(items, tasks, strict=True)
        ]
        outcomes = await node.store.finish_attempts(finishes, now)
        node.finished(finishes, outcomes)
        self._ack(conn, finishes, outcomes)

    @staticmethod
    def _ack(conn: WorkerConn, finishes: list[Finish], outcomes: list[str]) -> None:
        conn.send(
            _encoder.encode(
                Ack(
                    [
                        AckItem(f.task_id, f.attempt, o in (ACCEPTED, DUPLICATE))
                        for f, o in zip(finishes, outcomes, strict=True)
                    ]
                )
            )
        )

    async def _reconcile(self, tenant_id: str, worker_id: str, hello: Hello) -> None:
        """A (re)connecting worker says what it holds: renew those leases at once (it may
        have been away for a while), and hand back at no attempt's cost what is leased to
        it but it never received (a delivery lost with the old connection)."""
        node = self._node
        now = node.clock.now()
        held = {h.id for h in hello.running}
        if held:
            renewal = LeaseRenewal(tenant_id, worker_id, tuple(held))
            await node.store.extend_leases([renewal], now + node.settings.lease_s)
        leased = await node.store.leased_to(tenant_id, worker_id)
        lost = [lease for lease in leased if lease[0] not in held]
        if lost and await node.store.release_tasks(tenant_id, worker_id, lost, now):
            node.dispatcher.notify(tenant_id)

    async def _on_release(self, conn: WorkerConn, items: list[RunningTask]) -> None:
        node = self._node
        # Fenced on the dispatch delivered on this connection (the frame names only id and
        # attempt). A task held since before a reconnect came on the old one: its claim is
        # the one leased to the worker now, as nothing can claim it while it is held here.
        before = {i.id for i in items if i.id in conn.inflight and conn.inflight[i.id] is None}
        held = []
        for item in items:
            if (task := conn.take(item.id, item.attempt)) is not None:
                held.append((item.id, item.attempt, task.dispatched_at))
        if before:
            named = {(i.id, i.attempt) for i in items if i.id in before}
            leased = await node.store.leased_to(conn.tenant_id, conn.worker_id)
            held += [lease for lease in leased if lease[:2] in named]
        released = await node.store.release_tasks(
            conn.tenant_id, conn.worker_id, held, node.clock.now()
        )
        if released:
            log.info("worker %s handed back %d tasks", conn.worker_id, len(released))
            node.dispatcher.notify(conn.tenant_id)

    def _decide(
        self, conn: WorkerConn, item: ResultItem, task: ClaimedTask | None, now: float
    ) -> Finish:
        """The attempt's fenced finish, with the task's next state decided by policy."""
        result = bytes(item.result) or b"null"
        if item.outcome == "ok":
            refused = _refuse_result(result, self._node.settings.max_result_bytes)
            if refused is not None:
                # Stored, it could not be served back (too big, or too deep to decode):
                # the attempt fails, and retrying would only make the same result again.
                item = msgspec.structs.replace(
                    item, outcome="reject", error_type=refused[0], error_message=refused[1]
                )
        tenant_id = task.tenant_id if task is not None else conn.tenant_id
        finish = Finish(
            tenant_id=tenant_id,
            task_id=item.id,
            attempt=item.attempt,
            worker=conn.worker_id,
            next_state=SUCCEEDED,
            outcome=_OUTCOMES.get(item.outcome, "failed"),
            dispatched_at=task.dispatched_at if task else None,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )
        if item.outcome == "ok":
            return msgspec.structs.replace(finish, result=result)
        if item.outcome == "cancelled":
            return msgspec.structs.replace(finish, next_state=CANCELLED)
        failed = msgspec.structs.replace(
            finish,
            next_state=DEAD,
            error_type=item.error_type,
            error_message=item.error_message,
            traceback=item.traceback,
        )
        if task is None:  # unknown task: the fenced write refuses it anyway
            return failed
        policy = (
            _policy_decoder.decode(task.retry)
            if task.retry
            else self._node.retry_policy(tenant_id, task.function)
        )
        state, run_at = next_after_failure(
            policy,
            attempt=task.attempt,
            max_attempts=task.max_attempts,
            created_at=task.created_at,
            now=now,
            rng=self._rng,
            retryable=item.outcome != "reject",
            delay=item.retry_after_s if item.outcome in ("retry", "throttled") else None,
            throttles=task.throttles,
            throttled=item.outcome == "throttled",
        )
        if state in (READY, SCHEDULED) and self._node.pauses.holds(
            tenant_id, task.function, task.tags, task.priority
        ):
            state = PAUSED  # held like a new submission; released, it runs at run_at
        return msgspec.structs.replace(
            failed, next_state=state, run_at=run_at, throttled=item.outcome == "throttled"
        )


def _function_configs(hello: Hello, settings: Settings) -> list[FunctionConfig]:
    """The configs a hello registers, held to the rules `PUT /v1/functions/{name}` is."""
    if not hello.functions:
        raise InvalidRequest("a worker must serve at least one function")
    if len(hello.functions) > settings.max_functions_per_worker:
        raise InvalidRequest(
            f"a worker serves at most {settings.max_functions_per_worker} functions "
            f"(this one named {len(hello.functions)})"
        )
    configs = []
    for spec in hello.functions:
        if not FUNCTION_NAME.match(spec.name):
            raise InvalidRequest(f"function names match {FUNCTION_NAME.pattern}")
        try:
            fields = _config_decoder.decode(spec.config)
            fields["name"] = spec.name
            config = msgspec.convert(fields, FunctionConfig)
        except (msgspec.ValidationError, RecursionError) as exc:
            raise InvalidRequest(f"function {spec.name}: {_cut(str(exc))}") from exc
        if config.target is not None:
            raise InvalidRequest(
                f"function {spec.name}: a worker serves it; HTTP targets are set with "
                "PUT /v1/functions/{name}"
            )
        check_function(config, settings, f"functions.{spec.name}.")
        configs.append(config)
    return configs


def _refuse_result(result: bytes, limit: int) -> tuple[str, str] | None:
    """Why a handler's result cannot be kept, if it cannot: (error type, message)."""
    if len(result) > limit:
        return "ResultTooLarge", f"the result takes {len(result)} bytes; the limit is {limit}"
    if not within_depth(result):
        return "ResultTooDeep", f"the result nests deeper than {MAX_DEPTH} levels"
    return None


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
