"""When a worker runs a plain (sync) function on its event loop instead of in a thread.

A thread costs each call a hand-off to the pool and back (about 0.15 ms of the worker's
CPU per call on this project's 2-core VM, more than a no-op handler itself), which
halved the drain of plain no-op handlers against `async def` ones. A call that takes
less than a hand-off is cheaper on the loop, and blocks it for less than the hand-off
would have cost. So a function runs inline once `promote_after` of its calls in a
thread took under `below_s` with none over `slow_s` since (a call between the two, a
thread's wait for the GIL say, neither counts nor resets), and goes back to threads for
good (in this process) the first time an inline call takes over `slow_s`: the loop is
blocked past `slow_s` at most once per function, for that one call. Functions that do
I/O (an email, an HTTP call) take milliseconds and never qualify.

Pure: the caller measures each call and passes the seconds in.
"""

from __future__ import annotations

from dataclasses import dataclass

BELOW_S = 0.0005  # a call this short costs less than the thread hand-off
PROMOTE_AFTER = 50  # consecutive short calls in a thread before running inline
SLOW_S = 0.002  # an inline call longer than this sends the function back to threads


@dataclass
class Inline:
    below_s: float = BELOW_S
    promote_after: int = PROMOTE_AFTER
    slow_s: float = SLOW_S
    inline: bool = False  # run the next call on the loop
    demoted: bool = False  # an inline call was slow: threads from now on
    _short: int = 0  # short calls in a thread since the last slow one

    def ran(self, seconds: float) -> None:
        """A call of the function took `seconds` (inline or in a thread, as `inline` said)."""
        if self.inline:
            if seconds > self.slow_s:
                self.inline, self.demoted = False, True
            return
        if seconds > self.slow_s:
            self._short = 0
        elif seconds < self.below_s:
            self._short += 1
        if self._short >= self.promote_after and not self.demoted:
            self.inline = True
