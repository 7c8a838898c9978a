"""The ends of attempts alone: written fenced, acknowledged, retried by policy with a
seeded random source, reported to `Finishes` (engine/attempts.py)."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from sluice.contract import FunctionConfig, RetryPolicy, Selector
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.attempts import Attempts
from sluice.engine.logs import TaskLogs
from sluice.engine.pauses import Pauses
from sluice.engine.registry import Registry, Settling, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import DEAD, PAUSED, RUNNING, SCHEDULED, SUCCEEDED, ClaimedTask, Finish
from sluice.policy.backoff import next_after_failure
from sluice.protocol import Ack, ResultItem
from sluice.store import ACCEPTED, STALE
from tests.engine.conftest import (
    FN,
    Lower,
    Wire,
    claim,
    lower,
    make_task,
    make_tenant,
    state_of,
    until,
    with_settings,
    worker,
)

POLICY = RetryPolicy(max_attempts=5, base_s=10.0, min_backoff_s=1.0, cap_s=100.0)
SEED = 3


class Told:
    """The `Finishes` interface: remembers what it was told."""

    def __init__(self) -> None:
        self.finishes: list[tuple[Finish, str]] = []

    def finished(self, finishes: list[Finish], outcomes: list[str]) -> None:
        self.finishes += zip(finishes, outcomes, strict=True)


class Setup:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.below: Lower = lower(rt)
        self.pauses = Pauses(rt, self.below.fairness, self.below.queues)
        adaptive = AdaptivePools(rt, Registry(), self.below.functions, self.below.queues)
        self.told = Told()
        self.attempts = Attempts(rt, self.below.functions, self.pauses, adaptive,
                                 self.below.queues, Settling(), self.told, TaskLogs(rt),
                                 rng=random.Random(SEED))  # fmt: skip
        self.wire = Wire()
        self.tenant = ""
        self.conn: WorkerConn | None = None

    async def running(self, **spec: Any) -> tuple[str, WorkerConn, ClaimedTask]:
        """A task of the tenant, claimed by its worker w1 and delivered to it."""
        if self.conn is None:
            self.tenant = await make_tenant(self.rt)
            config = FunctionConfig(name=FN, retry=POLICY)
            await self.below.functions.register(self.tenant, [config])
            self.conn = worker(self.rt, self.tenant, self.wire)
        function = self.below.functions.cached(self.tenant, FN)
        assert function is not None
        await make_task(self.rt, self.tenant, function, **spec)
        (task,) = await claim(self.rt, self.tenant, "w1")
        self.conn.deliver([task])
        return self.tenant, self.conn, task

    def result(self, task: ClaimedTask, outcome: str, result: bytes = b"null") -> ResultItem:
        now = self.rt.clock.now()
        return ResultItem(task.id, task.attempt, outcome, now, now, msgspec.Raw(result),
                          error_type="Boom", error_message="boom")  # fmt: skip


async def test_a_result_is_written_fenced_acknowledged_and_told(rt: Runtime) -> None:
    s = Setup(rt)
    tenant, conn, task = await s.running()
    s.below.queues.woken.clear()

    await s.attempts.finish(conn, [s.result(task, "ok", b'{"sent":true}')])

    stored = await rt.store.get_task(tenant, task.id)
    assert stored is not None and (stored.state, stored.result) == (SUCCEEDED, b'{"sent":true}')
    assert conn.inflight == {}  # the slot is free
    assert s.below.queues.woken.is_set()
    assert [(f.task_id, f.next_state, o) for f, o in s.told.finishes] == [
        (task.id, SUCCEEDED, ACCEPTED)
    ]
    acks = await until(lambda: s.wire.of(Ack))
    assert [(i.id, i.accepted) for i in acks[0].items] == [(task.id, True)]
    await conn.close()


async def test_a_result_from_a_worker_not_holding_the_lease_is_refused(rt: Runtime) -> None:
    s = Setup(rt)
    tenant, conn, task = await s.running()
    impostor_wire = Wire()
    impostor = worker(rt, tenant, impostor_wire, name="w2")

    await s.attempts.finish(impostor, [s.result(task, "ok")])

    assert await state_of(rt, tenant, task.id) == RUNNING
    assert [o for _, o in s.told.finishes] == [STALE]
    acks = await until(lambda: impostor_wire.of(Ack))
    assert [(i.id, i.accepted) for i in acks[0].items] == [(task.id, False)]
    await conn.close()
    await impostor.close()


async def test_a_result_the_store_cannot_write_is_refused_alone(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # A value no rule foresaw fails the store's write of the whole frame; its connection
    # closed, the worker sent the same frame again on reconnecting, for ever.
    s = Setup(rt)
    tenant, conn, poison = await s.running()
    _, _, fine = await s.running()
    store = rt.store
    finish_attempts = store.finish_attempts

    async def failing(finishes: list[Finish], now: float) -> list[str]:
        if any(f.task_id == poison.id for f in finishes):
            raise ValueError("invalid byte sequence for encoding")
        return await finish_attempts(finishes, now)

    store.finish_attempts = failing  # type: ignore[method-assign]
    try:
        await s.attempts.finish(conn, [s.result(poison, "ok"), s.result(fine, "ok")])
    finally:
        store.finish_attempts = finish_attempts  # type: ignore[method-assign]

    assert await state_of(rt, tenant, fine.id) == SUCCEEDED
    assert await state_of(rt, tenant, poison.id) == RUNNING  # its lease runs out, then a retry
    acks = await until(lambda: s.wire.of(Ack))
    assert [(i.id, i.accepted) for i in acks[0].items] == [(poison.id, False), (fine.id, True)]
    assert f"refused the result of task {poison.id}" in caplog.text
    await conn.close()


async def test_results_are_not_refused_when_the_store_is_down(rt: Runtime) -> None:
    s = Setup(rt)
    _, conn, task = await s.running()
    store = rt.store
    finish_attempts, get_task = store.finish_attempts, store.get_task

    async def down(*args: Any) -> Any:
        raise ConnectionRefusedError("the database does not answer")

    store.finish_attempts = store.get_task = down  # type: ignore[method-assign]
    try:
        with pytest.raises(ConnectionRefusedError):
            await s.attempts.finish(conn, [s.result(task, "ok")])
    finally:
        store.finish_attempts, store.get_task = finish_attempts, get_task  # type: ignore[method-assign]
    assert s.wire.of(Ack) == []  # nothing acknowledged: the worker sends it again
    await conn.close()


async def test_a_failure_is_retried_per_policy_with_the_seeded_random_source(
    rt: Runtime,
) -> None:
    s = Setup(rt)
    tenant, conn, task = await s.running()

    await s.attempts.finish(conn, [s.result(task, "error")])

    expected = next_after_failure(
        POLICY, attempt=task.attempt, max_attempts=task.max_attempts,
        created_at=task.created_at, now=rt.clock.now(), rng=random.Random(SEED),
    )  # fmt: skip
    stored = await rt.store.get_task(tenant, task.id)
    assert stored is not None
    assert expected[0] == SCHEDULED
    assert (stored.state, stored.run_at) == expected
    (attempt,) = await rt.store.list_attempts(tenant, task.id)
    assert (attempt.outcome, attempt.error_type) == ("failed", "Boom")
    await conn.close()


async def test_a_rejection_and_a_result_over_the_limit_go_straight_to_dead(
    rt: Runtime,
) -> None:
    s = Setup(with_settings(rt, max_result_bytes=10))
    _, conn, task = await s.running()
    _, _, big = await s.running()

    await s.attempts.finish(conn, [s.result(task, "reject")])
    await s.attempts.finish(conn, [s.result(big, "ok", b'"' + b"x" * 20 + b'"')])

    assert [(f.next_state, f.error_type) for f, _ in s.told.finishes] == [
        (DEAD, "Boom"), (DEAD, "ResultTooLarge"),
    ]  # fmt: skip
    await conn.close()


async def test_a_retry_a_pause_matches_is_held(rt: Runtime) -> None:
    s = Setup(rt)
    tenant, conn, task = await s.running(tags=["bulk"])
    await s.pauses.pause(tenant, Selector(tags=["bulk"]))

    await s.attempts.finish(conn, [s.result(task, "error")])

    assert await state_of(rt, tenant, task.id) == PAUSED
    await s.pauses.stop()
    await conn.close()
