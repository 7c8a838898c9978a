"""The notifier: delivers the outbox (DESIGN §4 "Result notification", OBSERVABILITY §6),
on the timers leader.

Rows are written with the ends of tasks (store: the fenced finish, a cancel, an expiry,
the reaper), so a crash loses none; here each due row is delivered once per beat:

- a webhook: `POST url` with `{"type": "task.<event>", "timestamp", "data"}`, signed as
  Standard Webhooks v1 with every secret of the webhook (engine/signatures.py), through
  the egress guard (engine/egress.py: the same rules as HTTP targets, under
  `webhooks_allow_loopback` / `webhooks_allow_private`), no redirects, at most 64 KiB of
  the answer read. 2xx delivers; anything else is tried again after the next wait of
  `webhook_retry_s` (Retry-After, if longer); after the last, or on 410 Gone, the
  receiver is disabled (an audit entry `webhook.disabled`, and `GET /v1/webhooks`) until
  `POST /v1/webhooks/{id}/enable`, which makes what waited due again.
- a destination: a task of "function:NAME" with the result (or, on failure, the error)
  as its one argument, or an event posted to "topic:NAME"; keyed by the row's id, so a
  row delivered twice (a crash between the submit and the settle) starts nothing twice.

The `webhook-id` is the row's id: the same on every try and after any restart, the
receiver's key to drop duplicates. A task's rows for one receiver go out in order: a
row is due only once every earlier row of its task for that receiver is settled.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec

from ..contract import FunctionConfig, TaskSpec, Webhook
from ..errors import ClientError, NotFound
from ..model import (
    AFTER_KEY,
    FUNCTION_DESTINATION,
    SHARED,
    SUCCEEDED,
    TOPIC_DESTINATION,
    Notification,
    WebhookEndpoint,
)
from . import egress
from .admission import webhook_policy
from .audit import AuditLog
from .egress import EgressPolicy
from .functions import Functions
from .intake import Intake
from .receivers import receiver_id
from .runtime import Runtime
from .signatures import new_secret, signature_header
from .topics import Topics

log = logging.getLogger("sluice.notifier")

BATCH = 200  # rows looked at per beat
PARALLEL = 32  # deliveries in flight at once
MAX_ANSWER_BYTES = 64 * 1024
SHOWN_ANSWER = 500  # characters of an answer kept with the row
TRIES_KEPT = 20  # the last tries kept with a row (time, status or error, duration, answer)
TRY_ANSWER = 200  # characters of each kept try's answer
INLINE_RESULT_BYTES = 16 * 1024  # a larger result is fetched by the receiver
JITTER = 0.2  # each wait is stretched by up to this fraction
_json = msgspec.json.Encoder()

PENDING, DELIVERED, FAILED, DROPPED = "pending", "delivered", "failed", "dropped"


class Tried(msgspec.Struct, frozen=True):
    """What one try came to."""

    ok: bool
    status: int | None = None
    answer: str | None = None
    retry_after: float | None = None
    disable: str | None = None  # the receiver asked to stop (410): why
    final: bool = False  # not worth trying again (refused by the egress rules)
    duration_s: float = 0.0  # from sending to the answer (or the error)


class Notifier:
    def __init__(
        self, rt: Runtime, functions: Functions, intake: Intake, topics: Topics,
        audit: AuditLog, rng: random.Random | None = None,
    ) -> None:  # fmt: skip
        self._rt = rt
        self._functions = functions
        self._intake = intake
        self._topics = topics
        self._audit = audit
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    @property
    def policy(self) -> EgressPolicy:
        return webhook_policy(self._rt.settings)

    async def send_once(self) -> int:
        """Deliver what is due (the timers leader's job); returns how many were tried."""
        due = await self._rt.store.due_notifications(self._rt.clock.now(), BATCH)
        if not due:
            return 0
        gate = asyncio.Semaphore(PARALLEL)

        async def one(n: Notification) -> None:
            async with gate:
                try:
                    await self._deliver(n)
                except Exception:
                    log.exception("delivering notification %s failed", n.id)

        await asyncio.gather(*(one(n) for n in due))
        return len(due)

    # -- what the API shows and does --------------------------------------------------

    async def deliveries(self, tenant_id: str, task_id: str) -> list[Notification]:
        return await self._rt.store.list_notifications(tenant_id, task_id)

    async def receivers(self, tenant_id: str) -> list[tuple[str, list[str], WebhookEndpoint, int]]:
        """(url, its functions, its state, its deliveries being retried) of every webhook
        URL of the tenant's functions, of every receiver disabled (the URL may have left
        the configs since), then of tasks' own webhooks being retried (no config names
        them): what `GET /v1/webhooks` lists and `enable` finds."""
        rt = self._rt
        functions: dict[str, list[str]] = {}
        for name, config in sorted((await self._functions.usable(tenant_id)).items()):
            for w in config.webhooks:
                functions.setdefault(w.url, []).append(name)
        states = {e.url: e for e in await rt.store.list_endpoints(tenant_id)}
        retrying = await rt.store.retrying_counts(tenant_id)
        urls = sorted(functions.keys() | {u for u, e in states.items() if e.disabled_at})
        urls += sorted(u for u in retrying.keys() - set(urls)
                       if not u.startswith((FUNCTION_DESTINATION, TOPIC_DESTINATION)))  # fmt: skip
        return [
            (u, functions.get(u, []), states.get(u) or WebhookEndpoint(tenant_id, u, None, None),
             retrying.get(u, 0))
            for u in urls
        ]  # fmt: skip

    async def enable(self, tenant_id: str, endpoint_id: str, actor: str) -> WebhookEndpoint:
        """Enable a disabled receiver: what waited for it is due at once. A receiver that
        is not disabled stays as it is."""
        rt = self._rt
        for url, _functions, state, _retrying in await self.receivers(tenant_id):
            if receiver_id(url) == endpoint_id:
                if await rt.store.enable_endpoint(tenant_id, url, rt.clock.now()):
                    await self._audit.record(actor, tenant_id, "webhook.enabled", detail=url)
                    return WebhookEndpoint(tenant_id, url, None, "enabled")
                return state
        raise NotFound(f"no webhook {endpoint_id!r}", code="webhook_not_found", field="webhook_id")

    async def signing(self, tenant_id: str) -> tuple[list[str], float] | None:
        """The tenant's signing secrets of per-task webhooks, and when last rotated."""
        return await self._rt.store.get_webhook_secrets(tenant_id)

    async def rotate(self, tenant_id: str, actor: str) -> tuple[list[str], float]:
        """A new signing secret, first; the one before it keeps signing too (receivers
        move over meanwhile) until the next rotation drops it."""
        rt = self._rt
        found = await rt.store.get_webhook_secrets(tenant_id)
        secrets = [new_secret(), *(found[0][:1] if found else [])]
        now = rt.clock.now()
        await rt.store.set_webhook_secrets(tenant_id, secrets, now)
        await self._audit.record(actor, tenant_id, "webhook.secret", detail=f"{len(secrets)} keys")
        return secrets, now

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, n: Notification) -> None:
        began = self._rt.clock.monotonic()
        if n.url.startswith((FUNCTION_DESTINATION, TOPIC_DESTINATION)):
            tried = await self._start(n)
        else:
            secrets = await self._secrets(n)
            if secrets is None:
                dropped = Tried(
                    False, answer="neither the function nor the task has this webhook now"
                )
                await self._settle(n, DROPPED, None, dropped)
                return
            tried = await self._post(n, secrets)
        duration = round(self._rt.clock.monotonic() - began, 6)
        await self._after(n, msgspec.structs.replace(tried, duration_s=duration))

    async def _after(self, n: Notification, tried: Tried) -> None:
        now = self._rt.clock.now()
        if tried.ok:
            await self._settle(n, DELIVERED, None, tried)
            return
        if tried.final:
            await self._settle(n, FAILED, None, tried)
            return
        if tried.disable is not None:
            # Kept pending: a re-enable sends it, in order, with what came after.
            await self._settle(n, PENDING, now, tried)
            await self._disable(n, tried.disable)
            return
        waits = self._rt.settings.webhook_retries
        if n.tries >= len(waits):  # that was the last try
            await self._settle(n, FAILED, None, tried)
            if not n.url.startswith((FUNCTION_DESTINATION, TOPIC_DESTINATION)):
                await self._disable(n, f"failing since {_iso(n.created_at)}: {tried.answer}")
            return
        wait = waits[n.tries] * (1 + JITTER * self._rng.random())
        if tried.retry_after is not None:
            wait = max(wait, tried.retry_after)
        await self._settle(n, PENDING, now + wait, tried)

    async def _settle(
        self, n: Notification, state: str, next_at: float | None, tried: Tried
    ) -> None:
        now = self._rt.clock.now()
        log = kept_tries(n.log, now, tried)
        await self._rt.store.settle_notification(
            n, state, next_at, now, tried.status, tried.answer, log
        )

    async def _disable(self, n: Notification, reason: str) -> None:
        rt = self._rt
        await rt.store.disable_endpoint(n.tenant_id, n.url, rt.clock.now(), reason[:SHOWN_ANSWER])
        log.warning("webhook %s of tenant %s disabled: %s", n.url, n.tenant_id, reason)
        await self._audit.record("sluice", n.tenant_id, "webhook.disabled", detail=n.url)

    # -- webhooks ------------------------------------------------------------------

    async def _secrets(self, n: Notification) -> list[str] | None:
        """The keys that sign the row: its function's webhook's (as it has them now: they
        may have been rotated since the row was written), or, for a webhook given with
        the task at submit, the tenant's signing secrets; None: no such webhook now."""
        webhook = await self._webhook(n)
        if webhook is not None:
            return list(webhook.secrets)
        task = await self._rt.store.get_task(n.tenant_id, n.task_id)
        if task is None or not task.webhooks or n.url not in task_urls(task.webhooks):
            return None
        found = await self._rt.store.get_webhook_secrets(n.tenant_id)
        return found[0] if found else None

    async def _webhook(self, n: Notification) -> Webhook | None:
        """The row's webhook as its function has it now (its secrets may have been
        rotated since the row was written)."""
        # The tenant's own function, or the one shared pools serve (Functions.usable).
        config = (await self._functions.usable(n.tenant_id)).get(n.function)
        found = _find(config, n.url)
        if found is None:
            # Set on another node a moment ago, perhaps, and its hint not here yet.
            for owner in (n.tenant_id, SHARED):
                records = await self._rt.store.list_functions(owner)
                fresh = next((r.config for r in records if r.config.name == n.function), None)
                if fresh is not None:
                    return _find(fresh, n.url)
        return found

    async def body(self, n: Notification) -> bytes:
        """`{"type", "timestamp", "data"}`: thin, with the result inline when small."""
        data: dict[str, Any] = {
            "task_id": n.task_id, "function": n.function, "event": n.event,
            "attempt": n.attempt,
        }  # fmt: skip
        task = await self._rt.store.get_task(n.tenant_id, n.task_id)
        if task is not None:
            data["state"] = task.state
            if n.event == SUCCEEDED and task.result is not None:
                if len(task.result) <= INLINE_RESULT_BYTES:
                    data["result"] = msgspec.Raw(task.result)
            elif task.error is not None and n.event != SUCCEEDED:
                data["error"] = task.error
        data["result_url"] = f"/v1/tasks/{n.task_id}"
        message = {"type": f"task.{n.event}", "timestamp": _iso(n.created_at), "data": data}
        return _json.encode(message)

    async def _post(self, n: Notification, secrets: list[str]) -> Tried:
        rt = self._rt
        body = await self.body(n)
        timestamp = int(rt.clock.now())
        headers = {
            "content-type": "application/json",
            "user-agent": "sluice",
            "webhook-id": n.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, n.id, timestamp, body),
        }
        try:
            egress.check_url(n.url, self.policy)
            session = await self._client()
            timeout = aiohttp.ClientTimeout(total=rt.settings.webhook_timeout_s)
            async with session.post(
                n.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as answer:
                data = await answer.content.read(MAX_ANSWER_BYTES)
                status = answer.status
                retry_after = _seconds(answer.headers.get("retry-after"))
        except TimeoutError:
            return Tried(False, answer=f"no answer within {rt.settings.webhook_timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            refusal = egress.refusal_in(exc)
            if refusal is not None:
                return Tried(False, answer=f"refused: {refusal}", final=True)
            return Tried(False, answer=f"{type(exc).__name__}: {exc}"[:SHOWN_ANSWER])
        except ValueError as exc:  # a URL that is none (never set through the API)
            return Tried(False, answer=f"url {exc}", final=True)
        shown = data.decode(errors="replace")[:SHOWN_ANSWER]
        if 200 <= status < 300:
            return Tried(True, status, shown)
        if status == 410:
            return Tried(False, status, shown, disable="the receiver answered 410 Gone")
        return Tried(False, status, shown, retry_after=retry_after)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = egress.session(self.policy, limit=0, keepalive_timeout=30)
        return self._session

    # -- destinations --------------------------------------------------------------

    async def _start(self, n: Notification) -> Tried:
        """Submit the next function (or post to the topic) with the task's result, or
        its error; keyed by the row, so a second delivery starts nothing new."""
        task = await self._rt.store.get_task(n.tenant_id, n.task_id)
        argument: Any
        if n.event == SUCCEEDED:
            argument = msgspec.Raw((task.result if task else None) or b"null")
        else:
            argument = {
                "task_id": n.task_id, "function": n.function, "event": n.event,
                "attempt": n.attempt, "error": task.error if task else None,
            }  # fmt: skip
        try:
            if n.url.startswith(FUNCTION_DESTINATION):
                function = n.url.removeprefix(FUNCTION_DESTINATION)
                spec = TaskSpec(function=function, args=msgspec.Raw(_json.encode([argument])),
                                key=after_key(n))  # fmt: skip
                [result] = await self._intake.submit(n.tenant_id, [spec])
                return Tried(True, 201 if result.created else 200, f"task {result.id}")
            topic = n.url.removeprefix(TOPIC_DESTINATION)
            field = "result" if n.event == SUCCEEDED else "error"
            event = {"id": n.id, "task_id": n.task_id, "function": n.function,
                     "event": n.event, field: argument}  # fmt: skip
            _, tasks = await self._topics.publish(n.tenant_id, topic, event)
            return Tried(True, 200, " ".join(f"task {r.id}" for _, r in tasks) or "no subscriber")
        except ClientError as exc:  # an unknown function, a bad argument: retried
            return Tried(False, exc.status, f"{exc.code}: {exc.message}"[:SHOWN_ANSWER])


def _find(config: FunctionConfig | None, url: str) -> Webhook | None:
    if config is None:
        return None
    return next((w for w in config.webhooks if w.url == url), None)


def kept_tries(log: str | None, now: float, tried: Tried) -> str:
    """The row's kept tries with this one: the last TRIES_KEPT, each `{"at", "status"}`
    (None: no answer), `"error"` (why there was none) or `"answer"` (its start), and
    `"duration_s"`."""
    entry: dict[str, Any] = {"at": round(now, 6), "status": tried.status,
                             "duration_s": tried.duration_s}  # fmt: skip
    text = (tried.answer or "")[:TRY_ANSWER]
    entry["answer" if tried.status is not None else "error"] = text
    tries: list[Any] = msgspec.json.decode(log) if log else []
    tries.append(entry)
    return _json.encode(tries[-TRIES_KEPT:]).decode()


def task_urls(webhooks: str) -> set[str]:
    """The URLs of a task's own webhooks (the tasks column: JSON `[{url, events}]`)."""
    return {w["url"] for w in msgspec.json.decode(webhooks)}


def after_key(n: Notification) -> str:
    """The key of a destination's task: it names the task it follows."""
    return f"{AFTER_KEY}{n.task_id}:{n.id}"


def next_task(n: Notification) -> str | None:
    """A delivered destination's task, from its answer."""
    if n.url.startswith(FUNCTION_DESTINATION) and n.answer and n.answer.startswith("task "):
        return n.answer.removeprefix("task ")
    return None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None
