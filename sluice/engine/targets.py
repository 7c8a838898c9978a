"""HTTP targets: functions served by an HTTP endpoint in any language (DESIGN §5, §6).

A function whose config has a `target` is served by the server itself: a `TargetConn`
stands in the registry like a worker connection, so the dispatcher claims its tasks the
same way (fair order, priorities, limits), and the gateway writes its results the same
way (fenced finishes, retries, dead letters). What differs is delivery: each task is
one POST to the endpoint, and the connection's free slots are the AIMD limit of the
target (policy/aimd.py), so Sluice finds the endpoint's capacity by itself: 429 and 503
cut it, successes under backlog grow it, and a Retry-After pauses the target.

The request: `POST url` with a JSON body `{"id", "function", "attempt", "deadline",
"args", "kwargs"}`, a W3C `traceparent` (the task's, or with tracing on its attempt's
span's), and Standard Webhooks signature headers
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`). The answer: 2xx success (the body is the result), 429 and 503
flow control (with an optional Retry-After), 3xx and other 4xx not retryable, 5xx,
time-outs and connection errors retryable. A request is aborted (its connection closed,
so the endpoint can notice) when its task is cancelled, or past the target's
`timeout_s` or the task's own timeout, whichever is shorter.

Egress (engine/egress.py): targets on loopback, private, link-local or otherwise internal
addresses are refused unless the operator allows them (`targets_allow_loopback`, which
`sluice dev` sets, and `targets_allow_private`): when the function is set, before each
call, and on every new connection (the resolver and the socket factory), always under
the node's current settings, so a target stored while they allowed it is refused once
they no longer do. Such a refusal is not retried: the task goes to dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import unicodedata
from typing import TYPE_CHECKING, NamedTuple

import aiohttp
import msgspec

from ..contract import FunctionConfig, HttpTarget
from ..errors import Forbidden, InvalidRequest, Unprocessable
from ..model import ClaimedTask
from ..policy.aimd import ERROR, OK, THROTTLED, Aimd
from ..protocol import Cancel, LogLine, ResultItem
from . import egress
from .attempts import Finisher
from .egress import EgressPolicy, EgressRefused
from .queues import Queues
from .registry import TARGET_PREFIX, Registry, WorkerConn
from .runtime import Runtime
from .signatures import is_valid, new_secret, sign

if TYPE_CHECKING:
    from .tracing import ServerSpans

log = logging.getLogger("sluice.targets")

MAX_RESULT_BYTES = 1024 * 1024
TICK_S = 0.1  # how often AIMD windows are closed and paused targets looked at again
MAX_TIMEOUT_S = 900.0
_json = msgspec.json.Encoder()
_cancel_decoder = msgspec.json.Decoder(Cancel)


# -- config ----------------------------------------------------------------------
def check_target(target: HttpTarget, allow_loopback: bool, allow_private: bool) -> HttpTarget:
    """A target that makes sense, with a signing secret: the config to store."""
    if len(target.url) > 2048:
        raise InvalidRequest("target.url is at most 2,048 characters", field="target.url")
    try:  # a name is checked when it is resolved, at every new connection
        egress.check_url(target.url, EgressPolicy(allow_loopback, allow_private))
    except EgressRefused as exc:
        # The server's policy, not the request's form: 403 (the schema cannot state it).
        raise Forbidden(str(exc), code="target_not_allowed", field="target.url") from None
    except ValueError as exc:  # the shape is the schema's; whether a host parses is not
        raise Unprocessable(f"target.url {exc}", code="invalid_url", field="target.url") from None
    if not 0 < target.timeout_s <= MAX_TIMEOUT_S:
        raise InvalidRequest(
            f"target.timeout_s is above 0 and at most {MAX_TIMEOUT_S:.0f}", field="target.timeout_s"
        )
    if target.secret is None:
        return msgspec.structs.replace(target, secret=new_secret())
    if not is_valid(target.secret):
        raise InvalidRequest(
            "target.secret is whsec_ and 24 to 64 bytes in base64", field="target.secret"
        )
    return target


# -- signing: engine/signatures.py, shared with webhooks -------------------------------


def request_body(task: ClaimedTask, deadline: float) -> bytes:
    """{"id", "function", "attempt", "deadline", "args", "kwargs"}: the payload is
    already `{"args": [...], "kwargs": {...}}`, so it is spliced, not re-encoded. The
    deadline (Unix seconds) is when Sluice stops waiting for the answer."""
    head = _json.encode(
        {"id": task.id, "function": task.function, "attempt": task.attempt,
         "deadline": round(deadline, 3)}
    )  # fmt: skip
    return head[:-1] + b"," + task.payload.strip()[1:]


def traceparent(task: ClaimedTask) -> str:
    """W3C trace context: the trace is the task's (its id hashed), the span the attempt."""
    trace = hashlib.blake2b(task.id.encode(), digest_size=16).hexdigest()
    span = hashlib.blake2b(f"{task.id}:{task.attempt}".encode(), digest_size=8).hexdigest()
    return f"00-{trace}-{span}-01"


