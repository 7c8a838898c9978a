"""Task leases (DESIGN §3): renewed for the workers connected here, reaped when they run
out. A reaped task goes back to ready as a lost attempt (or dead, if that was its last),
held if a pause matches it; the renewal is one batched update per heartbeat."""

from __future__ import annotations

import logging

from ..model import DEAD
from ..store import LeaseRenewal, Reaped
from .outcomes import Outcomes
from .pauses import Pauses
from .queues import Queues
from .receivers import Receivers
from .registry import Registry
from .runtime import Runtime

log = logging.getLogger("sluice.reaper")

REAP_BATCH = 1000
LOST = "lease lost (its worker stopped renewing it: killed, or cut off)"


class Reaper:
    def __init__(
        self,
        rt: Runtime,
        registry: Registry,
        pauses: Pauses,
        queues: Queues,
        outcomes: Outcomes,
        receivers: Receivers | None = None,
    ) -> None:
        self._rt = rt
        self._hooks = receivers.hooks if receivers is not None else {}
        self._registry = registry
        self._pauses = pauses
        self._queues = queues
        self._outcomes = outcomes
        self._not_before = 0.0  # monotonic: no reaping before (hold_off)

    async def renew_once(self) -> None:
        """Extend the leases of the tasks this node's workers hold (every node's job)."""
        rt = self._rt
        now = rt.clock.now()
        stale_after = 2 * rt.settings.heartbeat_s
        renewals = [
            LeaseRenewal(c.tenant_id, c.worker_id, tuple(c.inflight))
            for c in self._registry
            if c.inflight and now - c.last_seen <= stale_after
        ]
        await rt.store.extend_leases(renewals, now + rt.settings.lease_s)

    def hold_off(self) -> None:
        """Judge no lease lost for one lease from now: the node has just begun to accept
        connections, and workers that held tasks while it was down need that long to
        reconnect and renew. (The timers' own first run counts from the node's start,
        which on a loaded machine may come well before its listener opens.)"""
        self._not_before = self._rt.clock.monotonic() + self._rt.settings.lease_s

    async def reap_once(self) -> int:
        """Put tasks whose leases ran out back to wait (the timers leader's job)."""
        rt = self._rt
        if rt.clock.monotonic() < self._not_before:
            return 0
        total = 0
        while True:
            reaped = await rt.store.reap_leases(rt.clock.now(), REAP_BATCH, self._hooks)
            await self._pauses.hold_requeued(reaped)  # before any dispatcher hears of them
            for r in reaped:
                _log_lost(r)
                self._queues.notify(r.tenant_id)
            self._outcomes.reaped(reaped)
            total += len(reaped)
            if len(reaped) < REAP_BATCH:
                return total


def _log_lost(r: Reaped) -> None:
    """One line a lost attempt, as `sluice dev` shows failures (engine/devlog.py)."""
    if r.state == DEAD:
        log.error(
            "task dead: %s %s after attempt %d/%d: %s (sluice tasks get %s)",
            r.function, r.task_id, r.attempt, r.max_attempts, LOST, r.task_id,
        )  # fmt: skip
    else:
        log.warning(
            "task failed: %s %s attempt %d/%d: %s; %s again",
            r.function, r.task_id, r.attempt, r.max_attempts, LOST, r.state,
        )  # fmt: skip
