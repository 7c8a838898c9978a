"""The embedded SQLite backend (DESIGN §5 "Storage"): one part per noun, each in the
module of that noun with its SQL in the `.sql` file of the same name, all on
`SQLiteDatabase` (database.py), which owns the files, the writer thread and the readers.
"""

from __future__ import annotations

from .attempts import SQLiteAttempts
from .audit import SQLiteAudit
from .fairness import SQLiteFairness
from .functions import SQLiteFunctions
from .history import SQLiteHistory
from .leases import SQLiteLeases
from .limits import SQLiteLimits
from .logs import SQLiteLogs
from .notifications import SQLiteNotifications
from .pauses import SQLitePauses
from .quotas import SQLiteQuotas
from .rollup import SQLiteRollup
from .schedules import SQLiteSchedules
from .subscriptions import SQLiteSubscriptions
from .tasks import SQLiteTasks
from .tenants import SQLiteTenants


class SQLiteStore(
    SQLiteTenants,
    SQLiteFunctions,
    SQLiteTasks,
    SQLiteAttempts,
    SQLiteFairness,
    SQLiteLimits,
    SQLiteLeases,
    SQLiteSchedules,
    SQLitePauses,
    SQLiteSubscriptions,
    SQLiteQuotas,
    SQLiteHistory,
    SQLiteLogs,
    SQLiteAudit,
    SQLiteRollup,
    SQLiteNotifications,
):
    """The `Store` protocol on one SQLite file."""


__all__ = ["SQLiteStore"]
