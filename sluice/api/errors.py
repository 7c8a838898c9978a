"""One error format everywhere: {"error": {"status", "code", "message", "field"}}.

Each exception type maps to one status code here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from ..errors import ClientError, Unavailable

log = logging.getLogger("sluice.api")


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    status: int
    code: str
    message: str
    field: str | None = None
    scope: str | None = None  # backpressure: "tenant" or "global", who is being slowed


class ErrorResponse(msgspec.Struct, frozen=True):
    error: ErrorBody


_encoder = msgspec.json.Encoder()


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    scope: str | None = None,
) -> Response[bytes]:
    body = _encoder.encode(ErrorResponse(ErrorBody(status, code, message, field, scope)))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _client_error(_: Request[Any, Any, Any], exc: ClientError) -> Response[bytes]:
    retry_after = getattr(exc, "retry_after_s", None)  # 429s always say when to come back
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    scope = getattr(exc, "scope", None)
    return error_response(
        exc.status, exc.code, exc.message, exc.field, headers=headers, scope=scope
    )


def _unavailable(_: Request[Any, Any, Any], exc: Unavailable) -> Response[bytes]:
    return error_response(
        503, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after_s)},
        scope=exc.scope,
    )  # fmt: skip


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    field = None
    message = str(exc.detail)
    if isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict):
            field = first.get("key")
            message = f"{first.get('message', message)}"
    return error_response(400, "invalid_request", message, field)


def _not_found(_: Request[Any, Any, Any], exc: NotFoundException) -> Response[bytes]:
    return error_response(404, "not_found", "no such endpoint")


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = {405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
    # A 405 names the methods the route takes (RFC 9110: Allow is required on a 405).
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers or None)


def _internal(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("internal error", exc_info=exc)
    return error_response(500, "internal", "the server failed; the error is logged")


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    ClientError: _client_error,
    Unavailable: _unavailable,
    ValidationException: _validation,
    NotFoundException: _not_found,
    HTTPException: _http,
    Exception: _internal,
}