def trace_headers(task: ClaimedTask) -> dict[str, str]:
    """The task's creation context as it was submitted (the server records no span of the
    call); a task submitted outside any trace gets one of its own, from its id."""
    if task.trace_parent is None:
        return {"traceparent": traceparent(task)}
    if task.trace_state:
        return {"traceparent": task.trace_parent, "tracestate": task.trace_state}
    return {"traceparent": task.trace_parent}


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    return None  # an HTTP date: not worth the parse for a pause capped at minutes


# -- the connection ----------------------------------------------------------------
class TargetConn(WorkerConn):
    """One HTTP target of one tenant's function, as the dispatcher sees a worker."""

    def __init__(self, targets: Targets, tenant_id: str, function: str, target: HttpTarget,
                 max_concurrency: int | None) -> None:  # fmt: skip
        self._targets = targets
        self._clock = targets.rt.clock
        self.target = target
        self.aimd = Aimd(self._clock.now(), maximum=max_concurrency)
        self._epochs: dict[str, int] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._by_task: dict[str, asyncio.Task[None]] = {}  # the call of each task in flight
        self._stopping: set[str] = set()  # tasks whose calls a cancel aborts
        self._pending: list[ResultItem] = []
        self._flushing = False
        self.backlog = False  # the dispatcher filled every slot this window
        self.room_seen = 0  # free slots at the last tick

        async def nowhere(_frame: bytes) -> None:
            return None

        super().__init__(tenant_id, TARGET_PREFIX + function, 0, (function,), nowhere,
                         self._clock.now())  # fmt: skip

    # A target never goes silent, and its slots are its AIMD room.
    @property  # type: ignore[override]
    def last_seen(self) -> float:
        return self._clock.now()

    @last_seen.setter
    def last_seen(self, _value: float) -> None:
        pass

    @property
    def free(self) -> int:
        return self.aimd.room(self._clock.now()) - self.reserved

    def deliver(self, tasks: list[ClaimedTask]) -> None:
        for task in tasks:
            self.inflight[task.id] = task
            self._epochs[task.id] = self.aimd.sent()
            call = asyncio.create_task(self._call(task))
            self._calls.add(call)
            self._by_task[task.id] = call
            call.add_done_callback(self._calls.discard)
        if self.free <= 0:
            self.backlog = True

    def send(self, frame: bytes) -> None:
        """A cancel of running tasks (the only frame a server sends a target): abort
        their requests in flight, so the endpoint sees the connection close."""
        try:
            cancel = _cancel_decoder.decode(frame)
        except msgspec.DecodeError:
            return
        for task_id in cancel.ids:
            call = self._by_task.get(task_id)
            if call is not None and not call.done():
                self._stopping.add(task_id)
                call.cancel()

    async def _call(self, task: ClaimedTask) -> None:
        clock = self._clock
        started = clock.now()
        spans = self._targets.spans
        try:
            if spans is None or task.trace_parent is None:
                answer = await self._post(task, trace_headers(task))
            else:  # the endpoint's spans nest under this attempt's
                with spans.call(task, started) as (span, headers):
                    answer = await self._post(task, headers)
                    spans.answered(span, answer.outcome, answer.error_type, answer.error)
        except asyncio.CancelledError:
            if task.id not in self._stopping:
                raise  # the node stops (abandon): the task is handed back
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            answer = Answer("cancelled", error="cancelled: the request was aborted")
        finally:
            self._by_task.pop(task.id, None)
            self._stopping.discard(task.id)
        finished = clock.now()
        epoch = self._epochs.pop(task.id, self.aimd.epoch)
        throttled = answer.kind == THROTTLED
        if answer.outcome == "cancelled":  # says nothing of the target's capacity
            self.aimd.inflight = max(0, self.aimd.inflight - 1)
        else:
            self.aimd.answered(answer.kind, epoch, finished, latency_s=finished - started,
                               retry_after_s=answer.wait if throttled else None)  # fmt: skip
        self._pending.append(
            ResultItem(
                id=task.id, attempt=task.attempt, outcome=answer.outcome, started_at=started,
                finished_at=finished, result=msgspec.Raw(answer.result),
                error_type=answer.error_type if answer.error else None,
                error_message=answer.error, retry_after_s=answer.wait if throttled else None,
                logs=answer.logs,
            )
        )  # fmt: skip
        if not self._flushing:
            self._flushing = True
            await asyncio.sleep(0)  # answers that land in the same turn share one write
            items, self._pending, self._flushing = self._pending, [], False
            await self._targets.attempts.finish(self, items)
        if self.free > 0:
            self._targets.queues.wake()

    async def _post(self, task: ClaimedTask, trace: dict[str, str]) -> Answer:
        """One POST of the task; the endpoint's answer (or its absence) as an outcome."""
        now = self._clock.now()
        # The target's wait, or the task's own timeout if shorter: past it the request
        # is aborted (the endpoint sees the connection close) and the attempt failed.
        wait_s = self.target.timeout_s
        if task.timeout_s is not None:
            wait_s = min(wait_s, task.timeout_s)
        body = request_body(task, now + wait_s)
        timestamp = int(now)
        headers = {
            "content-type": "application/json",
            "user-agent": "sluice",
            **trace,  # traceparent, and tracestate if the task has one
            "webhook-id": task.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.target.secret or "", task.id, timestamp, body),
            "sluice-attempt": str(task.attempt),
        }
        targets = self._targets
        try:
            # The stored URL under the node's settings of now: a refused literal or
            # localhost name fails here, by name, before aiohttp reads it its own way.
            egress.check_url(self.target.url, targets.policy)
            session = await targets.session()
            timeout = aiohttp.ClientTimeout(total=wait_s)
            async with session.post(
                self.target.url, data=body, headers=headers, timeout=timeout,
                allow_redirects=False,
            ) as answer:  # fmt: skip
                data = await answer.content.read(MAX_RESULT_BYTES + 1)
                status = answer.status
                wait = retry_after(answer.headers.get("retry-after"))
                kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        except TimeoutError:
            return Answer("timeout", error=f"no answer within {wait_s:g} s")
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError) as exc:
            refusal = egress.refusal_in(exc)
            if refusal is not None:
                return self._refused(refusal)
            return Answer("error", error=f"{type(exc).__name__}: {exc}")
        except ValueError as exc:  # a stored URL that is none (never set through the API)
            return Answer("reject", error=f"target.url {exc} (not retried)")
        logs: list[LogLine] = []
        if kind == ENVELOPE:
            data, said, logs = _opened(data, self._clock.now())
            if said is not None and not 200 <= status < 300:
                data = said.encode()
        if 200 <= status < 300:
            return Answer("ok", OK, _as_json(data), logs=logs)
        if status == 429 or status == 503:
            error = f"HTTP {status}: the target asks to slow down"
            return Answer("throttled", THROTTLED, error=error, wait=wait, logs=logs)
        if 500 <= status < 600:
            return Answer("error", error=f"HTTP {status}: {_snippet(data)}", logs=logs)
        error = f"HTTP {status}: {_snippet(data)} (not retried)"
        return Answer("reject", error=error, logs=logs)

    def _refused(self, refusal: EgressRefused) -> Answer:
        """Egress refused: not retried, as the settings hold until the node restarts."""
        host = egress.host_of(self.target.url)
        said = str(refusal) if refusal.host == host else f"{host}: {refusal}"
        return Answer("reject", error=f"{said} (not retried)", error_type="EgressRefused")

    async def abandon(self) -> None:
        """Stop: cancel the requests in flight and hand their tasks back (no attempt)."""
        for call in list(self._calls):
            call.cancel()
        for call in list(self._calls):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await call
        held = [(t.id, t.attempt, t.dispatched_at) for t in self.inflight.values() if t is not None]
        self.inflight.clear()
        if held:
            store = self._targets.rt.store
            await store.release_tasks(self.tenant_id, self.worker_id, held, self._clock.now())

    async def close(self) -> None:
        self.closed = True


