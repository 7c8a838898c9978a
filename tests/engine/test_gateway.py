"""The worker gateway alone, over in-memory receive and send: hellos registered or
refused, frames handed on, reconnects reconciled on the fake clock (engine/gateway.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgspec
import pytest

from sluice.clock import FakeClock
from sluice.engine.gateway import Gateway, ProtocolError
from sluice.engine.logs import TaskLogs
from sluice.engine.registry import Registry, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import READY, RUNNING, SHARED
from sluice.protocol import (
    Credit,
    ErrorFrame,
    FunctionSpec,
    Heartbeat,
    Hello,
    Progress,
    ProgressItem,
    Release,
    ResultItem,
    Results,
    RunningTask,
    Welcome,
)
from tests.engine.conftest import (
    FN,
    Wire,
    claim,
    lower,
    make_function,
    make_task,
    make_tenant,
    state_of,
    until,
)


class Gone(Exception):
    """The websocket closed."""


class Socket:
    """A worker's websocket, in memory: frames in (None closes it), frames out."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.wire = Wire()

    def put(self, frame: Any) -> None:
        self.inbox.put_nowait(msgspec.json.encode(frame))

    def close(self) -> None:
        self.inbox.put_nowait(None)

    async def receive(self) -> bytes:
        frame = await self.inbox.get()
        if frame is None:
            raise Gone
        return frame


class Handed:
    """Attempts, as the gateway uses it: remembers the results handed to it."""

    def __init__(self) -> None:
        self.results: list[tuple[WorkerConn, list[ResultItem]]] = []

    async def finish(self, conn: WorkerConn, items: list[ResultItem]) -> None:
        self.results.append((conn, items))


class Built:
    def __init__(self, rt: Runtime) -> None:
        below = lower(rt)
        self.functions, self.queues = below.functions, below.queues
        self.registry = Registry()
        self.attempts = Handed()
        self.logs = TaskLogs(rt)
        self.gateway = Gateway(
            rt, self.registry, self.functions, self.attempts, self.queues, self.logs
        )
        self.socket = Socket()

    def serve(self, tenant: str) -> asyncio.Task[bool]:
        return asyncio.create_task(
            self.gateway.serve(tenant, self.socket.receive, self.socket.wire.send)
        )


def spec(config: bytes) -> FunctionSpec:
    return FunctionSpec(FN, msgspec.Raw(config))


def hello(worker: str = "w1", slots: int = 4, **fields: Any) -> Hello:
    fields.setdefault("functions", [spec(b'{"priority": 7}')])
    return Hello(worker, slots, **fields)


