"""Worker connections, the registry and the settling tasks, alone (engine/registry.py)."""

from __future__ import annotations

import asyncio

import pytest

from sluice.clock import FakeClock
from sluice.engine.registry import Registry, Settling, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.protocol import Deliver
from tests.engine.conftest import FN, Wire, claimed, until, worker


async def test_a_delivery_holds_its_tasks_and_sends_them_in_one_frame(rt: Runtime) -> None:
    wire = Wire()
    conn = worker(rt, "acme", wire, slots=4)
    conn.reserved = 1

    conn.deliver([claimed("acme", "t1"), claimed("acme", "t2")])

    assert set(conn.inflight) == {"t1", "t2"}
    assert conn.free == 1
    (frame,) = await until(lambda: wire.of(Deliver))
    assert [t.id for t in frame.tasks] == ["t1", "t2"]
    await conn.close()


async def test_a_late_result_of_an_older_attempt_does_not_free_the_newer_ones_slot(
    rt: Runtime,
) -> None:
    conn = worker(rt, "acme", Wire())
    conn.deliver([claimed("acme", "t1", attempt=2)])

    assert conn.take("t1", 1) is None
    assert "t1" in conn.inflight
    taken = conn.take("t1", 2)
    assert taken is not None and taken.attempt == 2
    assert conn.inflight == {}
    await conn.close()


async def test_a_send_that_fails_closes_the_connection_and_later_frames_are_dropped(
    rt: Runtime,
) -> None:
    sent: list[bytes] = []

    async def broken(frame: bytes) -> None:
        sent.append(frame)
        raise ConnectionResetError("gone")

    conn = WorkerConn("acme", "w1", 4, (FN,), broken, rt.clock.now())
    conn.send(b"one")
    await until(lambda: conn.closed)
    conn.send(b"two")
    await conn.close()
    assert sent == [b"one"]


async def test_the_registry_keys_workers_by_tenant_and_replaces_a_reconnect(
    rt: Runtime,
) -> None:
    registry = Registry()
    first, same_id_elsewhere = worker(rt, "acme", Wire()), worker(rt, "globex", Wire())
    assert registry.add(first) is None
    assert registry.add(same_id_elsewhere) is None  # another tenant's w1: no displacement
    again = worker(rt, "acme", Wire())
    assert registry.add(again) is first
    registry.remove(first)  # the old connection leaving does not remove the new one
    assert registry.get("acme", "w1") is again
    assert len(registry) == 2
    for conn in (first, same_id_elsewhere, again):
        await conn.close()


async def test_only_open_workers_with_free_slots_heard_from_lately_are_dispatchable(
    rt: Runtime, clock: FakeClock
) -> None:
    registry = Registry()
    silent = worker(rt, "acme", Wire(), name="silent")
    clock.advance(30)
    ready, full, closed = (worker(rt, "acme", Wire(), name=n) for n in ("ready", "full", "closed"))
    full.reserved = full.slots
    for conn in (silent, ready, full, closed):
        registry.add(conn)
    await closed.close()

    assert registry.dispatchable(silent_since=clock.now() - 20) == [ready]
    for conn in registry:
        await conn.close()


@pytest.mark.parametrize(("function", "expected"), [(None, ("t1", "t2")), ("resize", ("t2",))])
def test_settling_tasks_are_told_by_tenant_and_function(
    function: str | None, expected: tuple[str, ...]
) -> None:
    settling = Settling()
    settling.add({"t1": ("acme", FN), "t2": ("acme", "resize"), "t3": ("globex", FN)})
    assert settling.of("acme", function) == expected
    settling.remove(["t1", "t3"])
    assert "t1" not in settling and "t2" in settling


async def test_a_frame_is_written_at_once_and_frames_behind_a_blocked_write_keep_their_order(
    rt: Runtime,
) -> None:
    """WorkerConn.send writes in the caller's turn (no task between a commit and its push);
    while a write waits for the socket, later frames queue behind it, in order."""
    written: list[bytes] = []
    writable = asyncio.Event()
    writable.set()

    async def socket(frame: bytes) -> None:
        await writable.wait()  # as uvicorn's send waits while the transport pushes back
        written.append(frame)

    conn = WorkerConn("acme", "w1", 4, (FN,), socket, rt.clock.now())
    conn.send(b"one")
    assert written == [b"one"]  # before any turn of the loop

    writable.clear()
    conn.send(b"two")
    conn.send(b"three")
    assert written == [b"one"]
    writable.set()
    await until(lambda: len(written) == 3)
    assert written == [b"one", b"two", b"three"]
    conn.send(b"four")  # the queue drained: at once again
    assert written[-1] == b"four"

    writable.clear()
    conn.send(b"five")  # blocked: closing the connection stops the write
    await conn.close()
    assert conn.closed and written[-1] == b"four"
    conn.send(b"six")
    writable.set()
    await asyncio.sleep(0)
    assert written[-1] == b"four"
