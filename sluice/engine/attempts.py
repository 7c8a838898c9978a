"""The ends of attempts, as the results of workers and HTTP targets alike report them:
each attempt's next state decided by policy (success, a retry with backoff, dead),
written in one fenced batch per frame, acknowledged so the worker can forget them, and
reported to what follows an end (`Finishes`: engine/outcomes.py).
"""

from __future__ import annotations

import logging
import random
from typing import Protocol

import msgspec

from ..contract import RetryPolicy
from ..model import (
    CANCELLED,
    DEAD,
    MAX_ATTEMPT,
    PAUSED,
    READY,
    SCHEDULED,
    SHARED,
    SUCCEEDED,
    ClaimedTask,
    Finish,
    storable,
)
from ..policy.backoff import next_after_failure
from ..protocol import Ack, AckItem, ResultItem
from ..rawjson import MAX_DEPTH, within_depth
from ..store import ACCEPTED, DUPLICATE, STALE
from ..store.notifications import event_of, notices, with_task
from .adaptive import AdaptivePools
from .functions import Functions
from .logs import TaskLogs, worker_time
from .meters import Meters
from .pauses import Pauses
from .queues import Queues
from .receivers import Receivers
from .registry import Settling, WorkerConn
from .runtime import Runtime

_encoder = msgspec.json.Encoder()
_policy_decoder = msgspec.json.Decoder(RetryPolicy)


log = logging.getLogger("sluice.attempts")


def _storable(text: str | None) -> str | None:
    return None if text is None else storable(text)


_OUTCOMES = {
    "ok": "succeeded",
    "error": "failed",
    "reject": "rejected",
    "retry": "retry",
    "throttled": "throttled",
    "timeout": "timed_out",
    "cancelled": "cancelled",
}


class Finishes(Protocol):
    """Told of every batch of finishes written, with the store's answer for each."""

    def finished(self, finishes: list[Finish], outcomes: list[str]) -> None: ...


class Finisher(Protocol):
    """What writes the results of attempts (Attempts; a test's stand-in)."""

    async def finish(self, conn: WorkerConn, items: list[ResultItem]) -> None: ...


