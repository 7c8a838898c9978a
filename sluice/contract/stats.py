"""A tenant's own figures: `GET /v1/stats` (its tasks waiting by state, from the
backlog snapshot, and per-minute counts from the rollup; never another tenant's)."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_STATS_MINUTES = 24 * 60  # the rollup keeps a day


class StatsQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/stats`: how many minutes back (1 to 1,440)."""

    minutes: Annotated[int, msgspec.Meta(ge=1, le=MAX_STATS_MINUTES)] = 60


class Counts(msgspec.Struct, frozen=True):
    """What happened to tasks over a span: submitted, dispatched (every attempt), and
    ends by outcome (failed: an attempt that failed and will be retried); wait_s and
    run_s are the mean submit->start of first attempts and the mean run time."""

    submitted: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0
    expired: int = 0
    wait_s: float | None = None
    run_s: float | None = None


class FunctionStats(msgspec.Struct, frozen=True):
    """One function's figures. `tasks`: how many are ready, scheduled, paused, running
    and dead now, and `held:<reason>` for the ready ones a limit holds (rate,
    concurrency, tenant_quota, aimd_limit); `function` is "" for ends the server decided
    without naming it (expired, cancelled, lost on their last attempt)."""

    function: str
    counts: Counts
    tasks: dict[str, int]
    oldest_ready_at: float | None = None


class StatsMinute(msgspec.Struct, frozen=True):
    minute: float  # its start, epoch seconds
    function: str
    counts: Counts


class Stats(msgspec.Struct, frozen=True):
    tenant_id: str
    since: float  # the first minute counted
    snapshot_at: float | None  # when the waiting counts were taken (every few seconds)
    totals: Counts
    functions: list[FunctionStats]
    minutes: list[StatsMinute]
