"""Console sessions: who is signed in, in a signed cookie, and the CSRF token of each
action (DESIGN §9; OBSERVABILITY.md §1.3).

Signing in takes a tenant's API key or the admin key once; the cookie then holds what
the key proves, never the key: `{"k": "tenant", "t": tenant id, "d": the key's hash}` or
`{"k": "admin", "t": the tenant it looks at, "d": a hash of the admin key}`, with an
expiry and a random nonce, signed with HMAC-SHA256. Each request checks the hash again
(a revoked key or a changed admin key ends its sessions within the key cache's seconds).

The cookie is HttpOnly, SameSite=Strict, Secure when the node serves HTTPS. Every
action (a POST) carries a CSRF token, the HMAC of the session's nonce, as the `csrf`
form field or the `X-CSRF-Token` header htmx sends; the session cookie alone is not
enough to act.

The signing key is `SLUICE_CONSOLE_SECRET`; without it, a random key the first node made
and kept in the store, so every node of a cluster shares it (a session works on any
node) and it outlives restarts. It was once derived from the admin key: a tenant's own
cookie then let it test guesses of the admin key offline, as fast as it could hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import msgspec

COOKIE = "sluice_console"
SESSION_S = 12 * 3600.0  # a session lasts a working day


class Session(msgspec.Struct, frozen=True):
    k: str  # "tenant" or "admin"
    t: str  # the tenant it sees ("" for an admin looking at every tenant)
    d: str  # the key's hash (tenant), or the admin key's (admin)
    x: float  # expires at, epoch seconds
    n: str  # nonce: the CSRF token is made from it

    @property
    def admin(self) -> bool:
        return self.k == "admin"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Session)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def admin_digest(admin_key: str) -> str:
    return hashlib.sha256(b"sluice console admin:" + admin_key.encode()).hexdigest()


class Sessions:
    """Makes and reads session cookies and CSRF tokens with one signing key."""

    def __init__(self, secret: str | None) -> None:
        self._key = secret.encode() if secret else None

    @property
    def keyed(self) -> bool:
        """Whether the signing key is known (the store's is read on first use)."""
        return self._key is not None

    def use(self, key: bytes) -> None:
        self._key = key

    def _sign(self, data: bytes) -> str:
        if self._key is None:
            raise RuntimeError("the console's signing key is not read yet")
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def make(self, kind: str, tenant_id: str, digest: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        session = Session(kind, tenant_id, digest, now + SESSION_S, secrets.token_urlsafe(12))
        return self.encode(session)

    def encode(self, session: Session) -> str:
        body = _b64(_encoder.encode(session))
        return f"{body}.{self._sign(body.encode())}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie, or None if it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(body.encode())):
            return None
        try:
            session = _decoder.decode(_unb64(body))
        except (msgspec.DecodeError, ValueError):
            return None
        if session.x < (time.time() if now is None else now):
            return None
        return session

    def csrf(self, session: Session) -> str:
        return self._sign(b"csrf:" + session.n.encode())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(session))
