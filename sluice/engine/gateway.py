"""The worker gateway: speaks the worker protocol (docs/protocol.md) on one connection.

It is transport-neutral: the API layer hands it `receive` and `send` callables of a
websocket. A hello registers the worker's functions (held to the rules of `PUT
/v1/functions`) and its slots; results go to engine/attempts.py; a hand-back is fenced
on the dispatch it answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable

import msgspec

from ..config import Settings
from ..contract import FunctionConfig
from ..errors import InvalidRequest, SluiceError
from ..model import FUNCTION_NAME, MAX_ATTEMPT, SHARED
from ..protocol import (
    Credit,
    ErrorFrame,
    Heartbeat,
    Hello,
    Progress,
    Release,
    Results,
    RunningTask,
    Welcome,
    WorkerFrame,
)
from ..store import LeaseRenewal
from .admission import check_function
from .attempts import Finisher
from .functions import Functions
from .logs import TaskLogs
from .queues import Queues
from .registry import POOL_PREFIX, TARGET_PREFIX, Registry, WorkerConn
from .runtime import Runtime

log = logging.getLogger("sluice.gateway")

_decoder = msgspec.json.Decoder(WorkerFrame)
_encoder = msgspec.json.Encoder()
_config_decoder = msgspec.json.Decoder(dict[str, object])

MAX_SLOTS = 10_000
MAX_CAPACITY = 2**40  # a worker's advertised memory (MiB) or CPUs: finite and sane
# Worker ids are written into leases and logs: printable, no spaces, bounded.
WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,200}$")
TASK_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class ProtocolError(SluiceError):
    """A frame the protocol does not allow where it came: the connection is closed."""


class Gateway:
    def __init__(
        self,
        rt: Runtime,
        registry: Registry,
        functions: Functions,
        attempts: Finisher,
        queues: Queues,
        logs: TaskLogs,
    ) -> None:
        self._rt = rt
        self._registry = registry
        self._functions = functions
        self._attempts = attempts
        self._queues = queues
        self._logs = logs

    async def serve(
        self,
        tenant_id: str,
        receive: Callable[[], Awaitable[bytes | str]],
        send: Callable[[bytes], Awaitable[None]],
    ) -> bool:
        """Serve one worker until it leaves; returns True if it was refused at hello."""
        rt = self._rt
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
            if not all(TASK_ID.match(h.id) for h in first.running):
                raise InvalidRequest(f"a task id must match {TASK_ID.pattern}")
            for name, value in (("memory_mb", first.memory_mb), ("cpu", first.cpu)):
                if value is not None and not 0 <= value <= MAX_CAPACITY:
                    raise InvalidRequest(f"{name} is between 0 and {MAX_CAPACITY}")
            configs = _function_configs(first, rt.settings)
            await self._check_room(tenant_id, configs)
        except InvalidRequest as exc:
            await send(_encoder.encode(ErrorFrame(exc.code, exc.message)))
            return True
        await self._functions.register(tenant_id, configs)
        # A shared pool's worker serves every tenant (tenant_id is SHARED); its leases
        # carry a prefix no tenant worker's id can take.
        worker_id = POOL_PREFIX + first.worker_id if tenant_id == SHARED else first.worker_id
        conn = WorkerConn(
            tenant_id,
            worker_id,
            max(0, min(first.slots, MAX_SLOTS)),
            tuple(sorted(c.name for c in configs)),
            send,
            rt.clock.now(),
            memory_mb=first.memory_mb,
            cpu=first.cpu,
        )
        conn.version = first.version[:40]
        conn.protocol = first.protocol
        for held in first.running:
            conn.inflight[held.id] = None
            if held.function is not None:
                conn.held_functions[held.id] = held.function
        # The old connection of a reconnecting worker leaves first, so no claim lands on
        # it after the reconcile; welcome is queued before any delivery can be.
        old = self._registry.get(tenant_id, worker_id)
        if old is not None:
            self._registry.remove(old)
            await old.close()
        await self._reconcile(tenant_id, worker_id, first)
        settings = rt.settings
        conn.send(
            _encoder.encode(
                Welcome(
                    first.worker_id,
                    settings.heartbeat_s,
                    settings.lease_s,
                    max_frame_bytes=settings.max_frame_bytes,
                    max_result_bytes=settings.max_result_bytes,
                    max_log_bytes=settings.max_log_bytes,
                    shared=tenant_id == SHARED,
                )
            )
        )
        self._registry.add(conn)
        log.info("worker %s connected: %d slots, %s", conn.worker_id, conn.slots, conn.functions)
        self._queues.wake()
        try:
            while True:
                frame = _decoder.decode(await receive())
                conn.last_seen = rt.clock.now()
                if isinstance(frame, Results):
                    _check_ids(item.id for item in frame.items)
                    await self._attempts.finish(conn, frame.items)
                elif isinstance(frame, Progress):
                    _check_ids(item.id for item in frame.items)
                    # Awaited: the lines are written before the result that may follow.
                    # (News of an attempt no store could number is no news of an attempt.)
                    await self._logs.progress(
                        conn, [i for i in frame.items if abs(i.attempt) <= MAX_ATTEMPT]
                    )
                elif isinstance(frame, Credit):
                    conn.slots = max(0, min(frame.slots, MAX_SLOTS))
                    conn.ahead = max(0, min(frame.ahead, MAX_SLOTS))
                    conn.draining = conn.draining or frame.draining
                    self._queues.wake()
                elif isinstance(frame, Release):
                    _check_ids(item.id for item in frame.items)
                    await self._on_release(conn, frame.items)
                elif isinstance(frame, Heartbeat):
                    pass
                elif isinstance(frame, Hello):
                    raise ProtocolError("hello comes once, as the first frame")
        finally:
            self._registry.remove(conn)
            await conn.close()
            log.info("worker %s disconnected", conn.worker_id)

    async def _check_room(self, tenant_id: str, configs: list[FunctionConfig]) -> None:
        """A tenant holds at most `max_functions` functions, however many workers name
        new ones."""
        known = await self._functions.of(tenant_id)
        new = {c.name for c in configs} - known.keys()
        limit = self._rt.settings.max_functions
        if new and len(known) + len(new) > limit:
            raise InvalidRequest(
                f"the tenant has {len(known)} functions and a limit of {limit}; "
                f"this worker names {len(new)} more"
            )

    async def _reconcile(self, tenant_id: str, worker_id: str, hello: Hello) -> None:
        """A (re)connecting worker says what it holds: renew those leases at once (it may
        have been away for a while), and hand back at no attempt's cost what is leased to
        it but it never received (a delivery lost with the old connection)."""
        rt = self._rt
        now = rt.clock.now()
        held = {h.id for h in hello.running}
        if held:
            renewal = LeaseRenewal(tenant_id, worker_id, tuple(held))
            await rt.store.extend_leases([renewal], now + rt.settings.lease_s)
        leased = await rt.store.leased_to(tenant_id, worker_id)
        lost = [lease for lease in leased if lease[0] not in held]
        if lost and await rt.store.release_tasks(tenant_id, worker_id, lost, now):
            self._queues.notify(tenant_id)

    async def _on_release(self, conn: WorkerConn, items: list[RunningTask]) -> None:
        rt = self._rt
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
            leased = await rt.store.leased_to(conn.tenant_id, conn.worker_id)
            held += [lease for lease in leased if lease[:2] in named]
        released = await rt.store.release_tasks(
            conn.tenant_id, conn.worker_id, held, rt.clock.now()
        )
        if released:
            log.info("worker %s handed back %d tasks", conn.worker_id, len(released))
            self._queues.notify(conn.tenant_id)


def _function_configs(hello: Hello, settings: Settings) -> list[FunctionConfig]:
    """The configs a hello registers, held to the rules `PUT /v1/functions/{name}` is."""
    if not hello.functions:
        raise InvalidRequest("a worker must serve at least one function")
    if len(hello.functions) > settings.max_functions_per_worker:
        raise InvalidRequest(
            f"a worker serves at most {settings.max_functions_per_worker} functions "
            f"(this one named {len(hello.functions)})"
        )
    names = [spec.name for spec in hello.functions]
    if len(set(names)) < len(names):
        raise InvalidRequest("a worker names each function once")
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
        if config.webhooks:
            raise InvalidRequest(
                f"function {spec.name}: webhooks (and their secrets) are set with "
                "PUT /v1/functions/{name}"
            )
        for destination in config.destinations:
            if (destination.function is None) == (destination.topic is None):
                raise InvalidRequest(
                    f"function {spec.name}: a destination names a function or a topic"
                )
        check_function(config, settings, f"functions.{spec.name}.")
        configs.append(config)
    return configs


def _check_ids(ids: Iterable[str]) -> None:
    """Task ids are printable (the store could not hold some characters: NUL)."""
    for task_id in ids:
        if not TASK_ID.match(task_id):
            raise ProtocolError(f"a task id must match {TASK_ID.pattern}")


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
