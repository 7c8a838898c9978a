"""Server settings, built once from a mapping (usually `os.environ`) and passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from .errors import InvalidRequest


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
    pool_key: str | None = None
    """Key for shared worker pools: a worker connecting with it runs every tenant's tasks
    of the functions it serves, in fair order (docs/scheduling.md); unset disables them."""
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
    retention_s: float = 7 * 86400.0
    """How long ended tasks (and their keys, attempts, logs) are kept."""
    purge_interval_s: float = 60.0
    shutdown_delay_s: float = 1.0
    """On SIGTERM, how long submits are answered 503 + Retry-After before the listener closes."""
    synchronous: str = "NORMAL"
    """SQLite `synchronous` pragma: NORMAL survives process crashes, FULL survives power loss."""

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

    @property
    def is_postgres(self) -> bool:
        return self.database.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database.removeprefix("sqlite:///"))
