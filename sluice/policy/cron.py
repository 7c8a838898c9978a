"""Cron: which fire times are due, and which missed ones to run (ALGORITHMS.md §7.2).

Pure: times in and out are epoch seconds, the caller passes "now". Expressions are
croniter's (five fields, or six with seconds first), evaluated in the schedule's IANA
time zone, with two daylight-saving rules:

- a local time that does not exist (the skipped hour in spring) does not fire: a daily
  job at 02:30 skips the day the clocks jump from 02:00 to 03:00;
- a local time that happens twice (the repeated hour in autumn) fires once, at its
  first occurrence: a job at 02:30 runs at 02:30 summer time, not again an hour later.

Missed fires (the timers were down) are caught up by the schedule's `catchup` policy:
"all" runs every missed fire no older than `max_catchup_s`; "latest" runs only the most
recent such fire; "none" runs only a fire that is on time (`ON_TIME_S`). The others are
skipped and counted.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Final, Literal

import msgspec
from croniter import CroniterBadDateError, croniter

Catchup = Literal["all", "latest", "none"]
CATCHUP: Final = ("all", "latest", "none")
ON_TIME_S: Final = 5.0  # a fire this late still counts as on time (a slow tick)
MAX_FIRES: Final = 10_000  # most fire times looked at in one plan


class Plan(msgspec.Struct, frozen=True):
    fire: list[float]  # fire times to run now, oldest first
    skipped: int  # missed fire times not run
    last: float  # the newest fire time considered (run or skipped): the next plan starts after
    next_at: float | None  # the first fire time after now, None if there is none


NEVER_S: Final = 10 * 366 * 86400.0  # an expression with no fire time this far ahead never fires


def valid_expression(expr: str) -> bool:
    """Five fields, or six with seconds first, that croniter reads."""
    if len(expr.split()) not in (5, 6):
        return False  # croniter would also take a seventh field (years)
    try:
        return bool(croniter.is_valid(expr, second_at_beginning=_has_seconds(expr)))
    except (ValueError, KeyError, IndexError, OverflowError):
        return False


def ever_fires(expr: str, tz: str, after: float) -> bool:
    """Whether a valid expression has a fire time in the next ten years (February 30th
    has none; a leap day does)."""
    return bool(fire_times(expr, tz, after, after + NEVER_S, 1))


# Names the zone database lists that are not zones: the machine's own setting (the same
# schedule would fire at other times on another server) and tzdata's build rule file.
_NOT_ZONES = frozenset({"localtime", "posixrules"})


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def valid_timezone(name: str) -> bool:
    """An IANA zone the zone database holds. Looked up in its list, never opened as a
    path first: "Europe" is a directory and a 10,000-character name is an OSError."""
    return name == "UTC" or name in _zones()


def fire_times(
    expr: str, tz: str, after: float, until: float, limit: int = MAX_FIRES
) -> list[float]:
    """Fire times in (after, until], in order, by the daylight-saving rules above."""
    zone = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.fromtimestamp(after, zone)
    previous_local = start.replace(tzinfo=None)
    times = croniter(expr, start, second_at_beginning=_has_seconds(expr))
    out: list[float] = []
    while len(out) < limit:
        try:
            moment: dt.datetime = times.get_next(dt.datetime)
        except CroniterBadDateError:
            break  # never matches again (February 30th)
        at = moment.timestamp()
        if at > until:
            break
        local = moment.replace(tzinfo=None)
        if local <= previous_local:
            continue  # the repeated hour: this wall-clock time already fired
        previous_local = local
        if not croniter.match(expr, local, second_at_beginning=_has_seconds(expr)):
            continue  # croniter moved a time that does not exist (spring) forward
        out.append(at)
    return out


def plan(
    expr: str,
    tz: str,
    last: float,
    now: float,
    catchup: Catchup = "all",
    max_catchup_s: float = 600.0,
) -> Plan:
    """What to fire at `now`, given that every fire time up to `last` was dealt with."""
    due = fire_times(expr, tz, last, now)
    if catchup == "all":
        fire = [t for t in due if now - t <= max_catchup_s]
    elif catchup == "latest":
        fire = [due[-1]] if due and now - due[-1] <= max_catchup_s else []
    else:
        fire = [due[-1]] if due and now - due[-1] <= ON_TIME_S else []
    upcoming = fire_times(expr, tz, max(now, due[-1] if due else last), float("inf"), 1)
    return Plan(
        fire=fire,
        skipped=len(due) - len(fire),
        last=due[-1] if due else last,
        next_at=upcoming[0] if upcoming else None,
    )


def _has_seconds(expr: str) -> bool:
    return len(expr.split()) == 6
