"""Adaptive concurrency against a downstream of unknown capacity: windowed, loss-based
AIMD per target (DESIGN §6 "Adaptive dispatch", ALGORITHMS.md §1.2).

Each target (an HTTP endpoint, a worker function pool) has a limit L on tasks in flight.
Results are counted per window (clamp(2 * p50 latency, 1 s, 30 s)):

- L * 0.7 (never below 1) as soon as the window's flow-control answers (429, 503 with
  Retry-After, a worker's "throttled" or "busy") are at least 5 *and* at least 10 % of
  its answers: both thresholds, so neither 1 of 2 nor 5 of 10,000 cuts. A cut starts a
  new window, so there is at most one per window; answers to tasks sent before a cut
  are not held against the new L (the epoch rule of NewReno), and the window after a
  cut only watches.
- L + 1 (never above `max_concurrency`) when there is backlog, the peak in flight
  reached L/2 (no growth while the caller, not the target, is the limit) and at least
  one answer was a success.

Plain errors and timeouts never cut L: they are retries' business. A Retry-After pauses
the whole target, capped at 5 minutes. Pure: the caller passes the time in; no clock,
no randomness.
"""

from __future__ import annotations

import math

L_INIT = 10.0
L_MIN = 1.0
L_MAX = 1000.0
INCREASE = 1.0
BETA = 0.7
N_MIN = 5
R_MIN = 0.10
W_MIN_S = 1.0
W_MAX_S = 30.0
MAX_PAUSE_S = 300.0
LATENCY_EWMA = 0.2  # weight of a new latency sample in the p50 estimate

OK = "ok"
THROTTLED = "throttled"
ERROR = "error"


class Aimd:
    def __init__(
        self,
        now: float,
        initial: float = L_INIT,
        maximum: float | None = None,
        minimum: float = L_MIN,
    ) -> None:
        self.maximum = L_MAX if maximum is None else max(minimum, float(maximum))
        self.minimum = minimum
        self.limit = min(self.maximum, max(minimum, initial))
        self.epoch = 0
        self.inflight = 0
        self.paused_until = 0.0
        self.latency_s: float | None = None  # EWMA of answer latency, a p50 estimate
        self.window_start = now
        self.cuts = 0
        self._ok = self._throttled = self._errors = 0
        self._peak = 0
        self._hold = False

    # -- what the dispatcher asks ------------------------------------------------
    def room(self, now: float) -> int:
        """How many more tasks may be sent now."""
        if now < self.paused_until:
            return 0
        return max(0, math.floor(self.limit) - self.inflight)

    @property
    def window_s(self) -> float:
        p50 = self.latency_s if self.latency_s is not None else 0.0
        return min(W_MAX_S, max(W_MIN_S, 2 * p50))

    # -- what happens --------------------------------------------------------------
    def sent(self, n: int = 1) -> int:
        """`n` tasks went out; returns the epoch to hand back with their answers."""
        self.inflight += n
        self._peak = max(self._peak, self.inflight)
        return self.epoch

    def answered(
        self,
        kind: str,
        epoch: int,
        now: float,
        latency_s: float | None = None,
        retry_after_s: float | None = None,
    ) -> bool:
        """One answer: OK, THROTTLED (a flow-control signal) or ERROR (anything else).
        True if it cut L."""
        self.inflight = max(0, self.inflight - 1)
        if latency_s is not None and latency_s >= 0:
            if self.latency_s is None:
                self.latency_s = latency_s
            else:
                self.latency_s += LATENCY_EWMA * (latency_s - self.latency_s)
        if retry_after_s is not None and retry_after_s > 0:
            self.paused_until = max(self.paused_until, now + min(retry_after_s, MAX_PAUSE_S))
        if kind == OK:
            self._ok += 1
        elif kind == THROTTLED:
            if epoch < self.epoch:
                return False  # sent under the L before the last cut: already paid for
            self._throttled += 1
            answers = self._ok + self._throttled + self._errors
            if self._throttled >= N_MIN and self._throttled >= R_MIN * answers:
                # Cut at once, not at the window's end: against a target that answers 429
                # in a millisecond, waiting would let the extra slots spin on refusals.
                self._cut(now)
                return True
        else:
            self._errors += 1
        return False

    def tick(self, now: float, backlog: bool) -> bool:
        """Close the window if its time has come; True if it closed."""
        if now - self.window_start < self.window_s:
            return False
        if self._hold:
            self._hold = False  # the window after a cut only watches
        elif backlog and self._peak >= self.limit / 2 and self._ok >= 1:
            self.limit = min(self.maximum, self.limit + INCREASE)
        self._reset(now)
        return True

    def _cut(self, now: float) -> None:
        """Multiplicative decrease; the window starts again, so at most one per window."""
        self.limit = max(self.minimum, math.floor(self.limit * BETA))
        self.epoch += 1
        self.cuts += 1
        self._hold = True
        self._reset(now)

    def _reset(self, now: float) -> None:
        self.window_start = now
        self._ok = self._throttled = self._errors = 0
        self._peak = self.inflight

    def cap(self, maximum: float | None) -> None:
        """A new `max_concurrency` for the target (None: the default ceiling)."""
        self.maximum = L_MAX if maximum is None else max(self.minimum, float(maximum))
        self.limit = min(self.limit, self.maximum)