async def test_a_hello_registers_the_workers_functions_and_slots_and_is_welcomed(
    rt: Runtime,
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    built.socket.put(hello())
    serving = built.serve(tenant)

    conn = await until(lambda: built.registry.get(tenant, "w1"))

    assert (conn.slots, conn.functions) == (4, (FN,))
    assert [f.config.priority for f in await rt.store.list_functions(tenant)] == [7]
    (welcome,) = await until(lambda: built.socket.wire.of(Welcome))
    assert (welcome.heartbeat_s, welcome.lease_s) == (rt.settings.heartbeat_s, rt.settings.lease_s)
    built.socket.close()
    with pytest.raises(Gone):
        await serving
    assert len(built.registry) == 0 and conn.closed


async def test_frames_after_hello_are_handed_on_and_mark_the_worker_heard(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    built.socket.put(hello())
    serving = built.serve(tenant)
    conn = await until(lambda: built.registry.get(tenant, "w1"))
    item = ResultItem("t1", 1, "ok", clock.now(), clock.now())
    clock.advance(7.0)
    built.queues.woken.clear()

    built.socket.put(Heartbeat())
    built.socket.put(Credit(slots=9))
    built.socket.put(Results([item]))

    await until(lambda: built.attempts.results)
    assert built.attempts.results == [(conn, [item])]
    assert conn.slots == 9 and built.queues.woken.is_set()
    assert conn.last_seen == clock.now()
    built.socket.put(hello())  # hello comes once
    with pytest.raises(ProtocolError):
        await serving


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (Heartbeat(), "protocol"),
        (hello(worker="pool:w1"), "invalid_request"),
        (hello(worker="has space"), "invalid_request"),
        (hello(functions=[]), "invalid_request"),
        (hello(functions=[FunctionSpec("9bad")]), "invalid_request"),
        (hello(functions=[spec(b'{"priority": 99}')]), "invalid_request"),
        (hello(functions=[spec(b'{"target": {"url": "http://x"}}')]), "invalid_request"),
    ],
)
async def test_a_bad_first_frame_is_refused_with_an_error_frame_and_registers_nothing(
    rt: Runtime, first: Any, code: str
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    built.socket.put(first)

    assert await built.serve(tenant) is True

    (error,) = await until(lambda: built.socket.wire.of(ErrorFrame))
    assert error.code == code
    assert len(built.registry) == 0
    assert await rt.store.list_functions(tenant) == []


async def test_a_reconnect_renews_what_the_worker_holds_and_hands_back_what_it_never_got(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    for _ in range(2):
        await make_task(rt, tenant, send)
    held, lost = await claim(rt, tenant, "w1", n=2)  # the second was lost with the socket
    clock.advance(20.0)
    generation = built.queues.generation[tenant]

    built.socket.put(hello(running=[RunningTask(held.id, held.attempt)]))
    serving = built.serve(tenant)
    conn = await until(lambda: built.registry.get(tenant, "w1"))

    renewed = await rt.store.get_task(tenant, held.id)
    assert renewed is not None and renewed.state == RUNNING
    assert renewed.lease_until == clock.now() + rt.settings.lease_s
    assert await state_of(rt, tenant, lost.id) == READY
    assert built.queues.generation[tenant] == generation + 1

    # Handed back unfinished (a drain ran out of grace): ready again, no attempt used.
    built.socket.put(Release([RunningTask(held.id, held.attempt)]))
    await until(lambda: held.id not in conn.inflight)
    await until(lambda: _is(rt, tenant, held.id, READY))
    released = await rt.store.get_task(tenant, held.id)
    assert released is not None and released.attempt == held.attempt - 1
    built.socket.close()
    with pytest.raises(Gone):
        await serving


async def test_progress_from_the_lease_holder_is_kept_and_bad_values_are_dropped_with_a_warning(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    await make_task(rt, tenant, send)
    (held,) = await claim(rt, tenant, "w1")
    built.socket.put(hello(running=[RunningTask(held.id, held.attempt)]))
    serving = built.serve(tenant)
    await until(lambda: built.registry.get(tenant, "w1"))

    def report(raw: bytes, attempt: int = held.attempt) -> ProgressItem:
        return ProgressItem(held.id, attempt, progress=msgspec.Raw(raw))

    async def progress() -> dict[str, Any] | None:
        task = await rt.store.get_task(tenant, held.id)
        assert task is not None
        return json.loads(task.progress) if task.progress else None

    with caplog.at_level(logging.WARNING, "sluice.logs"):
        built.socket.put(Progress([report(b'{"done": 3, "total": 10, "message": "three"}')]))
        first = await until(progress)
        assert first == {"done": 3.0, "total": 10.0, "message": "three",
                         "at": rt.clock.now(), "attempt": held.attempt}  # fmt: skip
        bad = [
            b'{"done": -1}',  # negative
            b'{"done": 1, "total": 1e400}',  # not finite
            b'{"done": "four"}',  # not a number
            b'{"total": 4}',  # no done
            b"[4, 10]",  # not an object
            b'{"done": 4, "message": "' + b"m" * 201 + b'"}',  # too long
        ]
        built.socket.put(Progress([report(raw) for raw in bad]))
        built.socket.put(Progress([report(b'{"done": 5}', attempt=held.attempt + 1)]))  # fenced
        built.socket.put(Progress([report(b'{"done": 6, "total": 10}')]))
        last = await until(lambda: _progress_is(progress, 6.0))
    assert last == {"done": 6.0, "total": 10.0, "message": None, "at": rt.clock.now(),
                    "attempt": held.attempt}  # fmt: skip
    dropped = [r.getMessage() for r in caplog.records if "dropped the progress" in r.getMessage()]
    assert len(dropped) == len(bad), dropped
    assert "done must be a finite number >= 0, not -1.0" in dropped[0]
    assert "at most 200" in dropped[-1]
    assert not serving.done()  # the connection carries on
    built.socket.close()
    with pytest.raises(Gone):
        await serving


async def _progress_is(read: Any, done: float) -> dict[str, Any] | None:
    found = await read()
    return found if found is not None and found["done"] == done else None


async def _is(rt: Runtime, tenant: str, task_id: str, state: str) -> bool:
    return await state_of(rt, tenant, task_id) == state


async def test_a_shared_pools_worker_leases_under_the_pool_prefix(rt: Runtime) -> None:
    built = Built(rt)
    built.socket.put(hello())
    serving = built.serve(SHARED)

    await until(lambda: built.registry.get(SHARED, "pool:w1"))
    built.socket.close()
    with pytest.raises(Gone):
        await serving
