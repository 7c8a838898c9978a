"""Tenant fairness, wired: start tags at submit and at promotion, the virtual clock kept
moving (policy/fairness.py holds the algorithm; DESIGN §6).

Tags are given where a task becomes ready: at submit (and when a cron schedule or an
event makes a task), and right after a delayed task is promoted, in due order. A task
that goes back to ready without being new work (a lost lease, a hand-back, an immediate
retry, a retry by hand) keeps its tag, which is behind the clock: it goes first.

Each node keeps its own chains. The clock moves with this node's claims, and once a
second with the store's view (the largest tag running anywhere), so nodes agree within
a second; a tenant's chain is read from the store the first time a node tags for it,
so a restart or a second node continues the chain instead of starting a new one
beside the backlog. A tenant that submits through several nodes gets one chain per
node; behind a round-robin load balancer every tenant does alike, which keeps the
shares even.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..model import SCHEDULED, ClaimedTask, NewTask
from ..policy.fairness import StartTags
from ..store import Promoted

if TYPE_CHECKING:
    from .node import Node


class Fairness:
    def __init__(self, node: Node) -> None:
        self._node = node
        self.tags = StartTags()
        self._known: set[str] = set()  # tenants whose chain was read from the store

    async def start(self) -> None:
        await self.sync()

    async def sync(self) -> None:
        """Catch the clock up with every node's claims, and forget chains it passed."""
        vclock = await self._node.store.fair_clock()
        if vclock is not None:
            self.tags.dispatched(vclock)
        self.tags.prune()

    def dispatched(self, tasks: list[ClaimedTask]) -> None:
        if tasks:
            self.tags.dispatched(max(t.stag for t in tasks))

    async def weight(self, tenant_id: str) -> float:
        quota = await self._node.quotas.get(tenant_id)
        return 1.0 if quota is None else quota.weight

    async def tag(self, tenant_id: str, tasks: list[NewTask]) -> list[NewTask]:
        """Start tags for a tenant's new tasks; a delayed one gets its tag when due."""
        await self._continue(tenant_id)
        now = [i for i, t in enumerate(tasks) if t.state != SCHEDULED]
        tags = self.tags.tags(tenant_id, len(now), await self.weight(tenant_id))
        # A delayed task waits at the clock until its promotion tags it: were that lost,
        # it would still not sit behind everyone.
        out = [
            t if t.state != SCHEDULED else msgspec.structs.replace(t, stag=self.tags.vclock)
            for t in tasks
        ]
        for i, stag in zip(now, tags, strict=True):
            out[i] = msgspec.structs.replace(tasks[i], stag=stag)
        return out

    async def promoted(self, promoted: list[Promoted]) -> None:
        """Tag tasks that just became ready by their time, in due order."""
        if not promoted:
            return
        ordered = sorted(promoted, key=lambda p: (p.run_at, p.id))
        weights = {}
        for tenant_id in {p.tenant_id for p in ordered}:
            await self._continue(tenant_id)
            weights[tenant_id] = await self.weight(tenant_id)
        tags = self.tags.tag_many([p.tenant_id for p in ordered], weights)
        await self._node.store.retag([(p.id, t) for p, t in zip(ordered, tags, strict=True)])

    async def _continue(self, tenant_id: str) -> None:
        if tenant_id not in self._known:
            self._known.add(tenant_id)
            last = await self._node.store.last_tag(tenant_id)
            if last is not None:
                self.tags.seed(tenant_id, last)
