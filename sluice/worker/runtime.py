"""The worker runtime: one websocket to a server, slots, results, heartbeats, reconnects.

The protocol is in docs/protocol.md. The server pushes at most as many tasks as there
are free slots. Results are kept until the server acknowledges them, so a result that
was in flight when the connection broke is sent again after reconnecting (to any node);
tasks keep running while the worker is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
import resource
import signal
import socket
import time
import traceback
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from .. import __version__, eager
from ..client.http import discover, tls_context
from ..errors import Reject, Retry, SluiceError, Throttled
from ..logs import redacted_url
from ..policy.inline import Inline
from ..policy.prefetch import MAX_FACTOR, Prefetch
from ..protocol import (
    WORKER_PATH,
    Ack,
    Cancel,
    Credit,
    Deliver,
    ErrorFrame,
    FunctionSpec,
    Heartbeat,
    Hello,
    Payload,
    Progress,
    ProgressItem,
    ProgressReport,
    Release,
    ResultItem,
    Results,
    RunningTask,
    ServerFrame,
    TaskFrame,
    Welcome,
)
from ..rawjson import MAX_DEPTH, within_depth
from ..tracing import otel_loaded
from . import capture, cgroups
from .app import App, TaskFunction
from .child import Job
from .context import TaskContext, _current
from .isolation import (
    DEFAULT_MAX_RSS_MB,
    DEFAULT_MAX_TASKS,
    Children,
    IsolationError,
    app_reference,
    death,
    resolve,
)

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from .tracing import AttemptSpans

log = logging.getLogger("sluice.worker")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ServerFrame)
_payload = msgspec.json.Decoder(Payload)

RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0
HOLDING_RETRY_SHARE = 0.2  # of the lease: how often a worker holding tasks tries again
DEFAULT_GRACE_S: float | None = None  # a drain waits for running tasks to end (each is
# bounded by its own timeout); a grace only shortens that
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_TRACEBACK = 16 * 1024
REFUSED = (4401, 4400)  # close codes after which reconnecting cannot help
PROGRESS_S = 0.2  # how often running attempts' starts and log lines are sent
RETUNE_S = 0.05  # at most this often an attempt's end resizes the prefetch window
STARTED_AFTER_S = 0.2  # an attempt that ends sooner reports its start with its result (a
# write saved for every short task)


Held = tuple[TaskFrame, "asyncio.Future[None]", TaskContext]  # a task this worker holds


class ResultRefused(SluiceError):
    """A handler's return value the server would not keep (too large, too deep)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


_NULL = msgspec.Raw(b"null")


def reconnect_wait(delay: float, jitter: float, holding: bool, lease_s: float) -> float:
    """How long a disconnected worker waits before trying again: `delay` (doubling up to
    RECONNECT_MAX_S) with +-50 % jitter (`jitter` in [0, 1)); while it holds tasks, at
    most a fifth of the lease, so that a restarted server (which waits one lease before
    judging any lost) finds their leases renewed, however short the lease."""
    wait = delay * (0.5 + jitter)
    if holding and lease_s > 0:
        wait = min(wait, lease_s * HOLDING_RETRY_SHARE)
    return wait


async def _until(at: float) -> None:
    """Sleep until the wall clock reads `at`. The loop's timers may fire up to a
    millisecond early (libuv rounds to whole ms): a task must not start before its time."""
    while (left := at - time.time()) > 0:
        await asyncio.sleep(left)


def _report(ctx: TaskContext) -> msgspec.Raw | None:
    """The attempt's progress reported since the last frame, as the protocol carries it."""
    taken = ctx._take_progress()
    if taken is None:
        return None
    return msgspec.Raw(_encoder.encode(ProgressReport(*taken)))


def _frames(items: list[ResultItem], budget: int) -> list[bytes]:
    """Results frames of at most about `budget` bytes each (one result may fill one)."""
    frames: list[bytes] = []
    chunk: list[ResultItem] = []
    size = 0
    for item in items:
        cost = len(item.result) + len(item.traceback or "") + 512
        cost += sum(len(line.message) + 64 for line in item.logs)
        if chunk and size + cost > budget:
            frames.append(_encoder.encode(Results(chunk)))
            chunk, size = [], 0
        chunk.append(item)
        size += cost
    if chunk:
        frames.append(_encoder.encode(Results(chunk)))
    return frames


class FatalWorkerError(SluiceError):
    """The server refused this worker (bad key, bad registration): retrying will not help."""


