"""Standard Webhooks v1 signatures (OBSERVABILITY §6.1), one implementation for every
outbound call the server signs: HTTP targets' requests and webhooks' deliveries.

`webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, one per key: during a rotation both keys sign, so a receiver that
holds either verifies. Keys are `whsec_` and the base64 of 24 to 64 random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_of(secret: str) -> bytes:
    """A secret's key bytes; b"" if it is not base64."""
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except ValueError:
        return b""


def is_valid(secret: str) -> bool:
    return secret.startswith(PREFIX) and 24 <= len(key_of(secret)) <= 64


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One key's signature: "v1," and the base64 HMAC-SHA256 of "id.timestamp.body"."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(keys: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: every key's signature, space separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in keys)
