"""The `Store` protocol: everything the engine asks of a database, one part per noun.

Each part below holds the record types of its noun and a Protocol of its methods; `Store`
combines them, and each backend implements each part in the module of the same name
(`tasks` in `sqlite/tasks.py` and `postgres/tasks.py`). The engine calls the flat
methods (`store.claim_tasks(...)`) and never needs to know which part a method is in.

`tenant_id` leads every method's arguments (or every request's fields, for batched
methods); every method that compares with "now" takes it as an argument, except the
named leases, which the database judges on its own clock (see `LeaseStore`).
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from ..contract import (
    ApiKey,
    AuditEntry,
    DeadSelector,
    DeadTask,
    FunctionConfig,
    Selector,
    TaskSummary,
    Tenant,
)
from ..model import (
    AttemptRecord,
    ClaimedTask,
    Finish,
    HistoryEntry,
    LogBatch,
    LogRecord,
    NewTask,
    Notification,
    PauseRow,
    ScheduleRow,
    SubmitResult,
    SubscriptionRow,
    TaskRecord,
    WebhookEndpoint,
)
from .functions import FunctionRecord
from .limits import Limit
from .notifications import Hooks

# -- tenants and their API keys ------------------------------------------------------


class TenantStore(Protocol):
    async def create_tenant(self, name: str, now: float) -> Tenant: ...
    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...
    async def get_tenant_by_name(self, name: str) -> Tenant | None: ...
    async def list_tenants(self) -> list[Tenant]: ...
    async def create_api_key(
        self, tenant_id: str, key_hash: str, prefix: str, now: float
    ) -> None: ...
    async def find_api_key(self, key_hash: str) -> str | None:
        """The tenant of a live key, or None."""
        ...

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]: ...
    async def revoke_api_key(self, tenant_id: str, key_id: str, now: float) -> str | None:
        """Revoke a key by its id; returns its hash, or None if no live key has that id."""
        ...


# -- functions -----------------------------------------------------------------------


class FunctionStore(Protocol):
    async def upsert_functions(
        self, tenant_id: str, configs: list[FunctionConfig], now: float
    ) -> None:
        """The code's configs (a worker's hello); the operator's overrides stay."""
        ...

    async def set_function_overrides(
        self, tenant_id: str, name: str, overrides: dict[str, Any], now: float
    ) -> None:
        """Replace the operator's settings of a function (its fields, as JSON values);
        a function no code registered yet is made with the defaults."""
        ...

    async def list_functions(self, tenant_id: str) -> list[FunctionRecord]:
        """A tenant's functions, by name, each with its effective config and owners."""
        ...


# -- tasks ---------------------------------------------------------------------------


class Cancelled(msgspec.Struct, frozen=True):
    task_id: str
    was: str  # the state it was cancelled from
    worker: str | None  # who was running it, to be told to stop


class Promoted(msgspec.Struct, frozen=True):
    """A task that became ready by its time: whose, of what function, at what level."""

    tenant_id: str
    function: str
    priority: int
    id: str = ""
    run_at: float = 0.0


class TaskStore(Protocol):
    async def submit_tasks(
        self, tenant_id: str, tasks: list[NewTask], now: float
    ) -> list[SubmitResult]:
        """Insert tasks in one commit; a keyed task whose key is held returns the holder."""
        ...

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRecord | None: ...
    async def get_task_states(self, tenant_id: str, task_ids: list[str]) -> dict[str, str]: ...
    async def task_tenant(self, task_id: str) -> str | None:
        """The tenant of a task, for a shared pool's result this node did not deliver."""
        ...

    async def list_tasks(
        self, tenant_id: str, selector: Selector, before: str, limit: int
    ) -> list[TaskSummary]:
        """A page of the tenant's tasks matching the selector, newest first, with ids
        below `before` ("" for the first page)."""
        ...

    async def cancel_tasks(
        self, tenant_id: str, task_ids: list[str], now: float, hooks: Hooks | None = None
    ) -> list[Cancelled]:
        """Cancel the tasks that are not terminal yet; a running one's attempt ends too.
        The `cancelled` notifications of `hooks` are written in the same transaction."""
        ...

    async def delete_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        """Delete the tasks that are not running (with their attempts and history)."""
        ...

    async def list_dead(
        self, tenant_id: str, selector: DeadSelector, after: str, limit: int
    ) -> list[DeadTask]:
        """Dead tasks matching the selector, in id order, after the id `after`."""
        ...

    async def retry_dead(
        self, tenant_id: str, task_ids: list[str], max_attempts: dict[str, int], now: float
    ) -> list[str]:
        """Dead tasks back to ready with a new attempt series (max_attempts by function)."""
        ...

    async def due_soon(self, until: float, limit: int) -> list[tuple[float, str, str]]:
        """(run_at, tenant_id, task_id) of scheduled tasks due by `until`, soonest first."""
        ...

    async def promote_due(self, now: float, limit: int) -> list[Promoted]:
        """Scheduled tasks due by `now` become ready; one entry per task. Their start
        tags are the caller's to give (retag), in due order."""
        ...

    async def promote_tasks(self, task_ids: list[str], now: float) -> list[Promoted]: ...
    async def expire_tasks(
        self, now: float, limit: int, hooks: Hooks | None = None
    ) -> list[tuple[str, str]]:
        """Tasks not started by their expiry become expired: (tenant, id) of each; their
        `expired` notifications are written in the same transaction."""
        ...

    async def purge_tasks(self, before: float, limit: int) -> int:
        """Delete up to `limit` tasks that ended before `before`; returns how many."""
        ...


