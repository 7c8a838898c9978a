"""Sluice: durable, fair, push-based asynchronous task processing.

import sluice

app = sluice.App("shop")

@app.task(retry=sluice.RetryPolicy(max_attempts=5), timeout=30)
def send_welcome(user_id: int) -> None: ...

send_welcome.submit(42, delay=600)
"""

from .client import AsyncClient, Client
from .errors import (
    Reject,
    RemoteError,
    ResultTimeout,
    Retry,
    SluiceError,
    TaskFailed,
    Throttled,
)
from .model import RetryPolicy
from .worker import App, TaskContext, TaskFunction, TaskHandle, current_task
from .worker.app import Call

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncClient",
    "Call",
    "Client",
    "Reject",
    "RemoteError",
    "ResultTimeout",
    "Retry",
    "RetryPolicy",
    "SluiceError",
    "TaskContext",
    "TaskFailed",
    "TaskFunction",
    "TaskHandle",
    "Throttled",
    "current_task",
]