class Answer(NamedTuple):
    """What became of one POST."""

    outcome: str  # a ResultItem outcome: ok, error, timeout, throttled, reject
    kind: str = ERROR  # what AIMD makes of it
    result: bytes = b"null"
    error: str | None = None
    error_type: str = "HttpTargetError"
    wait: float | None = None  # Retry-After, in seconds
    logs: list[LogLine] = []  # lines the endpoint sent back in an envelope


ENVELOPE = "application/vnd.sluice.answer+json"
"""An answer of this content type is an envelope: `{"result": ..., "error": "...",
"logs": [...]}` (docs/http-targets.md), so an endpoint can send its log lines back."""


class _Line(msgspec.Struct, frozen=True):
    message: str
    level: str | int = "INFO"
    logger: str = "target"
    at: float | None = None
    extra: dict[str, object] | None = None


class _Envelope(msgspec.Struct, frozen=True):
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: str | None = None
    logs: list[str | _Line] = []


_envelope = msgspec.json.Decoder(_Envelope)
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}


def _opened(data: bytes, now: float) -> tuple[bytes, str | None, list[LogLine]]:
    """An envelope's result, error and lines; a body that is no envelope is the result."""
    try:
        envelope = _envelope.decode(data[:MAX_RESULT_BYTES])
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return data, None, []
    lines = []
    for seq, raw in enumerate(envelope.logs):
        line = _Line(raw) if isinstance(raw, str) else raw
        level = line.level if isinstance(line.level, int) else _LEVELS.get(line.level.upper(), 20)
        extra = msgspec.Raw(_json.encode(line.extra)) if line.extra else msgspec.Raw(b"null")
        at = line.at if line.at is not None else now
        lines.append(LogLine(seq, at, level, "log", line.logger, line.message, extra))
    return bytes(envelope.result), envelope.error, lines


