"""Sluice: durable, fair, push-based asynchronous task processing.

import sluice

app = sluice.App("shop")

@app.task(retry=sluice.RetryPolicy(max_attempts=5), timeout=30)
def send_welcome(user_id: int) -> None: ...

send_welcome.submit(42, delay=600)

The SDK's names below are loaded on first use, so that importing one of the package's
modules (the server's, say) does not load the SDK's (tests/test_layers.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name: the module it comes from
_EXPORTS = {
    "App": "sluice.worker",
    "AsyncClient": "sluice.client",
    "Call": "sluice.worker.app",
    "Client": "sluice.client",
    "InvalidSignature": "sluice.errors",
    "Reject": "sluice.errors",
    "RemoteError": "sluice.errors",
    "ResultTimeout": "sluice.errors",
    "Retry": "sluice.errors",
    "RetryPolicy": "sluice.contract",
    "SluiceError": "sluice.errors",
    "TaskContext": "sluice.worker",
    "TaskFailed": "sluice.errors",
    "TaskFunction": "sluice.worker",
    "TaskHandle": "sluice.worker",
    "Throttled": "sluice.errors",
    "current_task": "sluice.worker",
    "verify_webhook": "sluice.client",
}
__all__ = [
    "App",
    "AsyncClient",
    "Call",
    "Client",
    "InvalidSignature",
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
    "verify_webhook",
]

if TYPE_CHECKING:
    from .client import AsyncClient, Client, verify_webhook
    from .contract import RetryPolicy
    from .errors import (
        InvalidSignature,
        Reject,
        RemoteError,
        ResultTimeout,
        Retry,
        SluiceError,
        TaskFailed,
        Throttled,
    )
    from .worker import App, TaskContext, TaskFunction, TaskHandle, current_task
    from .worker.app import Call


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sluice' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
