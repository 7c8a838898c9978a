"""The HTTP client of the Sluice API: sync `Client` and async `AsyncClient`.

Imports no server code, so producers need only `pip install sluice`.
"""

from .http import AsyncClient, Client, discover
from .models import (
    ApiKey,
    DeadTask,
    Function,
    NewKey,
    NewTenant,
    Pause,
    PauseSelector,
    Schedule,
    ScheduleSpec,
    SubmitOutcome,
    Task,
    TaskSummary,
    Tenant,
)

__all__ = [
    "ApiKey",
    "AsyncClient",
    "Client",
    "DeadTask",
    "Function",
    "NewKey",
    "NewTenant",
    "Pause",
    "PauseSelector",
    "Schedule",
    "ScheduleSpec",
    "SubmitOutcome",
    "Task",
    "TaskSummary",
    "Tenant",
    "discover",
]
