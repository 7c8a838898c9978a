"""Tenant fairness, wired: start tags at submit and at promotion, the virtual clock kept
moving (policy/fairness.py holds the algorithm; DESIGN §6).

Tags are given where a task becomes ready: at submit (and when a cron schedule or an
event makes a task), right after a delayed task is promoted (in due order), and when a
pause releases held tasks. A task that goes back to ready without being new work (a
lost lease, a hand-back, an immediate retry, a retry by hand) keeps its tag, which is
behind the clock: it goes first.

A tenant has one chain for all its tasks that shared pools serve, and one per function
its own workers serve. Each node keeps its own chains. The clock moves with this node's
pool claims, and once a second with the store's view (the largest tag a pool is
running), so nodes agree within a second; a chain is read from the store the first time
a node tags for it, so a restart or a second node continues it instead of starting a
new one beside the backlog. A tenant that submits through several nodes gets a chain
per node; behind a round-robin load balancer every tenant does alike, which keeps the
shares even.
"""

from __future__ import annotations

import msgspec

from ..model import READY, SHARED, ClaimedTask, NewTask
from ..policy.fairness import StartTags
from ..store import Promoted
from .functions import Functions
from .partitions import Partitions
from .quotas import Quotas
from .runtime import Runtime


class Fairness:
    def __init__(
        self, rt: Runtime, functions: Functions, quotas: Quotas, partitions: Partitions
    ) -> None:
        self._rt = rt
        self._functions = functions
        self._quotas = quotas
        self._partitions = partitions
        self.tags = StartTags()
        self._known: set[str] = set()  # chains read from the store

    async def start(self) -> None:
        await self.sync()

    async def sync(self) -> None:
        """Catch the clock up with every node's pool claims, and forget chains it passed."""
        vclock = await self._rt.store.fair_clock()
        if vclock is not None:
            self.tags.dispatched(vclock)
        self.tags.prune()

    def dispatched(self, tasks: list[ClaimedTask]) -> None:
        """A shared pool's plain claim: the only one in tag order across tenants, so the
        only one that moves the clock."""
        if tasks:
            self.tags.dispatched(max(t.stag for t in tasks))

    async def weight(self, tenant_id: str) -> float:
        quota = self._quotas.cached(tenant_id)
        return 1.0 if quota is None else quota.weight

    async def _chain(self, tenant_id: str, function: str) -> tuple[str, list[str]]:
        """Which chain a task's tag continues, and the functions that chain covers.

        Tasks compete only where they are claimed together: all of a tenant's tasks of
        functions a shared pool serves share one chain (its share of the pool), and each
        function its own workers serve has a chain of its own, so a tenant's backlog of
        one kind does not push back its tasks of another.
        """
        own = await self._functions.of(tenant_id)
        shared = await self._functions.of(SHARED) if tenant_id != SHARED else {}
        if function not in own and function in shared:
            return tenant_id, sorted(f for f in shared if f not in own)
        return f"{tenant_id}/{function}", [function]

    async def _tags(self, tenant_id: str, functions: list[str]) -> list[float]:
        """Tags for a tenant's tasks of these functions, in order."""
        weight = await self.weight(tenant_id)
        chains: dict[str, str] = {}
        for function in set(functions):
            chain, covered = await self._chain(tenant_id, function)
            chains[function] = chain
            if chain not in self._known:  # continue the chain the store already has
                self._known.add(chain)
                last = await self._rt.store.last_tag(tenant_id, covered)
                if last is not None:
                    self.tags.seed(chain, last)
        if len(chains) == 1:  # the usual batch: one function, one call
            return self.tags.tags(chains[functions[0]], len(functions), weight)
        by_chain: dict[str, list[int]] = {}
        for i, function in enumerate(functions):
            by_chain.setdefault(chains[function], []).append(i)
        out = [0.0] * len(functions)
        for chain, positions in by_chain.items():
            for i, tag in zip(
                positions, self.tags.tags(chain, len(positions), weight), strict=True
            ):
                out[i] = tag
        return out

    async def tag(self, tenant_id: str, tasks: list[NewTask]) -> list[NewTask]:
        """Start tags for a tenant's new ready tasks. A delayed or held task waits at the
        clock until its promotion or release tags it: were that lost, it would still not
        sit behind everyone. Each task also gets its partition here (shuffle sharding,
        engine/partitions.py), in the same copy."""
        ready = [t.function for t in tasks if t.state == READY]
        tags = iter(await self._tags(tenant_id, ready))
        parts = iter(self._partitions.place(tenant_id, len(tasks)))
        replace, vclock = msgspec.structs.replace, self.tags.vclock
        return [
            replace(t, stag=next(tags) if t.state == READY else vclock, partition=next(parts))
            for t in tasks
        ]

    async def promoted(self, promoted: list[Promoted]) -> None:
        """Tag tasks that just became ready (by their time, or released from a pause),
        in due order."""
        if not promoted:
            return
        ordered = sorted(promoted, key=lambda p: (p.run_at, p.id))
        by_tenant: dict[str, list[Promoted]] = {}
        for p in ordered:
            by_tenant.setdefault(p.tenant_id, []).append(p)
        retags = []
        for tenant_id, tasks in by_tenant.items():
            tags = await self._tags(tenant_id, [p.function for p in tasks])
            retags += [(p.id, t) for p, t in zip(tasks, tags, strict=True)]
        await self._rt.store.retag(retags)
