"""Server settings, built once from a mapping (usually `os.environ`) and passed explicitly."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from .errors import InvalidRequest
from .logs import MASK, redacted_url, url_secrets

SECRET_FIELDS = frozenset({"admin_key", "pool_key", "console_secret"})
"""Settings shown as `***` by repr and str (the database URL is shown without its password)."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of a server node, with its default.

    Each field is read from the environment variable ``SLUICE_<FIELD>`` in upper case.
    """

    database: str = "sqlite:///.sluice/sluice.db"
    """Where tasks live: ``sqlite:///PATH`` (embedded default, one node) or
    ``postgresql://USER@HOST:PORT/DB`` (any number of nodes)."""
    pg_pool_size: int = 10
    """PostgreSQL connections per node."""
    node_id: str | None = None
    """This node's name in the cluster (leases, logs); a random one when unset."""
    host: str = "127.0.0.1"
    port: int = 8420
    admin_key: str | None = None
    """Key for admin endpoints; unset disables them."""
    console_secret: str | None = None
    """Signs the web console's session cookies. Unset: a random key the first node made
    and kept in the store, shared by every node of the cluster."""
    pool_key: str | None = None
    """Key for shared worker pools: a worker connecting with it runs every tenant's tasks
    of the functions it serves, in fair order (docs/scheduling.md); unset disables them."""
    tls_cert: str | None = None
    """PEM certificate (chain) file: with `tls_key`, the node serves HTTPS and WSS only."""
    tls_key: str | None = None
    """PEM private key file of `tls_cert`, unencrypted; set both or neither."""
    overload_s: float = 30.0
    """Backpressure: the ready backlog is an overload past this many seconds of draining
    (and stops being one below half of it)."""
    overload_min_backlog: int = 1000
    """A backlog smaller than this is never an overload."""
    backpressure_interval_s: float = 10.0
    """How often heavy tenants and their refusal probabilities are worked out again."""
    targets_allow_loopback: bool = False
    """HTTP targets may be on this machine (127.0.0.0/8, ::1); `sluice dev` allows it."""
    targets_allow_private: bool = False
    """HTTP targets may be on private, link-local or other internal addresses."""
    webhooks_allow_loopback: bool = False
    """Webhooks may go to this machine (127.0.0.0/8, ::1): for tests and `sluice dev`."""
    webhooks_allow_private: bool = False
    """Webhooks may go to private, link-local or other internal addresses."""
    webhook_retry_s: str = "5,300,1800,7200,18000,36000,50400,72000,86400"
    """Waits between a webhook's tries after the first (which is at once), comma
    separated: Standard Webhooks' schedule, about three days in all. After the last the
    receiver is disabled until re-enabled (docs/notifications.md)."""
    webhook_timeout_s: float = 15.0
    """Longest wait for a webhook receiver's answer."""
    notify_interval_s: float = 0.5
    """How often the timers leader looks for notifications to deliver."""
    partitions: int = 32
    """Shuffle-sharding partitions (docs/flow-control.md): each tenant's tasks go to the
    less backlogged of its `partition_k`, and each partition is dispatched by one node."""
    partition_k: int = 2
    dedicated_partitions: int = 16
    """Partitions kept for hot tenants (numbered after the shared ones)."""
    hot_for_s: float = 60.0
    """A tenant with > 10 % and >= 1,000 of a partition's backlog this long gets a
    dedicated partition for its new tasks."""
    cool_for_s: float = 900.0
    """A hot tenant returns to its shared partitions after a backlog < 100 this long."""
    partition_ttl_s: float = 3.0
    """A node's partition leases run out this long after its last renewal (once a second)."""
    lease_s: float = 30.0
    """How long a dispatched task is leased to its worker without a heartbeat."""
    heartbeat_s: float = 10.0
    """How often workers send heartbeats and the node extends their leases."""
    reap_interval_s: float = 5.0
    """How often expired leases are put back to ready."""
    promote_interval_s: float = 1.0
    """How often due delayed tasks are promoted from the time index."""
    timer_horizon_s: float = 10.0
    """Delayed tasks due within this horizon are also held in memory and fired on time."""
    delay_lead_s: float = 0.01
    """A delayed task an idle worker may take is leased to it this long before it is due,
    and the worker starts it at its time: the lease's write and the push are done before
    it, not after (0: leased when due). The slot waits meanwhile, so longer costs slots:
    at 500 delayed tasks a second, 50 ms kept 25 slots waiting and made the late ones
    later (p99 31 ms against 1.2 ms at 10 ms, bench/RESULTS.md)."""
    poll_interval_s: float = 1.0
    """Safety-net dispatch poll when no wake-up arrives."""
    max_payload_bytes: int = 256 * 1024
    max_batch: int = 1000
    max_batch_bytes: int = 16 * 1024 * 1024
    """Largest body of a batch submit."""
    max_tags: int = 16
    max_tag_length: int = 64
    max_delay_s: float = 365 * 86400.0
    max_wait_s: float = 60.0
    """Longest long-poll for a task's result."""
    claim_batch: int = 256
    """Most tasks delivered to one worker in one frame."""
    shared_headroom: int = 1
    """Slots of each shared pool worker kept free per tenant below its share (at most a
    quarter of the worker's slots) while tenants share the pool (policy/headroom.py): a
    quiet tenant's task starts at once beside a flood. 0: every slot goes in fair order,
    as the queue has it."""
    direct_dispatch: bool = True
    """A submit that finds an idle worker slot commits its tasks already leased to it and
    pushes them at once, when that cannot change who runs first (docs/scheduling.md);
    off, every task waits for the dispatcher's next round."""
    log_retention_s: float = 3 * 86400.0
    """How long the captured log lines of a task that succeeded are kept; a task that
    failed, died or was cancelled keeps its lines as long as it is kept (`retention_s`)."""
    max_log_bytes: int = 256 * 1024
    """Log bytes kept of one attempt: the worker keeps the first quarter and the last
    three quarters, and leaves a marker where it dropped lines."""
    retention_s: float = 7 * 86400.0
    """How long ended tasks (and their keys, attempts, logs) are kept."""
    purge_interval_s: float = 60.0
    audit_retention_s: float = 90 * 86400.0
    """How long audit log entries (administrative and bulk actions) are kept."""
    shutdown_delay_s: float = 1.0
    """On SIGTERM, how long submits are answered 503 + Retry-After before the listener closes."""
    tracing: bool = False
    """Record OpenTelemetry spans (`wait`, `dispatch`, HTTP target calls) for tasks that
    carry a trace context; needs the `otel` extra and an SDK set up in the process (for
    example by `opentelemetry-instrument`). Off: OpenTelemetry is never imported."""
    synchronous: str = "NORMAL"
    """SQLite `synchronous` pragma: NORMAL survives process crashes, FULL survives power loss."""

    # -- abuse limits (docs/security.md): each bounds what one key or address can take
    max_functions: int = 1000
    """Functions one tenant may have (registered by workers or set through the API)."""
    max_functions_per_worker: int = 500
    """Functions one worker's hello may name."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body of any route but the submits (which have their own limits)."""
    max_header_bytes: int = 16 * 1024
    """Largest request head (request line and headers) a connection may send."""
    max_frame_bytes: int = 16 * 1024 * 1024
    """Largest websocket frame from a worker (a hello is held to 1 MiB of it)."""
    max_result_bytes: int = 1024 * 1024
    """Largest result of one task; a larger one fails the attempt (not retried)."""
    max_streams_per_key: int = 100
    """Long-polls and event streams one API key may hold open at once."""
    max_workers_per_tenant: int = 1000
    """Worker connections one tenant (or the pool key) may hold at once."""
    max_auth_failures: int = 20
    """Failed keys one address may send a minute; past it, 429 until the minute is over."""
    request_timeout_s: float = 30.0
    """A request whose head or body takes longer than this to arrive is cut off."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> Settings:
        values: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            raw = env.get(f"SLUICE_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"bad setting: {exc}") from exc
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.lease_s <= 2.5 * self.heartbeat_s:
            # A node renews leases of workers heard from within 2 heartbeats; the lease
            # must outlast that, with room for timer drift.
            raise InvalidRequest("lease_s must be more than 2.5 times heartbeat_s")
        if self.synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise InvalidRequest("synchronous must be NORMAL, FULL or EXTRA")
        if not (self.database.startswith("sqlite:///") or self.is_postgres):
            raise InvalidRequest("database must be sqlite:///PATH or postgresql://...")
        if not (1 <= self.partition_k <= self.partitions <= 1024):
            raise InvalidRequest("partitions must be 1..1024 and partition_k 1..partitions")
        if not 0 <= self.dedicated_partitions <= 1024:
            raise InvalidRequest("dedicated_partitions must be 0..1024")
        if self.pg_pool_size < 2:
            raise InvalidRequest("pg_pool_size must be at least 2")
        try:
            retries = self.webhook_retries
        except ValueError:
            retries = ()
        if not retries or min(retries) < 0:
            raise InvalidRequest("webhook_retry_s is a comma-separated list of seconds >= 0")
        _check_tls(self.tls_cert, self.tls_key)

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.__rich_repr__())})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        shown = {name: getattr(self, name) for name in self.__struct_fields__}
        for name in SECRET_FIELDS & shown.keys():
            shown[name] = shown[name] and MASK
        shown["database"] = redacted_url(self.database)
        return list(shown.items())

    @property
    def secret_values(self) -> list[str]:
        """What logs must never show: the keys and the database password."""
        keys = [getattr(self, name) for name in sorted(SECRET_FIELDS)]
        return [k for k in keys if k] + url_secrets(self.database)

    @property
    def webhook_retries(self) -> tuple[float, ...]:
        """The waits between a webhook's tries, after the first."""
        return tuple(float(part) for part in self.webhook_retry_s.split(","))

    @property
    def is_postgres(self) -> bool:
        return self.database.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database.removeprefix("sqlite:///"))


def _check_tls(cert: str | None, key: str | None) -> None:
    """Load the pair once at start, so a bad one stops the node with a clear message
    instead of failing on the first connection."""
    if (cert is None) != (key is None):
        raise InvalidRequest("tls_cert and tls_key go together: set both or neither")
    if cert is None or key is None:
        return
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise InvalidRequest(f"{name} {path} cannot be read: {exc.strerror}") from exc
    try:
        # An empty password: an encrypted key fails here instead of prompting on the terminal.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password="")
    except ssl.SSLError as exc:
        raise InvalidRequest(
            f"tls_cert {cert} and tls_key {key} are not a PEM certificate and its unencrypted "
            f"key: {exc.reason or exc}"
        ) from exc