def _as_json(data: bytes) -> bytes:
    """The result as JSON: the body if it is JSON, else the body as a JSON string."""
    data = data[:MAX_RESULT_BYTES].strip()
    if not data:
        return b"null"
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return _json.encode(data.decode(errors="replace"))
    return data


def _printable(text: str) -> str:
    """One log line whatever `text` holds: control, format and line-breaking characters
    (a newline, NUL, a right-to-left override) are escaped."""
    return "".join(
        ascii(c)[1:-1] if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" else c
        for c in text
    )


def _snippet(data: bytes) -> str:
    text = data[:200].decode(errors="replace").strip()
    return text or "(empty body)"


# -- every target of this node -----------------------------------------------------
class Targets:
    def __init__(
        self, rt: Runtime, registry: Registry, queues: Queues, attempts: Finisher,
        spans: ServerSpans | None = None,
    ) -> None:  # fmt: skip
        self.rt = rt
        self.spans = spans  # when tracing is on (engine/tracing.py)
        self.queues = queues  # told when a target has room again
        self.attempts = attempts  # writes the answers, as for a worker's results
        self._registry = registry
        self._conns: dict[tuple[str, str], TargetConn] = {}
        self._session: aiohttp.ClientSession | None = None
        self._session_policy: EgressPolicy | None = None

    @property
    def policy(self) -> EgressPolicy:
        """Egress under the node's current settings."""
        s = self.rt.settings
        return EgressPolicy(s.targets_allow_loopback, s.targets_allow_private)

    async def session(self) -> aiohttp.ClientSession:
        """The node's client session: pooled, kept-alive connections, each checked when
        it was opened. Settings change only with a restart and the session lives and
        dies with the node process, so no pooled connection outlives the settings it
        was checked under; a node handed other settings in process gets a new pool."""
        policy = self.policy
        current = self._session
        if current is not None and not current.closed and self._session_policy == policy:
            return current
        fresh = egress.session(policy, limit=0, keepalive_timeout=30)
        self._session, self._session_policy = fresh, policy
        if current is not None:
            await current.close()
        return fresh

    def get(self, tenant_id: str, function: str) -> TargetConn | None:
        return self._conns.get((tenant_id, function))

    def items(self) -> list[tuple[tuple[str, str], TargetConn]]:
        """((tenant, function), connection) of every target."""
        return list(self._conns.items())

    async def start(self) -> None:
        store = self.rt.store
        for tenant in await store.list_tenants():
            records = await store.list_functions(tenant.id)
            self.sync(tenant.id, {r.config.name: r.config for r in records})
        self._warn_refused()

    def _warn_refused(self) -> None:
        """Targets stored under laxer settings: every call to them will be refused."""
        policy = self.policy
        for (tenant_id, function), conn in self._conns.items():
            try:
                egress.check_url(conn.target.url, policy)
            except (EgressRefused, ValueError) as exc:
                log.warning(
                    "function %s of %s targets %s, which the current settings refuse; its "
                    "tasks will go to dead: %s",
                    *map(_printable, (function, tenant_id, conn.target.url, str(exc))),
                )

    def sync(self, tenant_id: str, functions: dict[str, FunctionConfig]) -> None:
        """Make the tenant's target connections match its function configs."""
        for name, config in functions.items():
            key = (tenant_id, name)
            conn = self._conns.get(key)
            if config.target is None:
                if conn is not None:
                    self._drop(key)
                continue
            if conn is not None and conn.target == config.target:
                conn.aimd.cap(config.max_concurrency)
                continue
            if conn is not None:
                self._drop(key)
            conn = TargetConn(self, tenant_id, name, config.target, config.max_concurrency)
            self._conns[key] = conn
            self._registry.add(conn)
            log.info("function %s of %s is served by %s",
                     name, _printable(tenant_id), _printable(config.target.url))  # fmt: skip
        self.queues.wake()

    def _drop(self, key: tuple[str, str]) -> None:
        conn = self._conns.pop(key)
        self._registry.remove(conn)
        conn.closed = True  # requests in flight still finish and are written

    def tick(self) -> None:
        """Close AIMD windows and look at paused targets again (a timer's job, TICK_S)."""
        now = self.rt.clock.now()
        for conn in list(self._conns.values()):
            if conn.aimd.tick(now, conn.backlog):
                conn.backlog = False
            # A pause ended or the limit grew since the last tick: room the dispatcher
            # was not told of.
            room = conn.free
            if room > 0 and room > conn.room_seen:
                self.queues.wake()
            conn.room_seen = room

    async def stop(self) -> None:
        for key in list(self._conns):
            conn = self._conns[key]
            self._drop(key)
            try:
                await conn.abandon()
            except Exception:
                log.exception("handing back the tasks of %s failed", conn.worker_id)
        if self._session is not None:
            await self._session.close()
            self._session = None
