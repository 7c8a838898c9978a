"""Meters: the node's counters and histograms, and the deltas of the per-minute rollup
(DESIGN §8, OBSERVABILITY.md §2).

Every transition passes through a server node, so each node counts what it did, once:
submits and their refusals (intake), dispatches (the dispatcher), attempts' ends
(attempts), lost leases, expiries and cancels (outcomes). Counting is plain Python on
the event loop thread, no lock. The hot path adds to one in-memory rollup row per
(minute, tenant, function), looked up once per run of a batch's tasks of one function,
and observes a histogram with a `bisect` into a short tuple of bounds and one list
increment: about 0.5 µs per task for a dispatch and as much for an end, measured.

`flush` (a timer on every node, every FLUSH_S) takes the rows and adds them to the
store's rollup with one additive upsert, so /v1/stats and the console read cluster-wide
minutes without counting tasks; rows that fail to write are kept for the next flush.
The Prometheus counters by function are the rows taken so far plus those pending, summed
when scraped; Prometheus sums the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable

from ..errors import (
    ClientError,
    Overloaded,
    PayloadTooLarge,
    QuotaExceeded,
    SluiceError,
    TenantThrottled,
    Unavailable,
)
from ..model import CANCELLED, DEAD, EXPIRED, SUCCEEDED, ClaimedTask, Finish, NewTask, SubmitResult
from ..store import ACCEPTED, RollupRow
from .runtime import Runtime

log = logging.getLogger("sluice.meters")

FLUSH_S = 10.0  # how often deltas go to the store's rollup
# The `tenant` label (OBSERVABILITY.md §2.4): the first TOP_TENANTS tenants seen get their
# own, then the top by volume; one keeps it until out of the top 2 x TOP_TENANTS for
# LABEL_KEEP_S. Everyone else counts as OTHER. Decided when counted, so every series
# only grows (a tenant that gains a label starts its own series at zero).
TOP_TENANTS = 20
LABEL_KEEP_S = 600.0
OTHER = "_other"
# Buckets (OBSERVABILITY.md §2.3): waits from 0.5 ms (the submit->start goal is 5 ms) to
# an hour; run times from 5 ms to two hours; rounds and store writes from 0.5 ms to 5 s.
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)  # fmt: skip
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)  # fmt: skip
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Rollup columns, by index into a delta list (RollupRow's counts, in order).
SUBMITTED, STARTED, SUCCEEDED_, FAILED, DEAD_, CANCELLED_, EXPIRED_ = range(7)
WAITS, WAIT_S, RUNS, RUN_S = range(7, 11)
_END_COLUMN = {SUCCEEDED: SUCCEEDED_, DEAD: DEAD_, CANCELLED: CANCELLED_, EXPIRED: EXPIRED_}
_OUTCOME_COLUMNS = (("succeeded", SUCCEEDED_), ("retried", FAILED), ("dead", DEAD_),
                    ("cancelled", CANCELLED_), ("expired", EXPIRED_))  # fmt: skip
UNKNOWN = ""  # the function of an end the store reported without it (expiry, cancel, reap)


_CREATED = SubmitResult("", True, "", 0.0)


def refusal(error: SluiceError) -> str:
    """A refused submit's outcome label."""
    if isinstance(error, TenantThrottled):
        return "rejected_backpressure"
    if isinstance(error, Overloaded):
        return "rejected_overload"
    if isinstance(error, QuotaExceeded | PayloadTooLarge):
        return "rejected_quota"
    if isinstance(error, Unavailable):
        return "rejected_unavailable"
    if isinstance(error, ClientError):  # a bad field, an unknown function, ...
        return "rejected_invalid"
    return "rejected_other"


