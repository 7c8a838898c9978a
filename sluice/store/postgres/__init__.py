"""The PostgreSQL backend (DESIGN §5 "Storage", "Multi-node"; ALGORITHMS.md §6): one part
per noun, each in the module of that noun with its SQL in the `.sql` file of the same
name, all on `PostgresDatabase` (database.py), which owns the pools and the group insert.
The cluster bus (bus.py) is its own object, opened beside the store.
"""

from __future__ import annotations

from .attempts import PostgresAttempts
from .audit import PostgresAudit
from .fairness import PostgresFairness
from .functions import PostgresFunctions
from .history import PostgresHistory
from .leases import PostgresLeases
from .limits import PostgresLimits
from .logs import PostgresLogs
from .notifications import PostgresNotifications
from .pauses import PostgresPauses
from .quotas import PostgresQuotas
from .rollup import PostgresRollup
from .schedules import PostgresSchedules
from .schema import migrate
from .subscriptions import PostgresSubscriptions
from .tasks import PostgresTasks
from .tenants import PostgresTenants


class PostgresStore(
    PostgresTenants,
    PostgresFunctions,
    PostgresTasks,
    PostgresAttempts,
    PostgresFairness,
    PostgresLimits,
    PostgresLeases,
    PostgresSchedules,
    PostgresPauses,
    PostgresSubscriptions,
    PostgresQuotas,
    PostgresHistory,
    PostgresLogs,
    PostgresAudit,
    PostgresRollup,
    PostgresNotifications,
):
    """The `Store` protocol on one PostgreSQL database, shared by every server node."""


__all__ = ["PostgresStore", "migrate"]
