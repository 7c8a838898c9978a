"""Raw JSON values: task arguments, results and event bodies pass through the server
undecoded (`msgspec.Raw`), so the server checks their shape without building them.

The one check that needs care is nesting depth. msgspec refuses JSON nested deeper than
its C stack allows (a RecursionError, not a DecodeError, and the limit shrinks with the
caller's own stack), and a value is read back nested a few levels deeper than it was
sent (a task's arguments sit inside its payload, inside a task view). A value accepted
at submit must stay readable everywhere it is served, so values are held to MAX_DEPTH,
far under msgspec's limit.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

MAX_DEPTH: Final = 100
"""Deepest nesting accepted in a task's arguments, a result or an event."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def depth(data: bytes) -> int:
    """How deep this JSON nests (0 for a scalar). Strings are cut out first, so their
    brackets do not count; the rest runs in C (a regex, translate, accumulate)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def within_depth(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Is this JSON nested at most `limit` deep? The count of opening brackets bounds the
    depth, so the usual value is answered without a scan."""
    if len(data) <= 2 * limit or data.count(b"[") + data.count(b"{") <= limit:
        return True
    return depth(data) <= limit
