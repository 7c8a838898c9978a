"""The HTTP client of the Sluice API: sync `Client` and async `AsyncClient`.

Imports no server code, so producers need only `pip install sluice`. What it returns
are the API's own bodies (sluice/contract/), re-exported here.
"""

from ..contract import (
    ApiKey,
    Attempt,
    DeadTask,
    Delivery,
    Function,
    FunctionConfig,
    LogEntry,
    LogPage,
    NewKey,
    NewTenant,
    Pause,
    PauseSelector,
    Schedule,
    Selector,
    Stages,
    SubmitOutcome,
    Task,
    TaskSummary,
    Tenant,
    TimelineEntry,
    WebhookReceiver,
)
from .http import AsyncClient, Client, discover
from .models import ScheduleSpec
from .webhooks import verify_webhook

__all__ = [
    "ApiKey",
    "AsyncClient",
    "Attempt",
    "Client",
    "DeadTask",
    "Delivery",
    "Function",
    "FunctionConfig",
    "LogEntry",
    "LogPage",
    "NewKey",
    "NewTenant",
    "Pause",
    "PauseSelector",
    "Schedule",
    "ScheduleSpec",
    "Selector",
    "Stages",
    "SubmitOutcome",
    "Task",
    "TaskSummary",
    "Tenant",
    "TimelineEntry",
    "WebhookReceiver",
    "discover",
    "verify_webhook",
]