class Histogram:
    """Cumulative-at-export bucket counts: `counts[i]` holds observations in bucket i
    alone (the last is +Inf), so an observation touches one list slot."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, count) pairs as Prometheus wants them, ending with +Inf."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out


class Meters:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.submitted: Counter[tuple[str, str]] = Counter()  # (tenant label, outcome)
        self.refusals: Counter[str] = Counter()  # backpressure scope: tenant, global
        self.leases_lost = 0
        self.wait = Histogram(WAIT_BUCKETS)  # submit (or ready) -> start of first attempts
        self.run = Histogram(RUN_BUCKETS)  # worker start -> end of an attempt
        self.rounds = Histogram(FAST_BUCKETS)  # dispatch rounds that claimed
        self.store_ops: dict[str, Histogram] = {}  # by operation: submit, claim, finish
        self._deltas: dict[tuple[float, str, str], list[float]] = {}
        self._taken: dict[str, list[float]] = {}  # by function: every delta taken so far
        self._labels: dict[str, float] = {}  # labelled tenant: when last in the top 2K
        self._volume: Counter[str] = Counter()  # tenants' recent submits, decayed per flush
        self._flushing = asyncio.Lock()
        self._writing: asyncio.Future[None] | None = None  # a flush's write, until it ends
        # Told of each batch of attempts' ends after counting (`sluice dev`'s DevLog).
        self.watch: Callable[[list[Finish], list[str], list[ClaimedTask | None]], None] | None
        self.watch = None

    def label(self, tenant_id: str) -> str:
        """The tenant's label on counters: itself, or OTHER."""
        if tenant_id in self._labels:
            return tenant_id
        if len(self._labels) < TOP_TENANTS:
            self._labels[tenant_id] = self._rt.clock.monotonic()
            return tenant_id
        return OTHER

    def relabel(self, rows: list[RollupRow]) -> None:
        """Move labels to the tenants with the most submits (a flush's rows), with
        hysteresis; a tenant keeps a label while in the top 2 x TOP_TENANTS."""
        volume = self._volume
        for tenant in list(volume):
            volume[tenant] //= 2
            if not volume[tenant]:
                del volume[tenant]
        for r in rows:
            volume[r.tenant_id] += r.submitted
        mono = self._rt.clock.monotonic()
        near = {t for t, _ in volume.most_common(2 * TOP_TENANTS)}
        for tenant, seen in list(self._labels.items()):
            if tenant in near:
                self._labels[tenant] = mono
            elif mono - seen > LABEL_KEEP_S:
                del self._labels[tenant]
        for tenant, _ in volume.most_common(TOP_TENANTS):
            if len(self._labels) >= TOP_TENANTS:
                break
            self._labels.setdefault(tenant, mono)

    # -- events (the hot path) ---------------------------------------------------

    def _delta(self, now: float, tenant_id: str, function: str) -> list[float]:
        key = (now - now % 60.0, tenant_id, function)
        row = self._deltas.get(key)
        if row is None:
            row = self._deltas[key] = [0.0] * 11
        return row

    def submits(self, tenant_id: str, results: list[SubmitResult], tasks: list[NewTask]) -> None:
        """A committed submit: each task accepted, or deduplicated (its key was held)."""
        now = self._rt.clock.now()
        created = 0
        row, last = None, ""
        for result, task in zip(results, tasks, strict=True):
            if result.created:
                created += 1
                if row is None or task.function != last:  # a batch is mostly one function
                    row, last = self._delta(now, tenant_id, task.function), task.function
                row[SUBMITTED] += 1
        label = self.label(tenant_id)
        if created:
            self.submitted[(label, "accepted")] += created
        if created < len(results):
            self.submitted[(label, "deduplicated")] += len(results) - created

    def fired(self, tenant_id: str, tasks: list[NewTask]) -> None:
        """Tasks a cron schedule fired (submitted by the server, not through intake)."""
        self.submits(tenant_id, [_CREATED] * len(tasks), tasks)

    def refused(self, tenant_id: str, n: int, error: SluiceError) -> None:
        outcome = refusal(error)
        self.submitted[(self.label(tenant_id), outcome)] += n
        if outcome == "rejected_backpressure":
            self.refusals["tenant"] += 1
        elif outcome == "rejected_overload":
            self.refusals["global"] += 1

    def dispatched(self, claimed: Iterable[list[ClaimedTask]]) -> None:
        """Tasks a dispatch round claimed: started, and the first attempts' wait. A
        claim's tasks share a time and mostly a tenant and function: the rollup row is
        looked up again only when those change."""
        for tasks in claimed:
            if not tasks:
                continue
            now = tasks[0].dispatched_at
            tenant, function = tasks[0].tenant_id, tasks[0].function
            row = self._delta(now, tenant, function)
            for t in tasks:
                if t.function != function or t.tenant_id != tenant:
                    tenant, function = t.tenant_id, t.function
                    row = self._delta(now, tenant, function)
                row[STARTED] += 1

    def attempts_ended(
        self, finishes: list[Finish], outcomes: list[str], tasks: list[ClaimedTask | None]
    ) -> None:
        """Attempts whose fenced finishes were written (refused ones are not counted)."""
        now = self._rt.clock.now()
        bounds, counts = self.run.bounds, self.run.counts
        ran = 0.0
        row: list[float] = []
        tenant = function = None
        for f, outcome, task in zip(finishes, outcomes, tasks, strict=True):
            if outcome != ACCEPTED:
                continue
            fn = task.function if task is not None else UNKNOWN
            if fn != function or f.tenant_id != tenant:
                tenant, function = f.tenant_id, fn
                row = self._delta(now, tenant, function)
            row[_END_COLUMN.get(f.next_state, FAILED)] += 1
            if f.started_at is not None:
                run = f.finished_at - f.started_at
                run = run if run > 0.0 else 0.0
                counts[bisect_left(bounds, run)] += 1
                ran += run
                row[RUNS] += 1
                row[RUN_S] += run
                if task is not None and task.attempt == 1:
                    # Submit (from ready: a requested delay is not waiting) to the worker's
                    # start, known only now: a dispatch (a direct one is at the submit) is
                    # not a start.
                    since = task.created_at if task.ready_at is None else task.ready_at
                    wait = f.started_at - since
                    wait = wait if wait > 0.0 else 0.0
                    self.wait.counts[bisect_left(self.wait.bounds, wait)] += 1
                    self.wait.sum += wait
                    row[WAITS] += 1
                    row[WAIT_S] += wait
        self.run.sum += ran
        if self.watch is not None:
            self.watch(finishes, outcomes, tasks)

    def ended(self, tenant_ids: Iterable[str], state: str) -> None:
        """Tasks that ended by the server (expired, cancelled, dead by a lost lease),
        whose function the store did not report."""
        now = self._rt.clock.now()
        column = _END_COLUMN[state]
        for tenant_id in tenant_ids:
            self._delta(now, tenant_id, UNKNOWN)[column] += 1

    def lost(self, n: int) -> None:
        self.leases_lost += n

    def round(self, seconds: float) -> None:
        self.rounds.observe(seconds)

    def store_op(self, op: str, seconds: float) -> None:
        histogram = self.store_ops.get(op)
        if histogram is None:
            histogram = self.store_ops[op] = Histogram(FAST_BUCKETS)
        histogram.observe(seconds)

    # -- the rollup ----------------------------------------------------------------

    # -- the counters by function, from the rollup's deltas ---------------------------

    def _by_function(self) -> dict[str, list[float]]:
        """Every count so far by function: what was taken, plus the pending deltas."""
        out = {f: list(v) for f, v in self._taken.items()}
        for (_minute, _tenant, function), d in self._deltas.items():
            _add(out.setdefault(function, [0.0] * 11), d)
        return out

    @property
    def started(self) -> Counter[str]:
        """Dispatches by function."""
        return Counter({f: int(v[STARTED]) for f, v in self._by_function().items() if v[STARTED]})

    @property
    def finished(self) -> Counter[tuple[str, str]]:
        """Ends of attempts and tasks by (function, outcome); `retried`: an attempt
        failed and the task waits again."""
        out: Counter[tuple[str, str]] = Counter()
        for f, v in self._by_function().items():
            for outcome, column in _OUTCOME_COLUMNS:
                if v[column]:
                    out[(f, outcome)] = int(v[column])
        return out

    def take(self) -> list[RollupRow]:
        """The deltas as rows, and a fresh start."""
        deltas, self._deltas = self._deltas, {}
        for (_minute, _tenant, function), d in deltas.items():
            _add(self._taken.setdefault(function, [0.0] * 11), d)
        return [_row(key, d) for key, d in deltas.items()]

    def give_back(self, rows: list[RollupRow]) -> None:
        """Rows a flush could not write: added to the deltas again."""
        for r in rows:
            row = self._delta(r.minute, r.tenant_id, r.function)
            values = _values(r)
            _add(row, list(values))
            taken = self._taken[r.function]  # counted when taken: not twice
            for i, value in enumerate(values):
                taken[i] -= value

    async def flush(self) -> int:
        """Add the deltas to the store's rollup (every node, on a timer). One at a time,
        and a flush that returned has written everything counted before it was called.
        A flush cancelled mid-write (the node stopping its timers) leaves its write to
        finish: the store may commit it anyway (the SQLite writer thread runs what it was
        given), so its rows go back only if the write fails, never to be written twice;
        the next flush waits for it first."""
        async with self._flushing:
            if self._writing is not None:
                with contextlib.suppress(Exception):  # failed: its rows went back
                    await asyncio.shield(self._writing)
                self._writing = None
            rows = self.take()
            self.relabel(rows)
            if not rows:
                return 0
            self._writing = asyncio.ensure_future(self._write(rows))
            await asyncio.shield(self._writing)
            self._writing = None
            return len(rows)

    async def _write(self, rows: list[RollupRow]) -> None:
        try:
            await self._rt.store.add_rollup(rows)
        except BaseException:
            self.give_back(rows)
            raise


def _row(key: tuple[float, str, str], d: list[float]) -> RollupRow:
    minute, tenant_id, function = key
    n = [int(v) for v in d]
    return RollupRow(
        tenant_id, function, minute, submitted=n[SUBMITTED], started=n[STARTED],
        succeeded=n[SUCCEEDED_], failed=n[FAILED], dead=n[DEAD_], cancelled=n[CANCELLED_],
        expired=n[EXPIRED_], waits=n[WAITS], wait_s=d[WAIT_S], runs=n[RUNS], run_s=d[RUN_S],
    )  # fmt: skip


def _add(into: list[float], d: list[float]) -> None:
    for i, v in enumerate(d):
        into[i] += v


def _values(r: RollupRow) -> tuple[float, ...]:
    return (r.submitted, r.started, r.succeeded, r.failed, r.dead, r.cancelled, r.expired,
            r.waits, r.wait_s, r.runs, r.run_s)  # fmt: skip