# -- attempts: the hot path ----------------------------------------------------------

ACCEPTED = "accepted"
DUPLICATE = "duplicate"  # the same attempt's result arrived twice (a resend); already stored
STALE = "stale"  # the attempt no longer holds the lease: refused (fencing)

# A running task as it was delivered: (task id, attempt, dispatched_at). The dispatch
# time tells two claims of one task apart when they carry the same attempt number (a
# hand-back gives its number back).
Held = tuple[str, int, float]


def leased_ahead(row: Any, now: float) -> ClaimedTask:
    """A `promote_leased` row (a claim's columns, then run_at) as a ClaimedTask; one not
    yet due at `now` carries its run_at as `start_at`, when the worker starts it."""
    run_at = row[-1]
    task = ClaimedTask(*tuple(row)[:-1])
    return msgspec.structs.replace(task, start_at=run_at) if run_at > now else task


def leased_at_submit(tenant_id: str, t: NewTask, now: float, until: float) -> ClaimedTask:
    """A task inserted already leased by a direct dispatch (`submit_leased`), as a claim
    would return it: its first attempt, ready and dispatched at `now`."""
    return ClaimedTask(
        tenant_id, t.id, t.function, t.payload, 1, t.max_attempts, t.timeout_s, t.priority,
        now, now, until, 0, t.retry, t.tags, t.stag, t.trace_parent, t.trace_state, now,
        t.webhooks,
    )  # fmt: skip


class ClaimRequest(msgspec.Struct, frozen=True):
    tenant_id: str
    worker: str
    functions: tuple[str, ...]
    limit: int
    priority: int | None = None  # only this level (a floor's share); None: strict order
    exclude: tuple[str, ...] = ()  # a shared pool's claim: tenants not to take from
    partitions: tuple[int, ...] | None = None  # only from these; None: from all
    # A shared pool's claim with no level from these tenants only (a headroom claim,
    # policy/headroom.py: the quiet tenants' tasks, found by the per-tenant index
    # whatever a flood's backlog ahead of them).
    tenants: tuple[str, ...] | None = None


class LeaseRenewal(msgspec.Struct, frozen=True):
    tenant_id: str
    worker: str
    task_ids: tuple[str, ...]


class Reaped(msgspec.Struct, frozen=True):
    tenant_id: str
    task_id: str
    state: str  # ready, or dead when that was the last attempt
    # What the logs say of the lost attempt (engine/reaper.py): "" and 0 where unknown.
    function: str = ""
    attempt: int = 0
    max_attempts: int = 0


