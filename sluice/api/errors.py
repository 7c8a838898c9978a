"""One error format everywhere: {"error": {"status", "code", "message", "field"}}.

Every exception becomes an answer here and nowhere else (`answer`), whether the
framework caught it or the front door did (api/door.py). 429s and 503s always say when
to come back (Retry-After); a 405 names the methods the route takes (Allow).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException

from ..contract import ErrorBody, ErrorResponse
from ..errors import ClientError, Unavailable

log = logging.getLogger("sluice.api")

_encoder = msgspec.json.Encoder()
_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}

Headers = dict[str, str]


def answer(exc: BaseException) -> tuple[int, Headers, bytes]:
    """The status, headers and body an exception is answered with."""
    headers: Headers = {}
    if isinstance(exc, ClientError | Unavailable):
        status = 503 if isinstance(exc, Unavailable) else exc.status
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        field = getattr(exc, "field", None)
        body = ErrorBody(status, exc.code, exc.message, field, getattr(exc, "scope", None))
    elif isinstance(exc, NotFoundException):
        status, body = 404, ErrorBody(404, "not_found", "no such endpoint")
    elif isinstance(exc, HTTPException):  # the framework's own: 405, 413, 400
        status = exc.status_code
        headers.update({k.lower(): v for k, v in (exc.headers or {}).items()})
        body = ErrorBody(status, _CODES.get(status, "http_error"), str(exc.detail))
    else:
        log.error("internal error", exc_info=exc)
        status = 500
        body = ErrorBody(500, "internal", "the server failed; the error is logged")
    return status, headers, _encoder.encode(ErrorResponse(body))


def _framework(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    status, headers, body = answer(exc)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


EXCEPTION_HANDLERS: MutableMapping[
    int | type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]
] = {Exception: _framework}
