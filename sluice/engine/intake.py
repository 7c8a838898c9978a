"""Submit: a tenant's task specs become committed tasks (DESIGN §4 "Durability").

In order: backpressure may refuse a heavy tenant while the node is overloaded; each spec
is checked against its function and the node's limits (engine/admission.py); the
tenant's quotas; pause rules hold what they match; fair start tags and partitions are
given; one commit; then the dispatcher hears of the ready ones and delayed ones due soon
are held in memory. A submit is acknowledged only after its commit.
"""

from __future__ import annotations

import msgspec

from ..contract import TaskSpec
from ..errors import ClientError, Conflict, SluiceError, Unavailable
from ..model import PAUSED, READY, RUNNING, SCHEDULED, NewTask, SubmitResult, new_task_ids
from .admission import build_task
from .backpressure import Backpressure
from .delays import Delays
from .direct import Direct, DirectDispatch
from .fairness import Fairness
from .functions import Functions
from .meters import Meters
from .pauses import Pauses
from .queues import Queues
from .quotas import Quotas
from .runtime import Runtime


class Intake:
    def __init__(
        self,
        rt: Runtime,
        *,
        functions: Functions,
        quotas: Quotas,
        pauses: Pauses,
        fairness: Fairness,
        backpressure: Backpressure,
        queues: Queues,
        delays: Delays,
        meters: Meters | None = None,
        direct: DirectDispatch | None = None,
    ) -> None:
        self._rt = rt
        self._direct = direct  # direct dispatch at submit, when it has a slot
        self._functions = functions
        self._quotas = quotas
        self._pauses = pauses
        self._fairness = fairness
        self._backpressure = backpressure
        self._queues = queues
        self._delays = delays
        self._meters = meters or Meters(rt)
        self.accepting = False  # the node is started and not stopping
        self._signing: set[str] = set()  # tenants known to have a webhook signing secret

    async def submit(self, tenant_id: str, specs: list[TaskSpec]) -> list[SubmitResult]:
        try:
            return await self._submit(tenant_id, specs)
        except SluiceError as error:
            self._meters.refused(tenant_id, len(specs), error)
            raise

    async def _submit(self, tenant_id: str, specs: list[TaskSpec]) -> list[SubmitResult]:
        if not self.accepting:
            raise Unavailable("the server is not accepting tasks right now", retry_after_s=1)
        self._backpressure.admit(tenant_id, len(specs))  # 429/503 for heavy tenants
        functions = await self._functions.usable(tenant_id)
        rt = self._rt
        now = rt.clock.now()
        many = len(specs) > 1
        ids = new_task_ids(len(specs), now)
        try:
            tasks = [
                build_task(s, functions.get(s.function), rt.settings, now, "", task_id)
                for s, task_id in zip(specs, ids, strict=True)
            ]
        except ClientError:
            if not many:
                raise
            # The error names its field within the batch: build each again with its
            # place (build_task is pure), so the fast loop formats no field names.
            for i, (s, task_id) in enumerate(zip(specs, ids, strict=True)):
                build_task(s, functions.get(s.function), rt.settings, now, f"tasks[{i}].",
                           task_id)  # fmt: skip
            raise
        if any(t.webhooks for t in tasks):
            await self._check_signing(tenant_id, "tasks[].webhooks" if many else "webhooks")
        await self._quotas.admit(tenant_id, tasks, "tasks[]" if many else "")
        pauses = self._pauses
        if await pauses.rules(tenant_id):
            tasks = [
                msgspec.structs.replace(t, state=PAUSED)
                if pauses.holds(tenant_id, t.function, t.tags, t.priority)
                else t
                for t in tasks
            ]
        tasks = await self._fairness.tag(tenant_id, tasks)
        direct = self._direct.plan(tenant_id, tasks) if self._direct else None
        began = rt.clock.monotonic()
        if direct is None:
            results = await rt.store.submit_tasks(tenant_id, tasks, now)
        else:  # committed leased to an idle slot, and pushed (engine/direct.py)
            results, tasks = await self._submit_leased(tenant_id, tasks, now, direct)
        self._meters.store_op("submit", rt.clock.monotonic() - began)
        self._meters.submits(tenant_id, results, tasks)
        ready = [t for t, r in zip(tasks, results, strict=True) if r.created and r.state == READY]
        if ready:
            self._queues.notify(tenant_id, {t.priority for t in ready}, {t.function for t in ready})
        for r in results:
            if r.created and r.state == SCHEDULED:
                self._delays.schedule(r.run_at, tenant_id, r.id)
        return results

    async def _submit_leased(
        self, tenant_id: str, tasks: list[NewTask], now: float, direct: Direct
    ) -> tuple[list[SubmitResult], list[NewTask]]:
        assert self._direct is not None
        rt = self._rt
        try:
            claimed = await rt.store.submit_leased(tenant_id, tasks, now, direct.conn.worker_id,
                                                   direct.ids, rt.settings.lease_s)  # fmt: skip
        except BaseException:
            self._direct.cancel(direct)
            raise
        await self._direct.deliver(direct, claimed)
        leased = {t.id for t in claimed}
        tasks = [msgspec.structs.replace(t, state=RUNNING) if t.id in leased else t for t in tasks]
        return [SubmitResult(t.id, True, t.state, t.run_at) for t in tasks], tasks

    async def _check_signing(self, tenant_id: str, field: str) -> None:
        """A task's own webhooks are signed with the tenant's secret: it must have one
        (made, and shown once, by `POST /v1/webhooks/secret`; never deleted after)."""
        if tenant_id in self._signing:
            return
        if await self._rt.store.get_webhook_secrets(tenant_id) is None:
            raise Conflict(
                "the tenant has no webhook signing secret yet: make one with "
                "POST /v1/webhooks/secret (sluice webhooks secret), then submit again",
                code="no_webhook_secret", field=field,
            )  # fmt: skip
        self._signing.add(tenant_id)
