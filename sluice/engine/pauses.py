"""Pause and resume by selector (DESIGN §3, §6).

A pause is a rule: a selector on function, tags and priority. While it stands, every
waiting task it matches is held (state `paused`, out of the ready index, so claims never
see it): those waiting when it is made, new submissions, and retries of running tasks
(running ones finish). Lifting it releases the tasks it held that no other pause holds,
ready in their old fair place (their start tags) or scheduled if not due yet.

Rules live in the store (they survive restarts) and in a per-tenant cache on each node,
which the bus ("pauses" hint) tells to reload when another node changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import msgspec

from ..contract import Selector
from ..errors import InvalidRequest, NotFound
from ..model import PAUSED, READY, SCHEDULED, PauseRow
from ..store import Promoted, Reaped
from .fairness import Fairness
from .queues import Queues
from .runtime import Runtime

log = logging.getLogger("sluice.pauses")

CHUNK = 1000  # tasks per commit while holding or releasing
SECOND_SWEEP_S = 1.0  # well past the bus's hint latency (50 ms) and a submit's commit
ALLOWED = ("function", "tags", "priority_min", "priority_max")
_selector_decoder = msgspec.json.Decoder(Selector)
_tags_decoder = msgspec.json.Decoder(list[str])
_encoder = msgspec.json.Encoder()


def matches(selector: Selector, function: str, tags: list[str], priority: int) -> bool:
    if selector.function is not None and function not in selector.function:
        return False
    if selector.tags is not None and not set(selector.tags) <= set(tags):
        return False
    if selector.priority_min is not None and priority < selector.priority_min:
        return False
    return selector.priority_max is None or priority <= selector.priority_max


class Pauses:
    def __init__(self, rt: Runtime, fairness: Fairness, queues: Queues) -> None:
        self._rt = rt
        self._fairness = fairness
        self._queues = queues
        self._rules: dict[str, list[tuple[str, Selector]]] = {}
        self._sweeps: set[asyncio.Task[None]] = set()

    async def rules(self, tenant_id: str) -> list[tuple[str, Selector]]:
        cached = self._rules.get(tenant_id)
        if cached is None:
            rows = await self._rt.store.list_pauses(tenant_id)
            cached = self._rules[tenant_id] = [
                (r.id, _selector_decoder.decode(r.selector)) for r in rows
            ]
        return cached

    def forget(self, tenant_id: str | None = None) -> None:
        """Reload from the store next time (another node changed the rules)."""
        if tenant_id is None:
            self._rules.clear()
        else:
            self._rules.pop(tenant_id, None)

    def holds(
        self, tenant_id: str, function: str, tags: list[str] | str | None, priority: int
    ) -> bool:
        """Does a cached rule hold this task? (Callers load the cache first.)"""
        rules = self._rules.get(tenant_id)
        if not rules:
            return False
        tag_list = _tags_decoder.decode(tags) if isinstance(tags, str) else (tags or [])
        return any(matches(s, function, tag_list, priority) for _, s in rules)

    # -- verbs -------------------------------------------------------------------

    async def pause(self, tenant_id: str, selector: Selector) -> tuple[PauseRow, int]:
        """Make a rule and hold what it matches now; returns the rule and how many."""
        rt = self._rt
        selector.validate()
        given = [
            f for f in msgspec.structs.fields(Selector) if getattr(selector, f.name) is not None
        ]
        for field in given:
            if field.name not in ALLOWED:
                raise InvalidRequest(
                    f"a pause selects by {', '.join(ALLOWED)}", field=f"selector.{field.name}"
                )
        if not given:
            raise InvalidRequest("a pause needs a selector (function, tags or priority)",
                                 field="selector")  # fmt: skip
        now = rt.clock.now()
        pause_id = uuid.uuid4().hex[:16]
        await rt.store.create_pause(tenant_id, pause_id, _encoder.encode(selector), now)
        self.forget(tenant_id)
        await self.rules(tenant_id)  # new submissions are held from here on
        rt.bus.publish("pauses", tenant_id)
        held = await self._sweep(tenant_id, selector)
        # A submit another node admitted before it heard of this rule may land after the
        # sweep passed; a second sweep a moment later holds it.
        task = asyncio.create_task(self._sweep_later(tenant_id, selector))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)
        rows = await rt.store.list_pauses(tenant_id)
        return next(r for r in rows if r.id == pause_id), held

    async def _sweep(self, tenant_id: str, selector: Selector) -> int:
        """Hold every waiting task the selector matches, a chunk per commit."""
        store = self._rt.store
        waiting = msgspec.structs.replace(selector, state=[READY, SCHEDULED])
        held, before = 0, ""
        while True:
            page = await store.list_tasks(tenant_id, waiting, before, CHUNK)
            if page:
                held += len(await store.hold_tasks(tenant_id, [t.id for t in page]))
                before = page[-1].id
            if len(page) < CHUNK:
                return held

    async def _sweep_later(self, tenant_id: str, selector: Selector) -> None:
        await self._rt.clock.sleep(SECOND_SWEEP_S)
        try:
            if any(s == selector for _, s in await self.rules(tenant_id)):
                await self._sweep(tenant_id, selector)
        except Exception:
            log.exception("second sweep of a pause failed")

    async def resume(self, tenant_id: str, pause_id: str) -> int:
        """Lift a rule; release what it held that no other rule holds. Returns how many."""
        rt = self._rt
        raw = await rt.store.delete_pause(tenant_id, pause_id)
        if raw is None:
            raise NotFound(f"no pause {pause_id}", code="pause_not_found", field="pause_id")
        self.forget(tenant_id)
        others = await self.rules(tenant_id)
        rt.bus.publish("pauses", tenant_id)
        lifted = msgspec.structs.replace(_selector_decoder.decode(raw), state=[PAUSED])
        released, before = 0, ""
        while True:
            page = await rt.store.list_tasks(tenant_id, lifted, before, CHUNK)
            if not page:
                break
            free = [
                t.id for t in page
                if not any(matches(s, t.function, t.tags, t.priority) for _, s in others)
            ]  # fmt: skip
            if free:
                states = await rt.store.unhold_tasks(tenant_id, free, rt.clock.now())
                released += len(states)
                functions = {t.id: (t.function, t.priority) for t in page}
                ready = [
                    Promoted(tenant_id, *functions[task_id], id=task_id)
                    for task_id, state in states
                    if state == READY
                ]
                if ready:
                    await self._fairness.promoted(ready)  # their fair place from now on
                    self._queues.notify(tenant_id)
            before = page[-1].id
            if len(page) < CHUNK:
                break
        return released

    async def stop(self) -> None:
        for task in list(self._sweeps):
            task.cancel()
        for task in list(self._sweeps):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def list_all(self, tenant_id: str) -> list[PauseRow]:
        return await self._rt.store.list_pauses(tenant_id)

    async def hold_requeued(self, reaped: list[Reaped]) -> None:
        """Tasks whose leases were lost went back to ready: hold those a pause matches."""
        by_tenant: dict[str, list[str]] = {}
        for r in reaped:
            if r.state == READY:
                by_tenant.setdefault(r.tenant_id, []).append(r.task_id)
        for tenant_id, ids in by_tenant.items():
            if not await self.rules(tenant_id):
                continue
            held = []
            for task_id in ids:
                task = await self._rt.store.get_task(tenant_id, task_id)
                if task and self.holds(tenant_id, task.function, task.tags, task.priority):
                    held.append(task_id)
            if held:
                await self._rt.store.hold_tasks(tenant_id, held)