class Attempts:
    def __init__(
        self,
        rt: Runtime,
        functions: Functions,
        pauses: Pauses,
        adaptive: AdaptivePools,
        queues: Queues,
        settling: Settling,
        finishes: Finishes,
        logs: TaskLogs,
        rng: random.Random | None = None,
        meters: Meters | None = None,
        receivers: Receivers | None = None,
    ) -> None:
        self._rt = rt
        self._hooks = receivers.hooks if receivers is not None else {}
        self._functions = functions
        self._pauses = pauses
        self._adaptive = adaptive
        self._queues = queues
        self._settling = settling
        self._finishes = finishes
        self._logs = logs
        self._rng = rng or random.Random()
        self._meters = meters or Meters(rt)

    async def finish(self, conn: WorkerConn, items: list[ResultItem]) -> None:
        """Results that arrived on a connection: free their slots, write their finishes."""
        now = self._rt.clock.now()
        held = [conn.take(item.id, item.attempt) for item in items]
        # The slots are free now, whatever the store says; until the finishes are
        # written, the store still counts these tasks as running, so claims under a
        # concurrency cap or a reserve are told how many of those are settling.
        settling = {t.id: (t.tenant_id, t.function) for t in held if t is not None}
        self._settling.add(settling)
        self._adaptive.answered(conn, items, held)  # throttles start or cut a pool's limit
        self._queues.wake()
        try:
            await self._write(conn, items, held, now)
        finally:  # written (or failed): the store's running count is right again
            self._settling.remove(settling)

    async def _write(
        self, conn: WorkerConn, items: list[ResultItem], held: list[ClaimedTask | None], now: float
    ) -> None:
        tasks = [
            task if task is not None else await self._claimed(conn.tenant_id, item.id)
            for item, task in zip(items, held, strict=True)
        ]
        # A retry that a pause matches is held: know each tenant's pauses (a shared
        # pool's results are of many tenants).
        for tenant_id in {t.tenant_id for t in tasks if t is not None} or {conn.tenant_id}:
            await self._pauses.rules(tenant_id)
        finishes = [
            self._decide(conn, item, task, now) for item, task in zip(items, tasks, strict=True)
        ]
        began = self._rt.clock.monotonic()
        outcomes = await self._written(finishes, now)
        self._meters.store_op("finish", self._rt.clock.monotonic() - began)
        self._meters.attempts_ended(finishes, outcomes, tasks)
        self._finishes.finished(finishes, outcomes)
        self._logs.wake(f.task_id for f in finishes if f.logs)
        conn.send(
            _encoder.encode(
                Ack(
                    [
                        AckItem(i.id, i.attempt, o in (ACCEPTED, DUPLICATE))
                        for i, o in zip(items, outcomes, strict=True)
                    ]
                )
            )
        )

    async def _written(self, finishes: list[Finish], now: float) -> list[str]:
        """The store's outcome of each finish. A write the store fails is tried again a
        finish at a time: one the store cannot take while it answers (a value no rule
        here foresaw) is refused alone, acknowledged as not accepted, so the frame's other
        results are written, and the worker, whose connection a failure closed, does not
        send the same frame again on reconnecting, and fail again, for ever. Refused, the
        attempt's lease runs out and the task is retried or ends as its policy says. When
        the store does not answer at all, the error goes on (the worker sends again)."""
        store = self._rt.store
        try:
            return await store.finish_attempts(finishes, now)
        except Exception:
            if not finishes:
                raise
        outcomes = []
        for finish in finishes:
            try:
                outcomes += await store.finish_attempts([finish], now)
            except Exception as exc:
                await store.get_task(finish.tenant_id, finish.task_id)  # raises if down
                log.error("refused the result of task %s attempt %d: the store cannot "
                          "write it (%s)", finish.task_id, finish.attempt, exc)  # fmt: skip
                outcomes.append(STALE)
        return outcomes

    async def _claimed(self, tenant_id: str, task_id: str) -> ClaimedTask | None:
        """Rebuild what was delivered, for a result whose delivery this node did not make
        (the worker reconnected here)."""
        store = self._rt.store
        if tenant_id == SHARED:  # a shared pool's task: anyone's
            found = await store.task_tenant(task_id)
            if found is None:
                return None
            tenant_id = found
        task = await store.get_task(tenant_id, task_id)
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
            ready_at=task.ready_at,
            webhooks=task.webhooks,
        )

    def _decide(
        self, conn: WorkerConn, item: ResultItem, task: ClaimedTask | None, now: float
    ) -> Finish:
        """The attempt's fenced finish, with the task's next state decided by policy and
        the notifications its end writes (a dictionary lookup for most functions)."""
        finish = self._next(conn, item, task, now)
        if task is not None:
            hooks = self._hooks.get((finish.tenant_id, task.function))
            if task.webhooks:  # its own, given at submit (rare)
                hooks = with_task(hooks, task.webhooks)
            if hooks:
                found = notices(hooks, task.function, event_of(finish.next_state))
                if found:
                    return msgspec.structs.replace(finish, notify=found)
        return finish

    def _next(
        self, conn: WorkerConn, item: ResultItem, task: ClaimedTask | None, now: float
    ) -> Finish:
        result = bytes(item.result) or b"null"
        if item.outcome == "ok":
            refused = _refuse_result(result, self._rt.settings.max_result_bytes)
            if refused is not None:
                # Stored, it could not be served back (too big, or too deep to decode):
                # the attempt fails, and retrying would only make the same result again.
                item = msgspec.structs.replace(
                    item, outcome="reject", error_type=refused[0], error_message=refused[1]
                )
        tenant_id = task.tenant_id if task is not None else conn.tenant_id
        # An attempt no store could hold was never given: 0 matches no lease, and the
        # fenced write refuses it without failing the frame's other results.
        attempt = item.attempt if abs(item.attempt) <= MAX_ATTEMPT else 0
        finish = Finish(
            tenant_id=tenant_id,
            task_id=item.id,
            attempt=attempt,
            worker=conn.worker_id,
            next_state=SUCCEEDED,
            outcome=_OUTCOMES.get(item.outcome, "failed"),
            dispatched_at=task.dispatched_at if task else None,
            ready_at=task.ready_at if task else None,
            held_s=task.held_s if task else 0.0,
            started_at=worker_time(item.started_at, task.dispatched_at if task else now, now),
            finished_at=worker_time(item.finished_at, task.dispatched_at if task else now, now),
            logs=self._logs.final(conn, item.id, attempt, item.logs),
            log_drop=item.drop,
        )
        if item.outcome == "ok":
            return msgspec.structs.replace(finish, result=result)
        if item.outcome == "cancelled":
            return msgspec.structs.replace(finish, next_state=CANCELLED)
        # A handler's (or an HTTP target's) error text may carry a NUL, which PostgreSQL's
        # text refuses: the whole write of the results failed, and the worker sent them
        # again on reconnecting, for ever, leaving their tasks running.
        failed = msgspec.structs.replace(
            finish,
            next_state=DEAD,
            error_type=_storable(item.error_type),
            error_message=_storable(item.error_message),
            traceback=_storable(item.traceback),
        )
        if task is None:  # unknown task: the fenced write refuses it anyway
            return failed
        policy = (
            _policy_decoder.decode(task.retry)
            if task.retry
            else self._functions.retry_policy(tenant_id, task.function)
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
        if state in (READY, SCHEDULED) and self._pauses.holds(
            tenant_id, task.function, task.tags, task.priority
        ):
            state = PAUSED  # held like a new submission; released, it runs at run_at
        return msgspec.structs.replace(
            failed, next_state=state, run_at=run_at, throttled=item.outcome == "throttled"
        )


def _refuse_result(result: bytes, limit: int) -> tuple[str, str] | None:
    """Why a handler's result cannot be kept, if it cannot: (error type, message)."""
    if len(result) > limit:
        return "ResultTooLarge", f"the result takes {len(result)} bytes; the limit is {limit}"
    if not within_depth(result):
        return "ResultTooDeep", f"the result nests deeper than {MAX_DEPTH} levels"
    return None
