"""A tenant's own figures (`GET /v1/stats`): per-minute counts from the rollup that every
node adds to, and its tasks by state from the leader's backlog snapshot. Two small reads
of those tables, scoped to the tenant; no task is counted."""

from __future__ import annotations

from collections import defaultdict

from ..contract import Counts, FunctionStats, Stats, StatsMinute
from ..store import RollupRow
from .runtime import Runtime

_COUNTED = ("submitted", "started", "succeeded", "failed", "dead", "cancelled", "expired",
            "waits", "wait_s", "runs", "run_s")  # fmt: skip


class TenantStats:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def read(self, tenant_id: str, minutes: int) -> Stats:
        rt = self._rt
        now = rt.clock.now()
        since = now - now % 60.0 - 60.0 * (minutes - 1)
        rows = await rt.store.list_rollup(tenant_id, since)
        backlog, taken_at = await rt.store.list_backlog(tenant_id)
        per_function: defaultdict[str, list[RollupRow]] = defaultdict(list)
        for r in rows:
            per_function[r.function].append(r)
        tasks: defaultdict[str, dict[str, int]] = defaultdict(dict)
        oldest: dict[str, float] = {}
        for b in backlog:
            tasks[b.function][b.state] = b.tasks
            if b.oldest is not None:
                oldest[b.function] = b.oldest
        functions = [
            FunctionStats(f, _counts(per_function.get(f, [])), tasks.get(f, {}), oldest.get(f))
            for f in sorted(set(per_function) | set(tasks))
        ]
        return Stats(
            tenant_id=tenant_id, since=since, snapshot_at=taken_at, totals=_counts(rows),
            functions=functions,
            minutes=[StatsMinute(r.minute, r.function, _counts([r])) for r in rows],
        )  # fmt: skip


def _counts(rows: list[RollupRow]) -> Counts:
    total = dict.fromkeys(_COUNTED, 0.0)
    for r in rows:
        for name in _COUNTED:
            total[name] += getattr(r, name)
    n = {k: int(v) for k, v in total.items()}
    return Counts(
        submitted=n["submitted"], started=n["started"], succeeded=n["succeeded"],
        failed=n["failed"], dead=n["dead"], cancelled=n["cancelled"], expired=n["expired"],
        wait_s=total["wait_s"] / n["waits"] if n["waits"] else None,
        run_s=total["run_s"] / n["runs"] if n["runs"] else None,
    )  # fmt: skip
