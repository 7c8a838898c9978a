"""The HTTP surface: `/v1` JSON API, the worker websocket and the OpenAPI document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the app imports the console, which imports parts of this
    # package, so an eager import here made `import sluice.dashboard.pages` circular.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
