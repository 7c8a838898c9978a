"""Abuse limits on callers (docs/security.md): what one key or one address may hold.

- Failed keys per address: past `max_auth_failures` in a minute, every request from that
  address that presents a key is refused with 429 until the minute is over, the right
  key included (else guessing would go on, one refusal a guess).
- Streams per key: long-polls and event streams one key holds open at once.

Each node counts its own. Memory is bounded: addresses are forgotten when their minute
is over, and at most MAX_ADDRESSES are tracked (the oldest minute goes first).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from ..config import Settings
from ..errors import TooManyRequests

WINDOW_S = 60.0
MAX_ADDRESSES = 100_000


class AuthFailures:
    def __init__(self, limit: int, now: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._now = now
        self._seen: dict[str, tuple[float, int]] = {}  # address: (window start, failures)

    def check(self, address: str) -> None:
        """Refuse a key from an address that failed too often this minute."""
        seen = self._seen.get(address)
        if seen is None:
            return
        start, failures = seen
        left = start + WINDOW_S - self._now()
        if left <= 0:
            del self._seen[address]
        elif failures >= self._limit:
            raise TooManyRequests(
                f"{failures} unknown keys from this address within a minute; try again "
                "after Retry-After",
                code="too_many_failures", retry_after_s=max(1, int(left + 0.999)),
            )  # fmt: skip

    def failed(self, address: str) -> None:
        now = self._now()
        start, failures = self._seen.get(address, (now, 0))
        if now - start >= WINDOW_S:
            start, failures = now, 0
        if address not in self._seen and len(self._seen) >= MAX_ADDRESSES:
            self._forget_oldest(now)
        self._seen[address] = (start, failures + 1)

    def _forget_oldest(self, now: float) -> None:
        expired = [a for a, (start, _) in self._seen.items() if now - start >= WINDOW_S]
        for address in expired or [min(self._seen, key=lambda a: self._seen[a][0])]:
            del self._seen[address]


class Streams:
    """Long-lived requests held per key (its id: the hash prefix, never the key)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    def check(self, key_id: str) -> None:
        """Refuse a new stream up front, before its response starts."""
        held = self._open.get(key_id, 0)
        if held >= self._limit:
            raise TooManyRequests(
                f"this key holds {held} long-polls and event streams open, its limit; "
                "close one first",
                code="too_many_streams",
            )

    def held(self) -> int:
        """Streams open now, across keys."""
        return sum(self._open.values())

    @contextlib.contextmanager
    def hold(self, key_id: str) -> Iterator[None]:
        self.check(key_id)
        self._open[key_id] = self._open.get(key_id, 0) + 1
        try:
            yield
        finally:
            left = self._open[key_id] - 1
            if left:
                self._open[key_id] = left
            else:
                del self._open[key_id]


class Limits:
    """The abuse limits of one node's API."""

    def __init__(self, settings: Settings) -> None:
        self.auth_failures = AuthFailures(settings.max_auth_failures)
        self.streams = Streams(settings.max_streams_per_key)
