"""Every error answer's body."""

from __future__ import annotations

import msgspec


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    status: int
    code: str
    message: str
    field: str | None = None
    scope: str | None = None  # backpressure: "tenant" or "global", who is being slowed


class ErrorResponse(msgspec.Struct, frozen=True):
    """Every error answer: `{"error": {"status", "code", "message", "field"}}`."""

    error: ErrorBody
