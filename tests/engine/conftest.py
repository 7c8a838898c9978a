"""Engine services built alone (issue 15): each test makes a `Runtime` over a fake clock,
the real SQLite store in a temp file and the local bus, then the one service it tests
with the collaborators its constructor names. No `Node`, no server, no worker process.

Helpers here make tenants, functions and tasks straight through the store, and wait
for a condition while the loop (and the store's threads) run: never for a duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sluice.clock import FakeClock
from sluice.config import Settings
from sluice.contract import FunctionConfig, TaskSpec
from sluice.engine.admission import build_task
from sluice.engine.fairness import Fairness
from sluice.engine.functions import Functions
from sluice.engine.partitions import Partitions
from sluice.engine.queues import Queues
from sluice.engine.quotas import Quotas
from sluice.engine.registry import WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import ClaimedTask, new_task_ids
from sluice.protocol import ServerFrame
from sluice.store import ClaimRequest, Store, open_store
from sluice.store.bus import LocalBus

NODE = "node-a"
FN = "send"
DEADLINE_S = 5.0  # `until` gives up after this much real time: a condition never met

_frames = msgspec.json.Decoder(ServerFrame)


class HeardBus(LocalBus):
    """The one-node bus, remembering the hints this node sent to the others."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def publish(self, kind: str, data: str) -> None:
        self.sent.append((kind, data))

    def heard(self, kind: str) -> list[str]:
        return [data for k, data in self.sent if k == kind]


def settings_for(path: Path, **overrides: Any) -> Settings:
    return Settings.from_env({}, database=f"sqlite:///{path / 's.db'}", **overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(settings_for(tmp_path))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def rt(store: Store, clock: FakeClock, tmp_path: Path) -> Runtime:
    return Runtime(
        store=store, clock=clock, settings=settings_for(tmp_path), bus=HeardBus(), node_id=NODE
    )


def with_settings(rt: Runtime, **overrides: Any) -> Runtime:
    return replace(rt, settings=msgspec.structs.replace(rt.settings, **overrides))


def heard(rt: Runtime, kind: str) -> list[str]:
    """The hints of one kind this node sent on the bus."""
    assert isinstance(rt.bus, HeardBus)
    return rt.bus.heard(kind)


# -- the cheap services most others stand on, built as engine/node.py builds them ------


class NoHeavyHitters:
    held: dict[str, float] = {}


@dataclass
class Lower:
    queues: Queues
    functions: Functions
    quotas: Quotas
    partitions: Partitions
    fairness: Fairness


def lower(rt: Runtime) -> Lower:
    queues = Queues(rt.bus)
    functions = Functions(rt)
    quotas = Quotas(rt, changed=queues.wake)
    partitions = Partitions(rt, queues.resync, heavy=NoHeavyHitters())
    return Lower(queues, functions, quotas, partitions, Fairness(rt, functions, quotas, partitions))


# -- data, straight through the store ---------------------------------------------------


async def make_tenant(rt: Runtime, name: str = "acme") -> str:
    return (await rt.store.create_tenant(name, rt.clock.now())).id


async def make_function(
    rt: Runtime, tenant_id: str, name: str = FN, **config: Any
) -> FunctionConfig:
    function = FunctionConfig(name=name, **config)
    await rt.store.upsert_functions(tenant_id, [function], rt.clock.now())
    return function


async def make_task(rt: Runtime, tenant_id: str, function: FunctionConfig, **spec: Any) -> str:
    """A task stored as a submit stores it (start tag 0, partition 0); returns its id,
    which is time-ordered on the engine's clock, as intake's are (not the wall clock's:
    retention walks ids by the clock's time)."""
    now = rt.clock.now()
    (task_id,) = new_task_ids(1, now)
    task = build_task(
        TaskSpec(function=function.name, **spec), function, rt.settings, now, "", task_id
    )
    (result,) = await rt.store.submit_tasks(tenant_id, [task], now)
    return result.id


async def claim(rt: Runtime, tenant_id: str, worker: str, n: int = 1) -> list[ClaimedTask]:
    """Lease up to n of the tenant's ready tasks to a worker, as a dispatch round does."""
    request = ClaimRequest(tenant_id, worker, (FN,), n)
    (tasks,) = await rt.store.claim_tasks([request], rt.clock.now(), rt.settings.lease_s)
    return tasks


def claimed(tenant_id: str, task_id: str, attempt: int = 1, function: str = FN) -> ClaimedTask:
    """A task as a claim hands it over, made up (for services that only hold it)."""
    return ClaimedTask(tenant_id, task_id, function, b'{"args":[],"kwargs":{}}', attempt, 3,
                       None, 5, 0.0, 0.0, 30.0)  # fmt: skip


async def state_of(rt: Runtime, tenant_id: str, task_id: str) -> str:
    task = await rt.store.get_task(tenant_id, task_id)
    assert task is not None
    return task.state


# -- a worker connection over a send that records frames ---------------------------------


@dataclass
class Wire:
    """What a worker would have received, decoded."""

    frames: list[ServerFrame] = field(default_factory=list)

    async def send(self, frame: bytes) -> None:
        self.frames.append(_frames.decode(frame))

    def of(self, kind: type[Any]) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]


def worker(rt: Runtime, tenant_id: str, wire: Wire, name: str = "w1", slots: int = 4) -> WorkerConn:
    return WorkerConn(tenant_id, name, slots, (FN,), wire.send, rt.clock.now())


# -- waiting for a condition ----------------------------------------------------------------


async def until(condition: Callable[[], Any | Awaitable[Any]]) -> Any:
    """Let the loop and the store's threads run until `condition()` (sync or async) holds;
    fails after DEADLINE_S of real time, so a broken service fails instead of hanging."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {DEADLINE_S}s")
        await asyncio.sleep(0.001)


async def settle(turns: int = 10) -> None:
    """Give the loop a few turns (callbacks and tasks woken by a fake clock's advance)."""
    for _ in range(turns):
        await asyncio.sleep(0)
