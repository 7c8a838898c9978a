"""How many worker processes a supervisor runs for a load (DESIGN §7 "Execution",
OBSERVABILITY.md §5).

The load is the server's scaling signal for the functions the supervisor serves:
dispatchable ready tasks + running tasks + tasks due within a few seconds. One process
holds `slots` of it, so the processes wanted now are ceil(load / slots), within
[minimum, maximum].

- Up at once: a burst is served as soon as it is seen.
- Down only after the wish to go down has lasted `down_after_s`, and then to the
  largest number wanted over that window (the HPA's stabilisation window). A load that
  rises and falls faster than the window never stops a process, so nothing flaps: a
  process is stopped at most once per window, and never one that the last window wanted.
- A process that is stopped drains (its running tasks finish, it takes no new ones), so
  a wrong guess down costs a start, never a task.

Pure: the caller passes the time in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

DOWN_AFTER_S = 10.0  # how long fewer processes must be wanted before any is stopped


@dataclass
class Autoscale:
    minimum: int
    maximum: int
    slots: int
    down_after_s: float = DOWN_AFTER_S
    # (time, processes wanted then), oldest first, for the last down_after_s.
    _wanted: deque[tuple[float, int]] = field(default_factory=deque)
    _since: float | None = None  # the first decision: no window is whole before it

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum or self.maximum < 1:
            raise ValueError("autoscale wants 0 <= MIN <= MAX and MAX >= 1")
        if self.slots < 1:
            raise ValueError("a process holds at least one slot")

    def wanted(self, load: float) -> int:
        """Processes that would hold `load` now, within the bounds."""
        need = math.ceil(max(0.0, load) / self.slots)
        return max(self.minimum, min(self.maximum, need))

    def decide(self, now: float, load: float, current: int) -> int:
        """How many processes to run from now on, given `current` running (draining
        ones not counted)."""
        want = self.wanted(load)
        if self._since is None:
            self._since = now
        self._wanted.append((now, want))
        while self._wanted[0][0] < now - self.down_after_s:
            self._wanted.popleft()
        if want >= current:
            return want
        if now - self._since < self.down_after_s:
            return current  # not watched for a whole window yet
        return min(current, max(n for _, n in self._wanted))
