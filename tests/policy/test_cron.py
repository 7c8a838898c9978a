"""Cron planning: fire lists from frozen times, the daylight-saving rules (Europe/Berlin,
2017), and the catch-up policies after downtime."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from croniter import croniter_range
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.policy.cron import fire_times, plan, valid_expression, valid_timezone

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()


def berlin(*args: int) -> float:
    return dt.datetime(*args, tzinfo=BERLIN).timestamp()


def local(at: float) -> str:
    return dt.datetime.fromtimestamp(at, BERLIN).isoformat()


def test_every_minute_fires_on_each_minute_after_the_start_up_to_now() -> None:
    fires = fire_times("* * * * *", "UTC", T0 + 1, T0 + 300)

    assert fires == [T0 + 60 * i for i in range(1, 6)]


def test_a_seconds_field_first_is_understood() -> None:
    assert fire_times("*/10 * * * * *", "UTC", T0, T0 + 30) == [T0 + 10, T0 + 20, T0 + 30]


def test_a_daily_time_that_does_not_exist_in_spring_does_not_fire_that_day() -> None:
    fires = fire_times("30 2 * * *", "Europe/Berlin", berlin(2017, 3, 25), berlin(2017, 3, 28))

    assert [local(t) for t in fires] == [
        "2017-03-25T02:30:00+01:00",
        "2017-03-27T02:30:00+02:00",
    ]


def test_a_daily_time_that_happens_twice_in_autumn_fires_once_at_the_first() -> None:
    fires = fire_times("30 2 * * *", "Europe/Berlin", berlin(2017, 10, 28), berlin(2017, 10, 31))

    assert [local(t) for t in fires] == [
        "2017-10-28T02:30:00+02:00",
        "2017-10-29T02:30:00+02:00",
        "2017-10-30T02:30:00+01:00",
    ]


def test_an_hourly_job_skips_the_repeated_wall_clock_hour_even_across_plans() -> None:
    start = berlin(2017, 10, 29, 1, 0)
    first = fire_times("30 * * * *", "Europe/Berlin", start, start + 2 * 3600)
    # The next plan starts after the last fire; the repeated 02:30 must not fire.
    rest = fire_times("30 * * * *", "Europe/Berlin", first[-1], start + 4 * 3600)

    assert [local(t) for t in first + rest] == [
        "2017-10-29T01:30:00+02:00",
        "2017-10-29T02:30:00+02:00",
        "2017-10-29T03:30:00+01:00",
    ]


def test_on_time_fires_run_and_the_next_fire_is_known() -> None:
    p = plan("* * * * *", "UTC", T0, T0 + 60.5)

    assert (p.fire, p.skipped, p.last, p.next_at) == ([T0 + 60], 0, T0 + 60, T0 + 120)


def test_after_five_minutes_down_every_missed_fire_runs() -> None:
    p = plan("* * * * *", "UTC", T0, T0 + 300, "all", 600)

    assert (len(p.fire), p.skipped) == (5, 0)


def test_after_an_hour_down_only_fires_within_the_limit_run_and_the_rest_are_counted() -> None:
    p = plan("* * * * *", "UTC", T0, T0 + 3600, "all", 600)

    assert p.fire == [T0 + 60 * i for i in range(50, 61)]
    assert p.skipped == 49
    assert p.last == T0 + 3600


def test_latest_runs_only_the_newest_missed_fire() -> None:
    p = plan("* * * * *", "UTC", T0, T0 + 3600, "latest", 600)

    assert (p.fire, p.skipped) == ([T0 + 3600], 59)


def test_none_runs_only_an_on_time_fire() -> None:
    late = plan("* * * * *", "UTC", T0, T0 + 3630, "none", 600)
    on_time = plan("* * * * *", "UTC", T0, T0 + 3602, "none", 600)

    assert (late.fire, late.skipped) == ([], 60)
    assert (on_time.fire, on_time.skipped) == ([T0 + 3600], 59)


def test_an_expression_that_never_matches_again_has_no_next_fire() -> None:
    assert plan("0 0 30 2 *", "UTC", T0, T0 + 1).next_at is None


def test_expressions_and_time_zones_are_validated() -> None:
    assert valid_expression("*/5 * * * *") and valid_expression("0 */10 * * * *")
    assert not valid_expression("61 * * * *") and not valid_expression("every minute")
    assert valid_timezone("Europe/Berlin") and not valid_timezone("Mars/Olympus")
    # Listed by the zone database, but the server's own setting: not one zone everywhere.
    assert not valid_timezone("localtime") and not valid_timezone("posixrules")


@settings(max_examples=60, deadline=None)  # croniter walks up to a few hundred fires
@given(
    minute=st.sampled_from(["*", "*/7", "0", "15,45"]),
    hour=st.sampled_from(["*", "*/3", "9-17"]),
    offset=st.integers(min_value=0, max_value=86_400 * 30),
    span=st.integers(min_value=0, max_value=6 * 3600),
)
def test_utc_plans_account_for_every_fire_of_croniter_range(
    minute: str, hour: str, offset: int, span: int
) -> None:
    expr = f"{minute} {hour} * * *"
    last, now = T0 + offset, T0 + offset + span
    expected = [
        t.timestamp()
        for t in croniter_range(
            dt.datetime.fromtimestamp(last, UTC), dt.datetime.fromtimestamp(now, UTC), expr
        )
        if t.timestamp() > last
    ]

    p = plan(expr, "UTC", last, now, "all", 600)

    assert p.fire == [t for t in expected if now - t <= 600]
    assert len(p.fire) + p.skipped == len(expected)
    assert p.fire == sorted(set(p.fire))
    assert p.next_at is None or p.next_at > now
