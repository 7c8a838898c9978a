"""The HTTP surface: `/v1` JSON API, the worker websocket and the OpenAPI document."""

from .app import create_app

__all__ = ["create_app"]
