"""Checking a Sluice webhook where it arrives: the Standard Webhooks v1 signature over
"id.timestamp.body", with the receiver's secret (or secrets, during a rotation), in
constant time, within a tolerance of the timestamp (docs/notifications.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ..errors import InvalidSignature

TOLERANCE_S = 300.0  # Standard Webhooks' five minutes, either way


def verify_webhook(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """The delivery's JSON body, if its signature is one of `secrets` (`whsec_…`) and its
    timestamp within `tolerance_s` of now; else `sluice.InvalidSignature`. Keep the
    `webhook-id` header to drop a delivery you already handled: it is the same on every
    try."""
    given = {k.lower(): v for k, v in headers.items()}
    msg_id = given.get("webhook-id")
    stamp = given.get("webhook-timestamp")
    signatures = given.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise InvalidSignature("the webhook-id, -timestamp and -signature headers are needed")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number of seconds") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is too far from now")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    expected = [base64.b64encode(hmac.new(_key(k), signed, hashlib.sha256).digest()) for k in keys]
    for part in signatures.split():
        version, _, signature = part.partition(",")
        if version != "v1":
            continue
        if any(hmac.compare_digest(signature.encode(), e) for e in expected):
            return msgspec.json.decode(body)
    raise InvalidSignature("no signature matches the secret")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise InvalidSignature("a secret is whsec_ and base64") from None
