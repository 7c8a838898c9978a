"""When a worker runs a plain (sync) function on its event loop instead of in a thread.

A thread costs each call a hand-off to the pool and back (about 0.15 ms of the worker's
CPU per call on this project's 2-core VM, more than a no-op handler itself), which
halved the drain of plain no-op handlers against `async def` ones. A call that takes
less than a hand-off is cheaper on the loop, and blocks it for less than the hand-off
would have cost. So a function runs inline once `promote_after` of its calls in a
thread used under `below_s` of CPU within `wall_s` of wall time, with none past
`wall_s` since, and goes back to threads for good (in this process) the first time an
inline call takes over `slow_s` while its thread waited (I/O, a lock, a sleep) or
computed: the loop is blocked past `slow_s` at most once per function, for that one
call (the OS preempting the process mid-call, common on a busy machine, does not
count). A call in a thread is judged by its CPU time because its wall time includes
waits for the GIL, which in a busy worker reach the 5 ms switch interval; `wall_s`
leaves those in and keeps out calls that wait on the network.
Functions that do real I/O (an email, an HTTP call) take milliseconds and never qualify.

Pure: the caller measures each call and passes the seconds in.
"""

from __future__ import annotations

from dataclasses import dataclass

BELOW_S = 0.0005  # a call using less CPU than this costs less than the thread hand-off
WALL_S = 0.01  # ... if it took no longer than this (a GIL wait fits, a network call not)
PROMOTE_AFTER = 50  # short calls in a thread, none past WALL_S between, before inline
SLOW_S = 0.002  # an inline call longer than this sends the function back to threads


@dataclass
class Inline:
    below_s: float = BELOW_S
    wall_s: float = WALL_S
    promote_after: int = PROMOTE_AFTER
    slow_s: float = SLOW_S
    inline: bool = False  # run the next call on the loop
    demoted: bool = False  # an inline call was slow: threads from now on
    _short: int = 0  # short calls in a thread since the last one past wall_s

    def ran(self, seconds: float, cpu_s: float | None = None, blocked: bool = True) -> None:
        """A call of the function took `seconds` of wall time (inline or in a thread, as
        `inline` said) and `cpu_s` of its thread's CPU (None: the same). `blocked`: an
        inline call's thread waited (on I/O, a lock, a sleep) rather than only being
        preempted by the OS, which on a busy machine stretches a short call's wall time
        without blocking the loop any longer than any other code would."""
        if self.inline:
            cpu = seconds if cpu_s is None else cpu_s
            if cpu > self.slow_s or (blocked and seconds > self.slow_s):
                self.inline, self.demoted = False, True
            return
        if seconds > self.wall_s:
            self._short = 0
        elif (seconds if cpu_s is None else cpu_s) < self.below_s:
            self._short += 1
        if self._short >= self.promote_after and not self.demoted:
            self.inline = True