class Worker:
    def __init__(
        self,
        app: App,
        *,
        url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 10,
        worker_id: str | None = None,
        grace_s: float | None = DEFAULT_GRACE_S,
        ca_file: str | os.PathLike[str] | None = None,
        capture_logs: bool = True,
        prefetch: bool = True,
        inline_short: bool = True,
        tracer_provider: TracerProvider | None = None,
        isolation: str | None = None,
        app_ref: str | None = None,
        memory_mb: float | None = None,
        cpu: float | None = None,
        child_max_tasks: int = DEFAULT_MAX_TASKS,
        child_max_rss_mb: float = DEFAULT_MAX_RSS_MB,
    ) -> None:
        base, key = discover(url, api_key)
        if key is None:
            raise FatalWorkerError("no API key: pass --api-key or set SLUICE_API_KEY")
        try:
            self._tls = tls_context(ca_file)  # wss:// servers are verified against it
        except SluiceError as exc:
            raise FatalWorkerError(str(exc)) from exc
        self.app = app
        # Several server nodes may be named, comma-separated: the worker connects to one and
        # moves to the next whenever a connection fails or drops.
        self.ws_urls = [
            u.strip().rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
            + WORKER_PATH
            for u in base.split(",")
            if u.strip()
        ]
        self.ws_url = self.ws_urls[0]
        self.api_key = key
        self.slots = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.grace_s = grace_s
        self.capture_logs = capture_logs
        resolve(isolation)  # checked now: a typo fails at start, not at the first task
        self.isolation = isolation
        self.app_ref = app_ref or app_reference(app)
        # What it offers for resource-aware slots (docs/isolation.md); None: unbounded.
        self.memory_mb = machine_memory_mb() if memory_mb is None else memory_mb
        self.cpu = cpu
        for tf in app.tasks.values():
            needs = tf.config.memory_mb
            if needs and self.memory_mb is not None and needs > self.memory_mb:
                log.warning(
                    "function %s declares memory_mb=%d, more than this worker offers (%d MiB): "
                    "it never runs here",
                    tf.name, needs, self.memory_mb,
                )  # fmt: skip
        self._child_limits = (child_max_tasks, child_max_rss_mb)
        self._children: Children | None = None
        self._shared = False  # connected with the pool key (the welcome says)
        self.completed = 0
        self.connected = asyncio.Event()
        self._running: dict[str, Held] = {}
        self._now: asyncio.Future[None] | None = None  # see _start
        # Attempts whose start the server has not been told of yet: id -> (frame, started).
        self._unannounced: dict[str, tuple[TaskFrame, float]] = {}
        self._pending_progress: list[ProgressItem] = []  # finished attempts' last reports
        self._pending: list[ResultItem] = []
        self._unacked: dict[tuple[str, int], ResultItem] = {}
        self._flush = asyncio.Event()
        self._stop = asyncio.Event()
        self._draining = False
        self._hurry = asyncio.Event()  # a second stop signal: hand the rest back now
        self._abandoned = 0  # threads still running handlers that timed out or were cancelled
        self._credit_dirty = False
        # Slots run attempts; tasks held beyond them (prefetch, policy/prefetch.py) wait
        # for one in `_queued`, started in delivery order.
        self._slots_free = asyncio.Semaphore(concurrency)
        self._queued: dict[str, None] = {}  # ids, oldest first
        self._executing: dict[str, float] = {}  # id -> when its attempt took a slot (monotonic)
        # Prefetch off: a window that never opens (max_factor 0).
        self._prefetch = Prefetch(concurrency, max_factor=MAX_FACTOR if prefetch else 0)
        self._ahead = 0  # the window last told to the server
        # Plain functions whose calls are shorter than a thread hand-off run on the loop
        # (policy/inline.py); None: always in a thread.
        self._inline: dict[str, Inline] | None = {} if inline_short else None
        self._retuned = 0.0
        self._saturated = False  # a delivery filled its credit since the last _retune
        self.held_ahead = 0  # tasks that waited here for a slot (sent ahead of one)
        self._chores: set[asyncio.Future[None]] = set()
        self._ws: ClientConnection | None = None
        # The server's limits, from its welcome (these defaults until the first one).
        self._limits = Welcome("", 0.0, 0.0)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sluice-task")
        self._rng = random.Random()
        # Spans per attempt when this process uses OpenTelemetry (worker/tracing.py).
        self._tracer_provider = tracer_provider
        self._spans: AttemptSpans | None = None
        self._functions = [
            FunctionSpec(
                name,
                msgspec.Raw(
                    _encoder.encode(
                        {k: v for k, v in msgspec.structs.asdict(tf.config).items() if k != "name"}
                    )
                ),
            )
            for name, tf in app.tasks.items()
        ]

    # -- lifecycle ---------------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop()`; reconnects with backoff whenever the connection drops."""
        if self.capture_logs:
            capture.install()
        delay = RECONNECT_MIN_S
        while not self._stop.is_set():
            try:
                async with websockets.connect(
                    self.ws_url,
                    additional_headers={"Authorization": f"Bearer {self.api_key}"},
                    ssl=self._tls if self.ws_url.startswith("wss://") else None,
                    max_size=MAX_FRAME_BYTES,
                    ping_interval=None,
                    compression=None,
                ) as ws:
                    delay = RECONNECT_MIN_S
                    await self._session(ws)
            except FatalWorkerError:
                raise
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in REFUSED:
                    raise FatalWorkerError(f"the server refused this worker: {exc.rcvd}") from exc
                log.warning("connection to %s lost: %s", redacted_url(self.ws_url), exc)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                # A certificate that does not verify lands here too (ssl.SSLError is an
                # OSError), and is retried: the server may be mid-way through a renewal.
                log.warning("connection to %s lost: %s", redacted_url(self.ws_url), exc)
            finally:
                self._ws = None
                self.connected.clear()
                self.ws_url = self.ws_urls[
                    (self.ws_urls.index(self.ws_url) + 1) % len(self.ws_urls)
                ]
            if self._stop.is_set():
                break
            wait = reconnect_wait(
                delay, self._rng.random(), bool(self._running), self._limits.lease_s
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            delay = min(RECONNECT_MAX_S, delay * 2)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._children is not None:
            self._children.close()

    def stop(self) -> None:
        self._stop.set()

    async def drain(self) -> None:
        """Stop taking tasks, let running ones finish, report, stop. Running tasks get
        until their own timeouts (a task without one, until it ends), or `grace_s` if
        that is set and shorter; a second call hands them back at once."""
        if self._draining:
            self._hurry.set()
            return
        self._draining = True
        self.slots = 0
        self._ahead = 0
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send(_encoder.encode(Credit(0, draining=True)))
        started = len(self._running) - len(self._queued)
        if started == 0:
            waits = "at once: no task is running"
        else:
            waits = f"once {started} running {'task ends' if started == 1 else 'tasks end'}"
            if self.grace_s is not None:
                waits += f" (at most {self.grace_s:g} s)"
        log.info("worker %s draining: it takes nothing new and stops %s", self.worker_id, waits)
        # Tasks held ahead that never started go back at once: another worker runs them.
        await self._hand_back(self._take_queued(len(self._queued)))
        deadline = None if self.grace_s is None else time.monotonic() + self.grace_s
        hurry = asyncio.ensure_future(self._hurry.wait())
        while not self._hurry.is_set():
            running: list[asyncio.Future[Any]] = [
                t for _, t, _ in self._running.values() if not t.done()
            ]
            left = None if deadline is None else deadline - time.monotonic()
            if not running or (left is not None and left <= 0):
                break
            await asyncio.wait(
                [hurry, *running],
                timeout=left, return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
        hurry.cancel()
        # Out of grace (or hurried): hand the rest back at once, so they run again without
        # waiting for their leases to expire and without using up an attempt.
        cut = list(self._running.values())
        for _, task, ctx in cut:
            ctx._stop("released")
            task.cancel()
        await self._hand_back(cut)
        deadline = time.monotonic() + 5.0
        # Wait for the acks even while reconnecting: a result lost here would run again.
        while self._unacked and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.stop()
        if self._ws is not None:
            await self._ws.close()

    def _take_queued(self, n: int) -> list[Held]:
        """The `n` newest tasks held ahead, stopped before they start (to hand back)."""
        taken = []
        for task_id in list(self._queued)[len(self._queued) - n :] if n > 0 else ():
            del self._queued[task_id]
            held = self._running.get(task_id)
            if held is not None:
                held[2]._stop("released")
                held[1].cancel()
                taken.append(held)
        return taken

    async def _hand_back(self, held: list[Held]) -> None:
        """Give stopped tasks back to the server: they run again elsewhere, no attempt used."""
        if not held:
            return
        await asyncio.gather(*(task for _, task, _ in held), return_exceptions=True)
        release = Release([RunningTask(frame.id, frame.attempt) for frame, _, _ in held])
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send(_encoder.encode(release))

    def _retune(self) -> None:
        """Size the window of tasks held ahead to the pace the slots run at now
        (policy/prefetch.py); tasks held beyond a window that shrank go back."""
        if self._draining:
            return
        now = time.monotonic()
        # What the slots' pace covers; only a worker sent as much as it could take since
        # the last look (a backlog) asks for it: an idle one gains nothing (its slots are
        # free when a task comes). What it holds already stays while the pace covers it.
        pace = self._prefetch.window(now - began for began in self._executing.values())
        window = pace if self._saturated else 0
        self._saturated = bool(self._queued)
        if window != self._ahead:
            self._ahead = window
            self._send_credit()
        excess = len(self._queued) - pace
        if excess > 0:
            self._background(self._hand_back(self._take_queued(excess)))

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    # -- one connection ----------------------------------------------------------

    async def _session(self, ws: ClientConnection) -> None:
        # Everything this worker holds: tasks still running and results not yet acked.
        running = [RunningTask(t.id, t.attempt, t.function) for t, _, _ in self._running.values()]
        running += [RunningTask(i.id, i.attempt) for i in self._unacked.values()]
        slots = max(0, self.slots - self._abandoned)
        hello = Hello(
            self.worker_id, slots, self._functions, running, memory_mb=self.memory_mb,
            cpu=self.cpu, version=__version__,
        )  # fmt: skip
        await ws.send(_encoder.encode(hello))
        welcome = _decoder.decode(await ws.recv())
        if isinstance(welcome, ErrorFrame):
            raise FatalWorkerError(f"server refused the worker: {welcome.code}: {welcome.message}")
        if not isinstance(welcome, Welcome):
            raise FatalWorkerError("the server did not answer hello with welcome")
        if self._stop.is_set():
            # Drained while connecting (SIGTERM during start-up): the drain found no
            # connection to close, so this session must not begin, or it would run forever.
            return
        self._ws = ws
        self._limits = welcome
        self._shared = welcome.shared
        if any(self._isolated(fn) for fn in self.app.tasks.values()):
            with contextlib.suppress(IsolationError):
                await self._children_pool().warm()  # the first attempts find a child ready
        self.connected.set()
        log.info("worker %s connected to %s", self.worker_id, redacted_url(self.ws_url))
        # Results that were sent but never acknowledged go again; the server deduplicates.
        self._pending = list(self._unacked.values())
        # A new connection's server knows only the slots of the hello: the window too.
        self._credit_dirty = self._credit_dirty or self._ahead > 0
        self._flush.set()
        sender = asyncio.create_task(self._send_loop(ws))
        beat = asyncio.create_task(self._heartbeat_loop(ws, welcome.heartbeat_s))
        progress = asyncio.create_task(self._progress_loop(ws))
        try:
            async for message in ws:
                try:
                    frame = _decoder.decode(message)
                except msgspec.ValidationError as exc:  # a newer server's frame: skip it
                    log.warning("ignoring a frame this worker does not understand: %s", exc)
                    continue
                if isinstance(frame, Deliver):
                    # A delivery that fills every free slot (and the window) says more
                    # is waiting: the window opens (or stays) at the next look.
                    free = self.slots - self._abandoned + self._ahead - len(self._running)
                    if len(frame.tasks) >= free:
                        self._saturated = True
                    for task in frame.tasks:
                        self._start(task)
                elif isinstance(frame, Cancel):
                    for task_id in frame.ids:
                        held = self._running.get(task_id)
                        if held is not None:
                            held[2]._stop("cancelled")
                            held[1].cancel()
                elif isinstance(frame, Ack):
                    for ack in frame.items:
                        self._unacked.pop((ack.id, ack.attempt), None)
                elif isinstance(frame, ErrorFrame):
                    log.error("server error: %s: %s", frame.code, frame.message)
        finally:
            sender.cancel()
            beat.cancel()
            progress.cancel()

    async def _send_loop(self, ws: ClientConnection) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            if self._credit_dirty:
                self._credit_dirty = False
                credit = Credit(max(0, self.slots - self._abandoned), ahead=self._ahead)
                await ws.send(_encoder.encode(credit))
            if self._pending_progress:  # written while the attempt still holds its lease
                reports, self._pending_progress = self._pending_progress, []
                await ws.send(_encoder.encode(Progress(reports)))
            items, self._pending = self._pending, []
            for frame in _frames(items, self._limits.max_frame_bytes // 2):
                await ws.send(frame)

    async def _progress_loop(self, ws: ClientConnection) -> None:
        """Every PROGRESS_S: the starts of attempts still running after STARTED_AFTER_S
        and the log lines written since the last frame, one frame for all of them."""
        while True:
            await asyncio.sleep(PROGRESS_S)
            self._retune()
            items = self._progress(time.time())
            if items:
                await ws.send(_encoder.encode(Progress(items)))

    def _progress(self, now: float) -> list[ProgressItem]:
        items = []
        for frame, _, ctx in list(self._running.values()):
            lines, drop = (
                ctx._log.take() if ctx._log is not None and ctx._log.pending else ([], None)
            )
            started = None
            held = self._unannounced.get(frame.id)
            # Said once: after STARTED_AFTER_S, or with the attempt's first lines.
            if (
                held is not None
                and held[0] is frame
                and (now - held[1] >= STARTED_AFTER_S or lines)
            ):
                started = held[1]
                del self._unannounced[frame.id]
            report = _report(ctx)
            if started is not None or lines or drop is not None or report is not None:
                items.append(
                    ProgressItem(
                        frame.id, frame.attempt, started, lines, drop,
                        report if report is not None else _NULL,
                    )
                )  # fmt: skip
        return items

    async def _heartbeat_loop(self, ws: ClientConnection, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await ws.send(_encoder.encode(Heartbeat(len(self._running))))

    # -- running tasks -----------------------------------------------------------

    def _start(self, frame: TaskFrame) -> None:
        ctx = TaskContext(frame.id, frame.attempt, frame.function, frame.timeout_s)
        if self.capture_logs:
            ctx._log = capture.AttemptLog(self._limits.max_log_bytes)
        fn = self.app.tasks.get(frame.function)
        if (
            fn is None or fn.is_async or frame.start_at is not None
            or self._slots_free.locked() or self._isolated(fn)
        ):  # fmt: skip
            self._running[frame.id] = (frame, asyncio.create_task(self._execute(frame, ctx)), ctx)
            return
        # A plain function with a free slot starts now (eager.start), not a turn of the
        # loop later: on the loop it runs and ends before this returns (no task at all),
        # in a thread it is handed over now and a task waits for it. Only for plain
        # functions: an async handler's code would run in the receive loop's task
        # (eager.py). Held meanwhile under a done stand-in, which nothing looks at
        # before it is replaced or forgotten.
        if self._now is None:
            self._now = asyncio.get_running_loop().create_future()
            self._now.set_result(None)
        self._running[frame.id] = (frame, self._now, ctx)
        try:
            started = eager.start(self._execute(frame, ctx))
        except Exception:  # not the handler's error (that is its result): a bug here
            log.exception("attempt %s/%d failed to start", frame.id, frame.attempt)
            self._forget(frame)
            return
        held = self._running.get(frame.id)
        if started is not None and held is not None and held[0] is frame:
            self._running[frame.id] = (frame, started, ctx)

    async def _execute(self, frame: TaskFrame, ctx: TaskContext) -> None:
        if self._slots_free.locked():  # held ahead (prefetch): wait for a slot
            self._queued[frame.id] = None
            self.held_ahead += 1
            try:
                await self._slots_free.acquire()
            except asyncio.CancelledError:
                self._queued.pop(frame.id, None)
                if not self._unstarted(frame, ctx):
                    raise  # handed back (released) or the worker stops
                return
            self._queued.pop(frame.id, None)
        else:
            await self._slots_free.acquire()  # free: returns at once
        if frame.start_at is not None:  # a delayed task leased just before it is due
            try:
                await _until(frame.start_at)
            except asyncio.CancelledError:
                self._slots_free.release()
                if not self._unstarted(frame, ctx):
                    raise
                return
        began = time.monotonic()
        self._executing[frame.id] = began
        try:
            await self._run(frame, ctx)
        finally:
            self._slots_free.release()
            if self._executing.get(frame.id) == began:
                del self._executing[frame.id]
            self._prefetch.ran(time.monotonic() - began)
            if began - self._retuned > RETUNE_S:
                self._retuned = began
                self._retune()

    def _unstarted(self, frame: TaskFrame, ctx: TaskContext) -> bool:
        """A task stopped while it waited (for a slot, or for its start_at): a cancel is
        answered `cancelled` (True); anything else (handed back, the worker stopping) is
        the caller's to pass on (False)."""
        self._forget(frame)
        if ctx.stop_reason != "cancelled":
            return False
        now = time.time()
        self._report_end(frame, ctx, ResultItem(frame.id, frame.attempt, "cancelled", now, now))
        return True

    async def _run(self, frame: TaskFrame, ctx: TaskContext) -> None:
        started = time.time()
        self._unannounced[frame.id] = (frame, started)
        capture.attach(ctx._log)  # this asyncio task's own context: its lines only
        try:
            if self._spans is None and (self._tracer_provider is not None or otel_loaded()):
                from .tracing import AttemptSpans  # imports OpenTelemetry: only when it is on

                self._spans = AttemptSpans(self._tracer_provider, self.worker_id)
            call = self._call(frame, ctx, started)
            item = await (self._spans.run(frame, call) if self._spans is not None else call)
        except asyncio.CancelledError:
            self._forget(frame)
            if ctx.stop_reason == "released":
                return  # handed back by drain(): it runs again elsewhere
            if ctx.stop_reason != "cancelled":
                raise
            item = ResultItem(frame.id, frame.attempt, "cancelled", started, time.time())
        self._forget(frame)
        self._report_end(frame, ctx, item)

    def _report_end(self, frame: TaskFrame, ctx: TaskContext, item: ResultItem) -> None:
        report = _report(ctx)
        if report is not None:  # reported since the last frame: shipped before the result
            self._pending_progress.append(ProgressItem(frame.id, frame.attempt, progress=report))
        if ctx._log is not None and ctx._log.written:
            lines, drop = ctx._log.take(final=True)
            if lines or drop is not None:
                item = msgspec.structs.replace(item, logs=lines, drop=drop)
        self.completed += 1
        self._unacked[(item.id, item.attempt)] = item
        self._pending.append(item)
        self._flush.set()

    def _forget(self, frame: TaskFrame) -> None:
        held = self._running.get(frame.id)
        if held is not None and held[0] is frame:  # a newer attempt of the same task stays
            del self._running[frame.id]
        announced = self._unannounced.get(frame.id)
        if announced is not None and announced[0] is frame:
            del self._unannounced[frame.id]

    async def _call_sync(
        self,
        fn: TaskFunction[Any, Any],
        args: list[object],
        kwargs: dict[str, object],
        ctx: TaskContext,
        frame: TaskFrame,
    ) -> Any:
        """A plain function's call: in a thread, or on the loop once its calls have
        proved shorter than the hand-off to a thread (policy/inline.py)."""
        if self._inline is None:
            return await self._call_in_thread(fn.fn, args, kwargs, ctx, frame)
        calls = self._inline.get(fn.name)
        if calls is None:
            calls = self._inline[fn.name] = Inline()
        if not calls.inline:
            spent: list[float] = []
            try:
                return await self._call_in_thread(fn.fn, args, kwargs, ctx, frame, spent)
            finally:
                if spent and not calls.inline:  # another call may have moved it already
                    calls.ran(spent[0], spent[1])
                    if calls.inline:
                        log.info("%s runs on the worker's loop: its calls take under %g ms",
                                 fn.name, calls.below_s * 1000)  # fmt: skip
        _current.set(ctx)  # this asyncio task's own context
        began, cpu, waits = time.perf_counter(), time.thread_time(), _waits()
        try:
            return fn.fn(*args, **kwargs)
        finally:
            wall = time.perf_counter() - began
            blocked = waits is None or (wall > calls.slow_s and _waits() != waits)
            calls.ran(wall, time.thread_time() - cpu, blocked)
            if calls.demoted:
                log.info("%s runs in threads again: a call took over %g ms",
                         fn.name, calls.slow_s * 1000)  # fmt: skip

    async def _call_in_thread(
        self,
        fn: Any,
        args: list[object],
        kwargs: dict[str, object],
        ctx: TaskContext,
        frame: TaskFrame,
        spent: list[float] | None = None,
    ) -> Any:
        """Run a plain function in the pool. Its timeout counts from when a thread picks
        it up. A thread cannot be interrupted: on timeout or cancel it is abandoned (it
        sees ctx.cancelled) and its slot is withheld from the server until it returns."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        context.run(_current.set, ctx)

        def call() -> Any:
            if spent is None:
                return context.run(fn, *args, **kwargs)
            t0, c0 = time.perf_counter(), time.thread_time()  # its wall and CPU time
            try:
                return context.run(fn, *args, **kwargs)
            finally:
                spent.extend((time.perf_counter() - t0, time.thread_time() - c0))

        began: asyncio.Event | None = None
        run = call  # nothing to time: one wake-up of the loop per call, for the result
        if frame.timeout_s:  # its clock starts in the thread: the loop is told then
            began = asyncio.Event()
            wake = began.set

            def run() -> Any:
                loop.call_soon_threadsafe(wake)
                return call()

        started = self._pool.submit(run)
        future = asyncio.wrap_future(started, loop=loop)
        try:
            if began is None:
                return await asyncio.shield(future)
            await began.wait()
            try:
                return await asyncio.wait_for(asyncio.shield(future), frame.timeout_s)
            except TimeoutError:
                ctx._stop("timeout")
                raise
        finally:
            # Not picked up by a thread yet: the pool drops it. Running: it cannot be
            # stopped, so it is abandoned.
            if not started.done() and not started.cancel():
                self._abandon(future)

    def _abandon(self, future: asyncio.Future[Any]) -> None:
        self._abandoned += 1
        self._send_credit()

        def returned(_: asyncio.Future[Any]) -> None:
            self._abandoned -= 1
            self._send_credit()

        future.add_done_callback(returned)

    def _isolated(self, fn: TaskFunction[Any, Any]) -> bool:
        """Whether `fn`'s attempts run in a child process: the function's choice, the
        worker's, the App's, and by default for a shared pool's worker."""
        pool = "process" if self._shared else None
        return resolve(fn.isolation, self.isolation, self.app.isolation, pool) == "process"

    def _children_pool(self) -> Children:
        if self._children is None:
            if self.app_ref is None:
                raise IsolationError(
                    "process isolation needs the App importable as module:attribute "
                    "(run `sluice worker module:app`, or pass app_ref=)"
                )
            max_tasks, max_rss_mb = self._child_limits
            self._children = Children(
                self.app_ref, slots=self.slots, max_tasks=max_tasks, max_rss_mb=max_rss_mb,
                memory_cgroups=cgroups.detect(),
            )  # fmt: skip
        return self._children

    async def _call_in_child(
        self, fn: TaskFunction[Any, Any], frame: TaskFrame, ctx: TaskContext, started: float
    ) -> ResultItem:
        """Run the attempt in a child process of the task's tenant (a child never
        serves two); its limits are the function's, its wall time the timeout."""
        job = Job(
            frame.id, frame.attempt, frame.function, bytes(frame.payload), frame.timeout_s,
            fn.config.memory_mb, fn.cpu_time_s, ctx._log is not None,
        )  # fmt: skip
        done, child = await self._children_pool().run(frame.tenant or "", job, ctx._log)
        if done is None:
            outcome, kind, message = death(child, job)
            log.warning("attempt %s/%d: %s", frame.id, frame.attempt, message)
            return ResultItem(
                frame.id, frame.attempt, outcome, started, time.time(),
                error_type=kind, error_message=message,
            )  # fmt: skip
        if done.outcome != "ok":
            return ResultItem(
                frame.id, frame.attempt, done.outcome, started, time.time(),
                error_type=done.error_type, error_message=done.error_message,
                traceback=done.traceback, retry_after_s=done.retry_after_s,
            )  # fmt: skip
        try:
            result = self._checked(done.result or b"null")
        except ResultRefused as exc:
            return ResultItem(
                frame.id, frame.attempt, "reject", started, time.time(),
                error_type=exc.kind, error_message=exc.message,
            )  # fmt: skip
        return ResultItem(frame.id, frame.attempt, "ok", started, time.time(), result=result)

    def _checked(self, encoded: bytes) -> msgspec.Raw:
        """A result the server will keep, or ResultRefused."""
        if len(encoded) > self._limits.max_result_bytes:
            raise ResultRefused(
                "ResultTooLarge", f"the result takes {len(encoded)} bytes; the server "
                f"keeps at most {self._limits.max_result_bytes}",
            )  # fmt: skip
        if not within_depth(encoded):
            raise ResultRefused("ResultTooDeep", f"the result nests deeper than {MAX_DEPTH} levels")
        return msgspec.Raw(encoded)

    def _send_credit(self) -> None:
        self._credit_dirty = True
        self._flush.set()

    async def _call(self, frame: TaskFrame, ctx: TaskContext, started: float) -> ResultItem:
        def fail(outcome: str, exc: BaseException, **extra: Any) -> ResultItem:
            tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
            return ResultItem(
                frame.id, frame.attempt, outcome, started, time.time(),
                error_type=type(exc).__name__, error_message=str(exc)[:4096], traceback=tb,
                **extra,
            )  # fmt: skip

        fn = self.app.tasks.get(frame.function)
        if fn is not None and self._isolated(fn):
            try:
                return await self._call_in_child(fn, frame, ctx, started)
            except Exception as exc:  # no child could be had (IsolationError, OSError...)
                log.error("attempt %s/%d: no child process: %s", frame.id, frame.attempt, exc)
                return fail("error", exc)
        try:
            if fn is None:
                raise Reject(f"this worker does not serve {frame.function!r}")
            payload = _payload.decode(frame.payload)
            args = [ctx, *payload.args] if fn.takes_context else payload.args
            if fn.is_async:
                _current.set(ctx)
                coro = fn.fn(*args, **payload.kwargs)
                value = await (asyncio.wait_for(coro, frame.timeout_s) if frame.timeout_s else coro)
            else:
                value = await self._call_sync(fn, args, payload.kwargs, ctx, frame)
            result = self._checked(_encoder.encode(value))
        except ResultRefused as exc:  # not the handler's error: kept, it could not be read
            return ResultItem(
                frame.id, frame.attempt, "reject", started, time.time(),
                error_type=exc.kind, error_message=exc.message,
            )  # fmt: skip
        except Reject as exc:
            return fail("reject", exc)
        except Retry as exc:
            return fail("retry", exc, retry_after_s=exc.delay)
        except Throttled as exc:
            return fail("throttled", exc, retry_after_s=exc.retry_after)
        except TimeoutError as exc:
            return fail("timeout", exc)
        except Exception as exc:
            if fn is not None and isinstance(exc, fn.non_retryable):
                return fail("reject", exc)
            return fail("error", exc)
        return ResultItem(frame.id, frame.attempt, "ok", started, time.time(), result=result)


def _waits() -> int | None:
    """How often this thread has waited (voluntary context switches: I/O, locks,
    sleeps), or None where the OS does not count them per thread."""
    if _RUSAGE_THREAD is None:
        return None
    return resource.getrusage(_RUSAGE_THREAD).ru_nvcsw


_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)


def machine_memory_mb() -> float | None:
    """The memory this worker may use (MiB): the machine's, or its cgroup's limit if
    lower; None where neither can be read."""
    found: list[float] = []
    with contextlib.suppress(OSError, ValueError):
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20)
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/cgroup") as own:  # cgroup v2: the line "0::/its/path"
            paths = [line[3:].strip() for line in own if line.startswith("0::")]
        with open(f"/sys/fs/cgroup{paths[0].rstrip('/')}/memory.max") as limit:
            text = limit.read().strip()
        if text != "max":  # "max": no limit set
            found.append(int(text) / 2**20)
    v1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes"  # cgroup v1, as a container sees it
    with contextlib.suppress(OSError, ValueError), open(v1) as limit:
        found.append(int(limit.read()) / 2**20)  # "no limit" is a huge number
    return min(found) if found else None


async def serve(app: App, *, exit_when_idle_s: float | None = None, **options: Any) -> None:
    """Run a worker until SIGTERM or SIGINT, then drain. With `exit_when_idle_s` it also
    drains once it has run nothing for that long (a Kubernetes Job's worker: it runs to
    completion)."""
    worker = Worker(app, **options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.drain()))
    idle = None
    if exit_when_idle_s is not None:
        idle = asyncio.create_task(_exit_when_idle(worker, exit_when_idle_s))
    await worker.run()
    if idle is not None:
        idle.cancel()
    if worker._abandoned:
        # Threads of timed-out handlers cannot be stopped, and the interpreter would wait
        # for them at exit; their tasks were already reported or handed back.
        log.warning("exiting with %d abandoned handler threads", worker._abandoned)
        os._exit(0)


async def _exit_when_idle(worker: Worker, idle_s: float) -> None:
    seen, idle_since = worker.completed, time.monotonic()
    while True:
        await asyncio.sleep(min(0.1, idle_s / 2))
        now = time.monotonic()
        if worker._running or worker.completed != seen:
            seen, idle_since = worker.completed, now
        elif now - idle_since >= idle_s:
            log.info("worker %s idle for %g s after %d tasks; exiting", worker.worker_id,
                     idle_s, worker.completed)  # fmt: skip
            await worker.drain()
            return