class AttemptStore(Protocol):
    async def claim_tasks(
        self, requests: list[ClaimRequest], now: float, lease_s: float
    ) -> list[list[ClaimedTask]]:
        """Lease ready tasks to workers, in fair order, all requests in one commit."""
        ...

    async def submit_leased(
        self, tenant_id: str, tasks: list[NewTask], now: float, worker: str,
        lease: list[str], lease_s: float,
    ) -> list[ClaimedTask]:  # fmt: skip
        """Direct dispatch: insert unkeyed tasks and lease those named in `lease` to
        `worker` (as a claim leases them), in one commit; the leased ones in fair order."""
        ...

    async def promote_leased(
        self, tenant_id: str, task_ids: list[str], now: float, worker: str,
        functions: tuple[str, ...], limit: int, lease_s: float, due_by: float | None = None,
    ) -> list[ClaimedTask]:  # fmt: skip
        """Direct dispatch of due delayed tasks: up to `limit` of `task_ids` (the
        tenant's, of `functions`, scheduled and due by `due_by`, default `now`) made
        ready and leased to `worker` in one commit, in the order a claim takes them. One
        not due at `now` carries its run_at as `start_at`: the worker starts it then."""
        ...

    async def finish_attempts(self, finishes: list[Finish], now: float) -> list[str]:
        """Fenced finishes: ACCEPTED, DUPLICATE or STALE for each."""
        ...

    async def extend_leases(self, renewals: list[LeaseRenewal], lease_until: float) -> None: ...
    async def reap_leases(self, now: float, limit: int, hooks: Hooks | None = None) -> list[Reaped]:
        """Tasks whose lease ran out go back to ready (or dead on their last attempt),
        with their `failed` or `dead` notifications in the same transaction."""
        ...

    async def release_tasks(
        self, tenant_id: str, worker: str, held: list[Held], now: float
    ) -> list[str]:
        """Hand tasks back to ready without using up their attempt (a draining worker);
        returns the ids handed back. Fenced on the claim as delivered: a task goes back
        only if it is still running for this worker with that attempt and that dispatch
        time, so a late hand-back never matches a newer claim of the same task by the
        same worker (same attempt number, later dispatch)."""
        ...

    async def leased_to(self, tenant_id: str, worker: str) -> list[Held]:
        """(task id, attempt, dispatched_at) of the running tasks leased to a worker. A
        tenant of SHARED ("*") means any tenant: a shared pool's worker; so in
        release_tasks and extend_leases."""
        ...

    async def get_claimed(
        self, tenant_id: str, worker: str, task_ids: list[str]
    ) -> list[ClaimedTask]:
        """Of these tasks, those running and leased to the worker (claimed for it by the
        node that holds their partition), in fair order; tenant SHARED: any tenant's."""
        ...

    async def list_attempts(self, tenant_id: str, task_id: str) -> list[AttemptRecord]: ...


# -- fair order ----------------------------------------------------------------------


class FairnessStore(Protocol):
    async def retag(self, tags: list[tuple[str, float]]) -> None:
        """Give (task id, start tag) to tasks that just became ready (fair order)."""
        ...

    async def fair_clock(self) -> float | None:
        """The virtual clock as the store sees it: the largest start tag running, else
        the tag at the head of the ready queue; None when there is neither."""
        ...

    async def last_tag(self, tenant_id: str, functions: list[str]) -> float | None:
        """The largest start tag among a tenant's ready tasks of these functions."""
        ...

    async def ready_backlog(self) -> dict[int, int]:
        """Ready tasks per partition, across tenants: placement picks the less backlogged
        partition; their sum is backpressure's overload signal."""
        ...

    async def tenant_backlog(self, tenant_id: str) -> dict[int, int]:
        """A tenant's ready tasks per partition."""
        ...

    async def count_ahead(self, tenant_id: str, task_id: str, limit: int) -> int:
        """Ready tasks of the task's tenant and function before it in fair order,
        counted up to `limit` (never an unbounded count)."""
        ...


# -- limited claims (the decision itself is store/limits.py) -------------------------


class LimitedClaim(msgspec.Struct, frozen=True):
    """What a limited claim took, and why it took no more."""

    tasks: list[ClaimedTask]
    retry_at: float | None  # the rate held tasks back: the next start is allowed then
    drained: bool  # the function had fewer ready tasks than its limits allowed


class LimitStore(Protocol):
    async def claim_limited(
        self, request: ClaimRequest, limits: list[Limit], now: float, lease_s: float
    ) -> LimitedClaim:
        """A claim of one tenant's tasks under limits, cluster-wide: under every limit,
        no more than `max_concurrency` running and no more than `rate` starts a second
        after a `burst` (a function's limits, the tenant's, a shared pool's reserve)."""
        ...

    async def count_running(self, tenant_id: str, function: str | None) -> int:
        """A tenant's running tasks of one function (None: of all), cluster-wide."""
        ...

    async def rate_states(self, keys: list[str]) -> dict[str, float]:
        """The GCRA state (theoretical arrival time) of the rate keys that have one."""
        ...


