"""The constrained field types the bodies and query strings are made of: decoding
enforces them and the OpenAPI document states them (api/openapi.py)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from ..model import (
    FUNCTION_NAME,
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    MAX_LIMIT,
    MAX_PRIORITY,
    MAX_TIMEOUT_S,
    MAX_TTL_S,
    MIN_PRIORITY,
    MIN_RATE,
    NAME,
)

FunctionName = Annotated[str, msgspec.Meta(pattern=FUNCTION_NAME.pattern)]
# The function a task is submitted to: its pattern is stated, but not run by decoding (a
# regex per task was more than half of a batch's decoding). Admission looks the name up
# among the tenant's functions, whose names all match it, and runs the pattern only on a
# name it does not find, refusing it as decoding did (engine/admission.py).
SubmittedFunction = Annotated[
    str, msgspec.Meta(extra_json_schema={"pattern": FUNCTION_NAME.pattern})
]
Name = Annotated[str, msgspec.Meta(pattern=NAME.pattern)]
Priority = Annotated[int, msgspec.Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPTS)]
# Text a user names things with: no NUL (PostgreSQL's text cannot hold one), no other
# control character.
TEXT: Final = r"^[^\x00-\x1f\x7f]*$"
Tag = Annotated[
    str,
    msgspec.Meta(min_length=1, pattern=TEXT, extra_json_schema={"x-limit": "max_tag_length"}),
]
Tags = Annotated[list[Tag], msgspec.Meta(extra_json_schema={"x-limit": "max_tags"})]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_S)]
Ttl = Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_S)]
Backoff = Annotated[float, msgspec.Meta(ge=0, le=MAX_BACKOFF_S)]
Rate = Annotated[float, msgspec.Meta(ge=MIN_RATE, le=MAX_LIMIT)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
KEY_MAX_LENGTH: Final = 256
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_MAX_LENGTH, pattern=TEXT)]
Delay = Annotated[float, msgspec.Meta(ge=0, extra_json_schema={"x-limit": "max_delay_s"})]
# Task arguments travel as raw JSON (never decoded by the server), documented by shape.
JsonArray = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "array", "items": {},
                                                                   "default": []})]  # fmt: skip
JsonObject = Annotated[
    msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "object", "default": {}})
]

# Query parameters --------------------------------------------------------------------
# Each list route's query string, as a struct: converted from the query string with the
# same rules as a body (api/routes.py), documented from the same type (api/openapi.py).

MAX_EPOCH: Final = 1e11  # epoch seconds (year 5138): a bound that also refuses inf and nan
Epoch = Annotated[float, msgspec.Meta(ge=0, le=MAX_EPOCH)]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=1000)]
TenantId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
Cursor = Annotated[str, msgspec.Meta(max_length=256, pattern=TEXT)]  # the `next` of a page
Action = Annotated[str, msgspec.Meta(pattern=r"^[a-z]+\.[a-z]+$")]

# W3C trace context (sluice/tracing.py): the shape here; all-zero ids and version ff
# are refused at admission (422), as no pattern a JSON schema tool reads can say so.
TRACEPARENT_SHAPE: Final = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
TraceParent = Annotated[str, msgspec.Meta(pattern=TRACEPARENT_SHAPE)]
TraceState = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^[\x20-\x7e]*$")]

# http(s), a host, no credentials, no space or control character (a NUL could not be
# stored); at most 2,048 characters. Whether the host is an
# address the server may call is the egress policy's to say (engine/egress.py), not a
# pattern's.
# (ASCII classes only: `\s` means more to Python's re than to JSON Schema's, U+0085.)
TargetUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\x00-\x20\x7f]+([/?#][^\x00-\x20\x7f]*)?$",
        max_length=2048,
    ),
]

NotifyEvent = Literal["succeeded", "failed", "dead", "cancelled", "expired"]
"""A task's ends that notify: it succeeded, an attempt failed (and is retried), it died
(dead letter), it was cancelled, it expired before starting."""
NotifyEvents = Annotated[list[NotifyEvent], msgspec.Meta(min_length=1, max_length=5)]
