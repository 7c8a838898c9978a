"""How many tasks a worker holds ahead of its slots (prefetch), so short tasks do not
wait for the server's round trip.

A worker with S slots and short tasks spends most of a slot's cycle idle: the result
goes up, the dispatcher claims, the next task comes down. Holding tasks ahead hides
that wait. Celery prefetches 4 x concurrency always, which is why its users set
`prefetch_multiplier=1` for long tasks: a prefetched task waits behind an hour-long one
while another worker idles. Here the window is what the slots finish within `cover_s`
at the pace they run now (the bandwidth-delay product of the round trip), so

- a prefetched task waits about `cover_s` for its slot, never behind a long task;
- tasks longer than `cover_s` per slot get no window at all, and a slot busy past
  `cover_s` (a task that turned out long) does not count;
- the window is at most `max_factor` x slots.

Pure: the caller passes the run times and the ages of the running tasks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

COVER_S = 0.005  # the round trip hidden; about how long a prefetched task waits for a slot
MAX_FACTOR = 4  # at most this many tasks ahead per slot (Celery's default multiplier)
ALPHA = 0.2  # weight of the newest run time in the moving mean


@dataclass
class Prefetch:
    slots: int
    cover_s: float = COVER_S
    max_factor: int = MAX_FACTOR
    alpha: float = ALPHA
    mean_s: float | None = None  # moving mean of attempts' run times; None: none ran yet

    def ran(self, seconds: float) -> None:
        """An attempt ran for `seconds` (from its start in a slot to its end)."""
        seconds = max(0.0, seconds)
        if self.mean_s is None:
            self.mean_s = seconds
        else:
            self.mean_s += self.alpha * (seconds - self.mean_s)

    def window(self, ages: Iterable[float]) -> int:
        """Tasks to hold beyond the slots, given how long each running attempt has run.

        Only slots whose task has run less than `cover_s` are turning over; a task that
        already ran longer says the mean no longer holds for its slot."""
        if self.mean_s is None or self.slots <= 0:
            return 0
        turning = self.slots - sum(1 for age in ages if age > self.cover_s)
        if turning <= 0:
            return 0
        cap = self.max_factor * turning
        if self.mean_s * cap <= turning * self.cover_s:  # (a mean near 0 would overflow)
            return cap
        return math.floor(turning * self.cover_s / self.mean_s)
