"""Connected workers and their slots, as the dispatcher and the timers see them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

import msgspec

from .. import eager
from ..model import SHARED, ClaimedTask
from ..protocol import Deliver, TaskFrame
from ..tracing import carrier

log = logging.getLogger("sluice.gateway")
# A shared pool's worker leases under this prefix, so its id can never be taken for a
# tenant worker's (lease owners are compared across tenants for shared pools).
POOL_PREFIX = "pool:"
TARGET_PREFIX = "http:"  # the lease owner of an HTTP target's tasks: http:<function>
_encoder = msgspec.json.Encoder()


class WorkerConn:
    """One worker process's connection: its slots and the tasks it holds."""

    def __init__(
        self,
        tenant_id: str,
        worker_id: str,
        slots: int,
        functions: tuple[str, ...],
        send: Callable[[bytes], Awaitable[None]],
        now: float,
        memory_mb: float | None = None,
        cpu: float | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.worker_id = worker_id
        self.slots = slots
        self.ahead = 0  # tasks it holds beyond its slots (its credit's prefetch window)
        self.functions = functions
        self.inflight: dict[str, ClaimedTask | None] = {}  # None: held since before a reconnect
        # Resource-aware slots: what the worker offers (None: not bounded), what each of
        # its functions declares of it (set by the dispatcher every round), and the
        # functions of the tasks held since before a reconnect (its hello names them).
        self.memory_mb = memory_mb
        self.cpu = cpu
        self.demands: dict[str, tuple[float, float]] = {}
        self.held_functions: dict[str, str] = {}
        self.reserved = 0
        self.last_seen = now
        self.closed = False
        self.draining = False  # it said it is stopping (a Credit with `draining`)
        self.version = ""  # its Sluice version, from its hello
        self.protocol = 1  # its protocol version, from its hello (2: it honours start_at)
        self._send = send
        # Frames wait here only while a write waits for the socket (the `_sender` task);
        # otherwise `send` writes at once.
        self._outbox: collections.deque[bytes] = collections.deque()
        self._sender: asyncio.Task[None] | None = None

    @property
    def free(self) -> int:
        return self.slots + self.ahead - len(self.inflight) - self.reserved

    def load(self) -> float:
        """The share of its slots taken (held, or reserved by a claim being written)."""
        return (len(self.inflight) + self.reserved) / max(1, self.slots)

    @property
    def bounded(self) -> bool:
        """Whether the worker offers a memory or CPU budget its tasks must fit."""
        return self.memory_mb is not None or self.cpu is not None

    def left(self, promised: Mapping[str, int]) -> tuple[float, float]:
        """Memory and CPU not taken by the tasks it holds nor by `promised` ones
        (function: count, asked of other nodes and not delivered yet)."""
        memory = math.inf if self.memory_mb is None else self.memory_mb
        cpu = math.inf if self.cpu is None else self.cpu
        for task_id, task in self.inflight.items():
            function = task.function if task is not None else self.held_functions.get(task_id)
            taken = self.demands.get(function or "")
            if taken is not None:
                memory, cpu = memory - taken[0], cpu - taken[1]
        for function, n in promised.items():
            taken = self.demands.get(function)
            if taken is not None:
                memory, cpu = memory - n * taken[0], cpu - n * taken[1]
        return memory, cpu

    def room(self, function: str, left: tuple[float, float]) -> int | None:
        """How many more tasks of `function` fit in `left`; None: it declares nothing
        the worker bounds."""
        taken = self.demands.get(function)
        if taken is None:
            return None
        pairs = zip(left, taken, strict=True)
        fits = [math.floor(have / need + 1e-9) for have, need in pairs if need > 0]
        return max(0, min(fits)) if fits else None

    def take(self, task_id: str, attempt: int) -> ClaimedTask | None:
        """Stop holding a task whose result arrived; a late result of an older attempt
        must not free the slot (or stop the lease renewal) of the newer one."""
        held = self.inflight.get(task_id)
        if held is None or held.attempt == attempt:
            self.inflight.pop(task_id, None)
            self.held_functions.pop(task_id, None)
        return held if held is not None and held.attempt == attempt else None

    def deliver(self, tasks: list[ClaimedTask]) -> None:
        frames = []
        for t in tasks:
            self.inflight[t.id] = t
            frames.append(
                TaskFrame(
                    id=t.id,
                    function=t.function,
                    attempt=t.attempt,
                    payload=msgspec.Raw(t.payload),
                    timeout_s=t.timeout_s,
                    lease_until=t.lease_until,
                    trace=carrier(t.trace_parent, t.trace_state),
                    tenant=t.tenant_id if self.tenant_id == SHARED else None,
                    start_at=t.start_at,
                )
            )
        self.send(_encoder.encode(Deliver(frames)))

    def send(self, frame: bytes) -> None:
        """Write a frame now (eager.start: no task, no turn of the loop between a commit
        and its push); behind the frames still waiting, if a write waits for the socket."""
        if self.closed:
            return
        if self._sender is not None:
            self._outbox.append(frame)
            return
        self._write(frame)

    def _write(self, frame: bytes) -> None:
        try:
            waiting = eager.start(self._send(frame))
        except Exception as exc:  # the socket went away; the receive side will notice
            self._failed(exc)
            return
        if waiting is not None:  # the socket pushes back: the task writes it, then the rest
            self._sender = waiting
            waiting.add_done_callback(self._written)

    def _written(self, write: asyncio.Task[None]) -> None:
        self._sender = None
        if write.cancelled():  # closed
            return
        exc = write.exception()
        if exc is not None:
            self._failed(exc)
            return
        while self._outbox and self._sender is None and not self.closed:
            self._write(self._outbox.popleft())

    def _failed(self, exc: BaseException) -> None:
        log.debug("send to %s failed: %s", self.worker_id, exc)
        self.closed = True
        self._outbox.clear()

    async def close(self) -> None:
        self.closed = True
        sender = self._sender
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


class Registry:
    def __init__(self) -> None:
        # Keyed by tenant too: one tenant's worker id can never displace another's.
        self._conns: dict[tuple[str, str], WorkerConn] = {}

    def add(self, conn: WorkerConn) -> WorkerConn | None:
        """Register a connection; returns the one it replaces (a reconnect), if any."""
        key = (conn.tenant_id, conn.worker_id)
        old = self._conns.get(key)
        self._conns[key] = conn
        return old

    def remove(self, conn: WorkerConn) -> None:
        key = (conn.tenant_id, conn.worker_id)
        if self._conns.get(key) is conn:
            del self._conns[key]

    def get(self, tenant_id: str, worker_id: str) -> WorkerConn | None:
        return self._conns.get((tenant_id, worker_id))

    def __iter__(self) -> Iterator[WorkerConn]:
        return iter(list(self._conns.values()))

    def __len__(self) -> int:
        return len(self._conns)

    def dispatchable(self, silent_since: float) -> list[WorkerConn]:
        """Connections with free slots that were heard from after `silent_since`, the
        least busy first (issue 20 point 7): a round's first claim and a direct dispatch
        go to the process with the most idle slots for its size, so two CPU-bound tasks
        land in two processes of a `--processes 2` worker, not behind one GIL."""
        found = [
            c
            for c in self._conns.values()
            if not c.closed and c.free > 0 and c.last_seen >= silent_since
        ]
        if len(found) > 1:
            found.sort(key=WorkerConn.load)  # stable: ties keep the connection order
        return found


class Settling:
    """Tasks whose results arrived and whose finishes are being written: still running
    in the store, no longer holding a slot. Claims under a concurrency cap or a reserve
    subtract them from the store's running count (the gateway adds, the dispatcher and
    the asks read)."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[str, str]] = {}  # task id: (tenant, function)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def add(self, tasks: dict[str, tuple[str, str]]) -> None:
        self._tasks.update(tasks)

    def remove(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self._tasks.pop(task_id, None)

    def of_function(self, function: str) -> tuple[str, ...]:
        """Every tenant's settling tasks of one function (a shared pool's own limits)."""
        return tuple(t for t, (_tenant, fn) in self._tasks.items() if fn == function)

    def of(self, tenant_id: str, function: str | None) -> tuple[str, ...]:
        """A tenant's settling tasks (of one function, or all)."""
        return tuple(
            task_id
            for task_id, (tenant, fn) in self._tasks.items()
            if tenant == tenant_id and (function is None or fn == function)
        )
