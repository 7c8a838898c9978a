"""Why a task has not started yet: `GET /v1/tasks/{id}/why`, and the `waiting` field of
`GET /v1/tasks/{id}` for a task that is ready, scheduled or paused."""

from __future__ import annotations

from typing import Literal

import msgspec

AHEAD_CAP = 10_000  # tasks ahead are counted up to this: "10,000+", never a full count

Reason = Literal[
    "scheduled",  # its run_at (a delay, a retry's backoff) is still to come
    "paused",  # a pause rule holds it (pause_id)
    "no_partition_owner",  # no live node holds its partition (a node died, not taken over yet)
    "no_worker",  # no connected worker serves its function
    "tenant_quota",  # the tenant's own rate or concurrency limit (its quota)
    "rate_limit",  # the function's rate
    "concurrency_limit",  # the function's max_concurrency
    "aimd_limit",  # the adaptive limit of its worker pool or HTTP target
    "queued",  # simply behind `ahead` tasks in fair order
]


class Waiting(msgspec.Struct, frozen=True, omit_defaults=True):
    """What holds a waiting task back, the first that applies in this order: its time,
    a pause, its partition, workers, the tenant's quota, the function's rate and
    concurrency, an adaptive limit, else the tasks ahead of it."""

    reason: Reason
    message: str  # a sentence for people
    pause_id: str | None = None  # paused: the rule
    run_at: float | None = None  # scheduled: when it becomes ready
    retry_at: float | None = None  # a rate: when it next allows a start
    limit: float | None = None  # the limit that is reached (tasks, or tasks/s for a rate)
    running: int | None = None  # a concurrency or AIMD limit: how many run now
    partition: int | None = None  # no_partition_owner: which
    ahead: int | None = None  # queued (and any other reason): ready tasks before it, capped
    ahead_capped: bool = False  # `ahead` reached AHEAD_CAP: there are at least that many