# -- named leases --------------------------------------------------------------------


class LeaseStore(Protocol):
    """Named leases decide which node owns what (partitions, the timers), and that must
    not trust any node's clock: the store sets and judges their expiry on the database's
    own clock, the one every node shares. This is the deliberate exception to taking
    `now` as an argument: with each node's `now`, a node running 10 s fast would judge
    the others' leases run out and take them, and ownership would flap. (No fake clock
    reaches these; tests make a lease run out with a negative ttl_s.)"""

    async def list_leases(self, prefix: str) -> list[tuple[str, str, float]]:
        """Unexpired leases (name, holder, until) whose names start with `prefix`;
        `until` is on the database's clock (epoch seconds)."""
        ...

    async def acquire_leases(self, names: list[str], holder: str, ttl_s: float) -> list[str]:
        """acquire_lease for many names in one go; returns the names granted."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give a lease up, if this holder has it."""
        ...

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the named lease for `ttl_s` seconds of the database's clock
        (a negative ttl_s: it has run out); False while another holder's lease runs
        (the cluster's timer leader, for one)."""
        ...

    async def keep_secret(self, name: str, candidate: bytes, now: float) -> bytes:
        """The cluster's secret of this name: `candidate` if none was kept before (the
        first node to ask makes it), else the one kept, for good."""
        ...


# -- cron schedules ------------------------------------------------------------------


class ScheduleStore(Protocol):
    async def put_schedule(
        self,
        tenant_id: str,
        name: str,
        config: bytes,
        next_fire_at: float | None,
        now: float,
        last_floor: float = 0.0,
    ) -> None:
        """Create a schedule, or replace its config keeping its firing state (its
        last_fire_at rises to `last_floor` if that is later: a new expression must not
        fire its past)."""
        ...

    async def list_schedules(
        self, tenant_id: str, name: str | None = None
    ) -> list[ScheduleRow]: ...
    async def delete_schedule(self, tenant_id: str, name: str) -> bool: ...
    async def pause_schedule(
        self, tenant_id: str, name: str, paused: bool, next_fire_at: float | None, now: float
    ) -> bool:
        """Pause or resume; resuming skips the fire times missed while paused."""
        ...

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        """Unpaused schedules, across tenants, whose next fire time has come."""
        ...

    async def fire_schedule(
        self,
        row: ScheduleRow,
        last_after: float,
        next_fire_at: float | None,
        skipped: int,
        tasks: list[NewTask],
        now: float,
    ) -> bool:
        """Move the schedule's firing state on from `row.last_fire_at` and insert its tasks,
        in one commit; False (and nothing inserted) if another node already moved it."""
        ...


# -- pause rules and the tasks they hold ---------------------------------------------


class PauseStore(Protocol):
    async def create_pause(
        self, tenant_id: str, pause_id: str, selector: bytes, now: float
    ) -> None: ...
    async def list_pauses(self, tenant_id: str | None) -> list[PauseRow]:
        """A tenant's pause rules, or every tenant's with None."""
        ...

    async def delete_pause(self, tenant_id: str, pause_id: str) -> bytes | None:
        """Lift a pause; returns its selector, or None if there was none."""
        ...

    async def hold_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        """Ready or scheduled tasks become paused; returns the ids held."""
        ...

    async def unhold_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[tuple[str, str]]:
        """Paused tasks become ready (or scheduled, if not due); (id, new state) each."""
        ...


# -- subscriptions: the functions a topic's events fan out to ------------------------


class SubscriptionStore(Protocol):
    async def put_subscription(
        self, tenant_id: str, name: str, topic: str, config: bytes, now: float
    ) -> None: ...
    async def list_subscriptions(
        self, tenant_id: str, topic: str | None = None
    ) -> list[SubscriptionRow]: ...
    async def delete_subscription(self, tenant_id: str, name: str) -> bool: ...


# -- tenant quotas -------------------------------------------------------------------


class QuotaStore(Protocol):
    async def put_quota(self, tenant_id: str, config: bytes) -> None: ...
    async def get_quota(self, tenant_id: str) -> bytes | None: ...
    async def list_quotas(self) -> list[tuple[str, bytes]]:
        """(tenant id, JSON TenantQuota) of every tenant with quotas."""
        ...

    async def count_queued(self, tenant_id: str) -> int:
        """The tenant's waiting tasks: ready, scheduled and paused (the hard quota)."""
        ...


# -- a task's history ----------------------------------------------------------------


class HistoryStore(Protocol):
    async def list_history(self, tenant_id: str, task_id: str) -> list[HistoryEntry]:
        """A task's rarer transitions (cancelled, retried by hand, expired, lease lost,
        handed back, a stale result), oldest first. The common ones are timestamps on
        the task and its attempts, so the hot path writes no history."""
        ...


# -- captured log lines ---------------------------------------------------------------


class Started(msgspec.Struct, frozen=True):
    """A running attempt's start, as its worker reported it."""

    tenant_id: str
    task_id: str
    attempt: int
    worker: str
    started_at: float


class ProgressNote(msgspec.Struct, frozen=True):
    """A running attempt's latest progress, as its worker reported it (checked by the
    engine: finite amounts >= 0, a message of at most 200 characters)."""

    tenant_id: str
    task_id: str
    attempt: int
    worker: str
    done: float
    total: float | None
    message: str | None
    at: float  # when the server received it


def progress_json(n: ProgressNote) -> str:
    """The tasks column's value for a note (both backends keep the same JSON)."""
    return msgspec.json.encode(
        {"done": n.done, "total": n.total, "message": n.message, "at": n.at, "attempt": n.attempt}
    ).decode()


class LogQuery(msgspec.Struct, frozen=True):
    """Which of a task's lines: after the cursor (attempt, seq), of one attempt, at a level
    or above, holding a text (case-insensitive)."""

    after: tuple[int, int] = (0, -1)
    attempt: int | None = None
    level: int = 0
    text: str | None = None
    limit: int = 1000


class LogStore(Protocol):
    async def append_logs(self, batches: list[LogBatch]) -> int:
        """Keep the lines of running attempts that their workers shipped, fenced on who
        holds (or held) each attempt; apply their drops. Returns how many lines were kept.
        A finished attempt's last lines come with its finish (`Finish.logs`)."""
        ...

    async def mark_started(self, starts: list[Started]) -> None:
        """Record running attempts' starts, each only while its worker holds it."""
        ...

    async def record_progress(self, notes: list[ProgressNote]) -> None:
        """Keep running attempts' latest progress on their tasks (`TaskRecord.progress`,
        JSON {done, total, message, at, attempt}), each only while its worker holds it;
        kept after the attempt ends, replaced by a later attempt's."""
        ...

    async def list_logs(self, tenant_id: str, task_id: str, query: LogQuery) -> list[LogRecord]:
        """A page of a task's lines, in (attempt, seq) order."""
        ...

    async def purge_logs(self, after: float, before: float, limit: int) -> tuple[int, float]:
        """Retention: of up to `limit` lines written in (after, before], oldest first,
        delete those of tasks that succeeded or are gone. Returns (deleted, the time of
        the last line looked at, or `before` when there were fewer than `limit`)."""
        ...


# -- the audit log -------------------------------------------------------------------


class AuditStore(Protocol):
    async def record_audit(self, entries: list[AuditEntry]) -> None:
        """Append administrative and bulk actions to the audit log, in one commit."""
        ...

    async def list_audit(
        self, tenant_id: str | None, before: str, limit: int, action: str | None = None
    ) -> list[AuditEntry]:
        """A page of a tenant's audit entries, newest first, with ids below `before`
        ("" for the first page), of one action if given. None: every tenant's and the
        cluster-wide ones (the admin's view)."""
        ...

    async def purge_audit(self, before: float, limit: int) -> int:
        """Delete up to `limit` entries recorded before `before`, oldest first; returns
        how many."""
        ...


# -- counts for metrics, stats and the console's charts ------------------------------


class RollupRow(msgspec.Struct, frozen=True):
    """One minute of a (tenant, function)'s counts; rows add up across nodes."""

    tenant_id: str
    function: str
    minute: float  # the minute's start, epoch seconds
    submitted: int = 0
    started: int = 0  # dispatches, every attempt
    succeeded: int = 0
    failed: int = 0  # attempts that failed and go back to wait (a retry)
    dead: int = 0
    cancelled: int = 0
    expired: int = 0
    waits: int = 0  # first attempts started; wait_s is the sum of their submit->start
    wait_s: float = 0.0
    runs: int = 0  # attempts a worker finished; run_s is the sum of their run times
    run_s: float = 0.0


class BacklogRow(msgspec.Struct, frozen=True):
    """A (tenant, function)'s tasks in one state (or held for one reason: `held:rate`)."""

    tenant_id: str
    function: str
    state: str
    tasks: int
    oldest: float | None = None  # ready: the oldest ready_at


class RollupStore(Protocol):
    async def add_rollup(self, rows: list[RollupRow]) -> None:
        """Add each row's counts to its minute's (an additive upsert, one commit)."""
        ...

    async def list_rollup(self, tenant_id: str | None, since: float) -> list[RollupRow]:
        """A tenant's minutes from `since` on (None: every tenant's), oldest first."""
        ...

    async def purge_rollup(self, before: float) -> int:
        """Delete the minutes before `before`; returns how many rows."""
        ...

    async def count_backlog(self) -> list[BacklogRow]:
        """Not-ended tasks (and dead ones) by tenant, function and state: one grouped
        count through the states' partial indexes, for the timers leader's snapshot."""
        ...

    async def put_backlog(self, rows: list[BacklogRow], now: float) -> None:
        """Replace the backlog snapshot with these rows, taken at `now`."""
        ...

    async def list_backlog(self, tenant_id: str | None) -> tuple[list[BacklogRow], float | None]:
        """The snapshot's rows of a tenant (None: every tenant's) and when it was taken."""
        ...

    async def count_load(
        self, tenant_id: str, functions: list[str], due_by: float, cap: int
    ) -> list[BacklogRow]:
        """The scaling signal's counts of some functions, by tenant and function: states
        `ready` (with the oldest ready time) and `paused`, each counted up to `cap`;
        `running`; `due` (scheduled by `due_by`, up to `cap`). A tenant's tasks, or for
        SHARED every tenant's (the running ones leased to shared pools)."""
        ...


# -- the outbox of result notifications ----------------------------------------------


class NotificationStore(Protocol):
    """Rows are written by the ends of tasks (finish, cancel, expiry, reaper: each in its
    own transaction); these are the notifier's reads and writes."""

    async def due_notifications(self, now: float, limit: int) -> list[Notification]:
        """Rows due by `now` whose receiver is not disabled, each after every earlier
        unsettled row of its task for the same receiver (a task's order is kept)."""
        ...

    async def settle_notification(
        self, n: Notification, state: str, next_at: float | None, now: float,
        status: int | None, answer: str | None, log: str | None = None,
    ) -> bool:  # fmt: skip
        """Record one try (fenced on the row's tries); next_at None settles the row;
        `log` is the row's kept tries after this one (JSON)."""
        ...

    async def list_notifications(self, tenant_id: str, task_id: str) -> list[Notification]: ...
    async def disable_endpoint(self, tenant_id: str, url: str, now: float, reason: str) -> None: ...
    async def enable_endpoint(self, tenant_id: str, url: str, now: float) -> bool:
        """Enable a disabled receiver; what waited for it (or failed) is due again."""
        ...

    async def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]: ...
    async def retrying_counts(self, tenant_id: str) -> dict[str, int]:
        """Each receiver URL's deliveries pending after a failed try."""
        ...

    async def get_webhook_secrets(self, tenant_id: str) -> tuple[list[str], float] | None:
        """The tenant's signing secrets of per-task webhooks (newest first) and when they
        were last rotated; None if it has none yet."""
        ...

    async def set_webhook_secrets(self, tenant_id: str, secrets: list[str], now: float) -> None: ...


# -- the whole store -----------------------------------------------------------------


class Store(
    TenantStore,
    FunctionStore,
    TaskStore,
    AttemptStore,
    FairnessStore,
    LimitStore,
    LeaseStore,
    ScheduleStore,
    PauseStore,
    SubscriptionStore,
    QuotaStore,
    HistoryStore,
    LogStore,
    AuditStore,
    RollupStore,
    NotificationStore,
    Protocol,
):
    backend: str
    """Which database this is ("sqlite" or "postgres"): a label for metrics and logs.
    Nothing above the store branches on it; what differs is asked of the store."""

    async def open(self) -> None:
        """Connect, and bring the schema up to date."""
        ...

    async def close(self) -> None: ...
