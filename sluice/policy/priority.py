"""Priority levels with guaranteed floors (DESIGN §6, ALGORITHMS.md §4.2 (a)).

Strict priority, 9 first, except that every backlogged level earns a floor share of
the dispatches (default 2 %), so a flood of urgent work never starves the rest: with
all ten levels backlogged, level 9 gets about 82 % and every other level 2 %; with one
level backlogged it gets everything. Credits: each decision adds `floor` to every
level that may be backlogged (capped at `cap`, so an idle level cannot hoard); a level
whose credit reaches 1 is served next (the richest first) and pays 1; otherwise the
decision goes to the highest backlogged level.

The dispatcher does not know which levels hold work without asking, so a level counts
as possibly backlogged until a claim for it comes back short; then it is empty (and
its credit gone) until `refresh()`, which the dispatcher calls when new ready work
arrives. Pure and deterministic: no clock, no randomness.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

LEVELS = 10
FLOOR = 0.02
CAP = 10.0


class PriorityFloors:
    def __init__(self, floor: float = FLOOR, cap: float = CAP, levels: int = LEVELS) -> None:
        if not 0 <= floor * (levels - 1) < 1:
            raise ValueError("the floors of the lower levels must sum to less than 1")
        self.floor = floor
        self.cap = cap
        self.levels = levels
        self.credit = [0.0] * levels
        self.empty: set[int] = set()

    def plan(self, slots: int) -> list[tuple[int | None, int]]:
        """How to fill `slots`: [(level, n), ...] owed to floors, highest level first,
        then (None, n) for strict priority order."""
        candidates = [p for p in range(self.levels) if p not in self.empty]
        if not candidates:
            return [(None, slots)] if slots else []
        top = max(candidates)
        if all(self.credit[p] + slots * self.floor < 1 for p in candidates if p != top):
            # The hot path: no lower level comes due within these slots.
            for p in candidates:
                self.credit[p] = min(self.cap, self.credit[p] + slots * self.floor)
            self.credit[top] = min(self.credit[top], 1.0)
            return [(None, slots)] if slots else []
        owed: Counter[int] = Counter()
        strict = 0
        for _ in range(slots):
            due = None
            for p in candidates:
                self.credit[p] = min(self.cap, self.credit[p] + self.floor)
                if self.credit[p] >= 1 and (
                    due is None or (self.credit[p], p) > (self.credit[due], due)
                ):
                    due = p
            if due is None:
                strict += 1
            else:
                self.credit[due] -= 1
                if due == top:
                    strict += 1  # the highest level's floor is what strict order gives it
                else:
                    owed[due] += 1
        out: list[tuple[int | None, int]] = [(p, owed[p]) for p in sorted(owed, reverse=True)]
        if strict:
            out.append((None, strict))
        return out

    def claimed(self, level: int | None, asked: int, got: int, top: int | None = None) -> None:
        """What a claim returned. A short level claim means that level is empty; a short
        strict claim means every level is (for these functions). A strict claim also
        shows the highest level holding work (`top`, the first task's priority): every
        level above it is empty."""
        empty: list[int] = []
        if level is None and top is not None:
            empty += range(top + 1, self.levels)
        if got < asked:
            empty += range(self.levels) if level is None else [level]
        for p in empty:
            self.empty.add(p)
            self.credit[p] = 0.0

    def refresh(self, levels: Iterable[int] | None = None) -> None:
        """New ready work arrived at these levels (None: at any level)."""
        if levels is None:
            self.empty.clear()
        else:
            self.empty.difference_update(levels)
