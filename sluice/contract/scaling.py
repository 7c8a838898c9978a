"""The scaling signal: `GET /v1/scaling/{pool}` (DESIGN §7, OBSERVABILITY.md §5.2), the
figure autoscalers read (KEDA's metrics-api scaler, `sluice worker --autoscale`)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from .fields import FunctionName

DUE_SOON_S: Final = 30.0  # delayed tasks due this soon count as load
LOAD_CAP: Final = 10_000  # ready, paused and due tasks are each counted up to this


class ScalingQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/scaling/{pool}`: the pool's functions to count (one `functions=` each);
    none: every function its workers run."""

    functions: Annotated[list[FunctionName], msgspec.Meta(max_length=100)] = []


class Held(msgspec.Struct, frozen=True, kw_only=True):
    """Ready tasks that more workers would not start, by what holds them."""

    paused: int = 0
    """In a paused state (a pause rule)."""
    tenant_quota: int = 0
    rate_limit: int = 0
    concurrency_limit: int = 0
    aimd_limit: int = 0


class Scaling(msgspec.Struct, frozen=True, kw_only=True):
    """A pool's load, the same on every server node (from the shared store; an AIMD
    limit, which each node keeps for itself, is the answering node's)."""

    pool: str
    functions: list[FunctionName]
    """The functions counted."""
    load: int
    """ready_dispatchable + running + due_soon: what KEDA divides by a pod's slots."""
    ready_dispatchable: int
    """Ready tasks that could start now if there were free slots."""
    running: int
    due_soon: int
    """Delayed tasks due within `due_soon_s`."""
    held: Held
    oldest_ready_age_seconds: float
    """Age of the oldest ready task counted (0 with none): a latency trigger."""
    capped: bool
    """True when a count stopped at its cap (LOAD_CAP): the load is at least this."""
    due_soon_s: float = DUE_SOON_S
