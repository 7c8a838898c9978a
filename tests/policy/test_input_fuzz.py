"""Hypothesis over the text and JSON a tenant writes: selectors, list queries, cron
expressions and time zones.

Pure properties first: the cron and zone checks never raise, whatever the string; an
expression and a zone they accept can always be planned (the timers' tick never meets
one it cannot); a zone name outside the zone database is never opened as a file; any
JSON as a bulk or pause selector decodes or is refused with a client error. Then the
same inputs against a live server on both backends: every answer is a 2xx, or a 4xx in
the error format; never a 5xx, and the server still answers afterwards. Last, what the
fuzzers found, kept as tests: a NUL character in a string (PostgreSQL), and a stored
schedule the tick cannot plan.

Every property is derandomized and bounded in examples, so a run sends the same inputs
and takes a few seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import threading
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from croniter import croniter
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import sluice
from sluice.api.route import decode, decoder
from sluice.contract import PauseBody, SelectorBody
from sluice.errors import ClientError
from sluice.model import FUNCTION_NAME, STATES
from sluice.policy import cron
from tests.harness import Running, running_server

app = sluice.App("inputs")


@app.task
def echo(x: object = None) -> object:
    return x


def bounded(examples: int, shrink: bool = True) -> settings:
    """Derandomized and bounded; against a server, a failing case is reported as found
    (no shrinking), so a failing run takes no longer than a passing one."""
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=False,
    )


# Europe's clocks jump forward at 01:00 UTC that day: the windows planned hold the jump,
# and are short, as an expression with seconds may fire every second.
JUMP = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC).timestamp()
WINDOW_S = {5: 6 * 3600.0, 6: 120.0}  # by the expression's number of fields

# -- strategies -------------------------------------------------------------------------

# Cron fields built from croniter's grammar, mostly in range, sometimes not: random text
# is almost never an expression, and what matters is what the validator lets through.
FIELD_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
CRON_WORDS = ["jan", "feb", "dec", "JAN-DEC/2", "mon", "sun", "MON-FRI", "sat", "L", "W",
              "LW", "?", "H", "H/5", "5L", "15W", "31W", "1-L", "L-2", "mon#2", "5#5",
              "7#1", "0#0", "@daily", "%", "*/0"]  # fmt: skip


def cron_field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    regular = st.one_of(
        st.just("*"),
        number.map(str),
        st.builds(lambda a, b: f"{min(a, b)}-{max(a, b)}", number, number),
        st.builds(lambda a, b: f"{a}/{b}", st.just("*") | number.map(str), st.integers(1, 30)),
    )
    odd = st.one_of(
        st.sampled_from(CRON_WORDS),
        st.integers(-1, 99).map(str),  # out of range, often
        st.builds(lambda a, b: f"{a}-{b}", number, number),  # reversed, often
        st.builds(lambda a: f"*/{a}", st.integers(0, 99)),
    )
    part = st.one_of(regular, regular, regular, regular, regular, odd)
    return st.lists(part, min_size=1, max_size=2).map(",".join)


FIVE = st.tuples(*(cron_field(low, high) for low, high in FIELD_RANGES)).map(" ".join)
SIX = st.tuples(cron_field(0, 59), FIVE).map(" ".join)  # seconds first
CRON_LIKE = FIVE | SIX
CRONS = st.one_of(
    FIVE,
    SIX,
    st.tuples(FIVE, cron_field(1970, 2099)).map(" ".join),  # years last: refused
    st.text(max_size=40),
    st.text(alphabet="0123456789*/,-?#LWH \t\n", max_size=30),
    st.sampled_from(["0 0 31 2 *", "0 0 30 2 *", "0 0 29 2 *", "30 2 * * *", "* * * * * *"]),
)
# What the zone database lists, but the machine's own setting and tzdata's rule file,
# which name no one zone (the same schedule would fire at other times elsewhere).
ZONE_SET = frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}
ZONE_NAMES = sorted(ZONE_SET)
ODD_ZONES = ["Europe", "America", "Etc", "UTC", "utc", "Europe/", "/etc/passwd", "Factory",
             "../../../../etc/passwd", "Europe/../UTC", "Europe//Berlin", "posixrules",
             "localtime", "zone.tab", "tzdata.zi", "Europe/Berlin\x00", "x" * 10_000]  # fmt: skip
ZONES = st.one_of(
    st.sampled_from(ZONE_NAMES),
    st.text(max_size=30),
    st.text(alphabet="abcEurope/._-+0123456789", max_size=40),
    st.sampled_from(ODD_ZONES),
)
# JSON values, selector-shaped ones among them; json.dumps writes NaN and Infinity as
# bare words, which no JSON parser takes (a malformed body).
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-20, 20),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "\x00", "ready", "echo", "9", "1e400", "\ud800", "\u0663"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Text that is valid where a string is: any characters, the troublesome ones often.
TROUBLE = ["\x00", "a\x00b", "\u202e", "%", "_", "'", "\\", "\ud7ff", "\U0010ffff"]
WORDS = st.text(min_size=1, max_size=40) | st.sampled_from(TROUBLE)
FUNCTIONS = st.sampled_from(["echo", "nope"]) | st.from_regex(FUNCTION_NAME)
TIMES = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63)
# A selector the schema allows, whatever its strings hold, so it reaches the store.
VALID_SELECTOR_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "function": st.lists(FUNCTIONS, min_size=1, max_size=3),
    "state": st.lists(st.sampled_from(STATES), min_size=1, max_size=3),
    "tags": st.lists(WORDS, min_size=1, max_size=3),
    "priority_min": st.integers(0, 9),
    "priority_max": st.integers(0, 9),
    "created_after": TIMES,
    "created_before": TIMES,
    "key": WORDS,
}
VALID_SELECTORS = st.fixed_dictionaries({}, optional=VALID_SELECTOR_VALUES)
# And one that breaks it somewhere: a wrong type, a value out of range, an unknown field.
BREAKS = st.dictionaries(st.sampled_from([*VALID_SELECTOR_VALUES, "unknown"]), JSON, min_size=1)
ODD_SELECTORS = st.builds(lambda valid, odd: {**valid, **odd}, VALID_SELECTORS, BREAKS)


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


SELECTOR_BODIES = st.one_of(
    VALID_SELECTORS.map(lambda s: json.dumps({"selector": s})),
    VALID_SELECTORS.map(lambda s: json.dumps({"selector": s})),
    ODD_SELECTORS.map(lambda s: json.dumps({"selector": s})),
    JSON.map(lambda s: json.dumps({"selector": s})),
    JSON.map(json.dumps),  # not even an object with a selector
    st.integers(95, 110).map(lambda d: json.dumps({"selector": {"key": nested(d)}})),
    st.text(max_size=30),  # not JSON at all
)

# -- pure: cron and time zones ----------------------------------------------------------


@bounded(500)
@given(st.text() | CRONS)
def test_the_cron_check_never_raises_and_takes_five_or_six_fields(expr: str) -> None:
    valid = cron.valid_expression(expr)
    assert isinstance(valid, bool)
    if valid:
        assert len(expr.split()) in (5, 6)


PLANNED_ZONES = ["UTC", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"]


YEARS_2000_2100 = st.floats(946_684_800.0, 4_102_444_800.0)


@bounded(150)
@given(CRON_LIKE, st.sampled_from(PLANNED_ZONES), st.just(JUMP) | YEARS_2000_2100)
def test_an_expression_the_check_accepts_can_always_be_planned(
    expr: str, zone: str, at: float
) -> None:
    """The tick plans every stored schedule at any time: an accepted expression must never
    make it raise, and the fire times it gives are in order, in the window, and match."""
    if not cron.valid_expression(expr):
        return
    fields = len(expr.split())
    after, until = at - WINDOW_S[fields] / 2, at + WINDOW_S[fields] / 2
    cron.ever_fires(expr, zone, after)
    fires = cron.fire_times(expr, zone, after, until)
    assert fires == sorted(set(fires))
    assert all(after < t <= until for t in fires)
    for t in fires:
        local = dt.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)
        assert croniter.match(expr, local, second_at_beginning=fields == 6), (expr, local)
    plan = cron.plan(expr, zone, after, until, "all", 600.0)
    assert plan.fire == [t for t in fires if until - t <= 600.0]
    assert plan.next_at is None or plan.next_at > until


# Audited file-system events, recorded only for the thread that asks (the live-server
# tests run other threads in the same process). Audit hooks cannot be removed, so this
# one is added once, and does nothing while no thread is recording.
FS_EVENTS = {"open", "os.listdir", "os.scandir", "os.walk", "glob.glob", "shutil.copyfile"}
_recording: dict[int, list[str]] = {}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording and event in FS_EVENTS:
        seen = _recording.get(threading.get_ident())
        if seen is not None:
            seen.append(f"{event} {args[0]!r}"[:200])


sys.addaudithook(_audit)


def files_touched(call: Callable[[], object]) -> list[str]:
    seen: list[str] = []
    _recording[threading.get_ident()] = seen
    try:
        call()
    finally:
        del _recording[threading.get_ident()]
    return seen


@bounded(400)
@given(ZONES | st.text())
def test_a_zone_name_outside_the_database_is_never_opened(name: str) -> None:
    cron.valid_timezone("Not/A_Zone")  # the database's list is read once per process
    valid: list[bool] = []
    touched = files_touched(lambda: valid.append(cron.valid_timezone(name)))
    assert valid == [name == "UTC" or name in ZONE_SET]
    if not valid[0]:
        assert touched == [], f"{name[:80]!r} touched {touched}"


@bounded(300)
@given(ZONES)
def test_a_zone_the_check_accepts_loads_and_plans(name: str) -> None:
    if cron.valid_timezone(name):
        zoneinfo.ZoneInfo(name)
        assert cron.ever_fires("30 2 * * *", name, JUMP)
        cron.plan("*/15 * * * *", name, JUMP - 3600, JUMP + 3600)


# -- pure: selectors --------------------------------------------------------------------


SELECTOR_BODY, PAUSE_BODY = decoder(SelectorBody), decoder(PauseBody)  # as the API reads them


def decoded_or_refused(read: Callable[[], Any]) -> Any:
    """What the API does with a body: the value, or None for a client error (4xx)."""
    try:
        return read()
    except ClientError as exc:
        assert 400 <= exc.status < 500 and exc.code and exc.message
        return None


@bounded(500)
@given(SELECTOR_BODIES)
def test_any_json_as_a_bulk_selector_decodes_or_is_a_client_error(body: str) -> None:
    data = body.encode("utf-8", "surrogatepass")
    parsed = decoded_or_refused(lambda: decode(SELECTOR_BODY, data))
    if parsed is not None:
        decoded_or_refused(parsed.selector.validate)


@bounded(300)
@given(SELECTOR_BODIES)
def test_any_json_as_a_pause_selector_decodes_or_is_a_client_error(body: str) -> None:
    data = body.encode("utf-8", "surrogatepass")
    parsed = decoded_or_refused(lambda: decode(PAUSE_BODY, data))
    if parsed is not None:
        decoded_or_refused(parsed.selector.selector)


# -- live: the same inputs over HTTP ----------------------------------------------------

BACKENDS = ["sqlite", "postgres"]
LIVE_EXAMPLES = 200


def assert_answered(response: httpx.Response) -> None:
    """A 2xx, or a 4xx in the one error format; never a 5xx."""
    status, request = response.status_code, response.request
    sent = f"{request.method} {request.url} {request.content[:300]!r}"
    assert 200 <= status < 300 or 400 <= status < 500, f"{sent}: {status} {response.text[:300]}"
    if status >= 400:
        error = response.json()["error"]
        assert error["status"] == status, response.text
        assert isinstance(error["code"], str) and error["code"], response.text
        assert isinstance(error["message"], str) and error["message"], response.text


async def hypothesize(
    server: Running, strategy: st.SearchStrategy[Any], check: Callable[[httpx.Client, Any], None]
) -> None:
    """Run `check` on generated examples against the live server, in a worker thread (the
    server runs in this event loop), then show that the server still answers."""

    def run() -> None:
        headers = {"authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:

            @bounded(LIVE_EXAMPLES, shrink=False)
            @given(strategy)
            def each(example: Any) -> None:
                check(http, example)

            each()

    await asyncio.to_thread(run)
    async with httpx.AsyncClient(base_url=server.url) as http:
        headers = {"authorization": f"Bearer {server.api_key}"}
        assert (await http.get("/v1/health")).status_code == 200
        submitted = await http.post("/v1/tasks", json={"function": "echo"}, headers=headers)
        assert submitted.status_code == 201, submitted.text


SEEDS = [
    {"function": "echo", "delay": 3600, "tags": ["a"]},
    {"function": "echo", "key": "k1", "priority": 9},
    {"function": "echo"},
]


async def seed(server: Running) -> None:
    """A few tasks for the selectors to match: waiting, ready, keyed, tagged."""
    headers = {"authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        for spec in SEEDS:
            assert (await http.post("/v1/tasks", json=spec)).status_code == 201


@pytest.mark.parametrize("backend", BACKENDS)
async def test_any_json_selector_is_answered_2xx_or_4xx(tmp_path: Path, backend: str) -> None:
    verbs = st.sampled_from(["/v1/tasks/cancel", "/v1/tasks/delete", "/v1/tasks/retry",
                             "/v1/pauses"])  # fmt: skip

    def check(http: httpx.Client, example: tuple[str, str]) -> None:
        path, body = example
        data = body.encode("utf-8", "surrogatepass")
        response = http.post(path, content=data, headers={"content-type": "application/json"})
        assert_answered(response)
        if path == "/v1/pauses" and response.status_code == 201:  # lift it again
            assert_answered(http.delete(f"/v1/pauses/{response.json()['id']}"))

    async with running_server(tmp_path, app, backend) as server:
        await seed(server)
        await hypothesize(server, st.tuples(verbs, SELECTOR_BODIES), check)


QUERY_NAMES = ["function", "state", "tag", "priority_min", "priority_max", "created_after",
               "created_before", "key", "cursor", "limit", "since", "until", "after"]  # fmt: skip
ODD_NUMBERS = ["inf", "-inf", "nan", "1e400", "-0", "1e-400", "0x10", "1_0", "\uff15", "\u0663",
               "9.5", "10", "-1", "1000", "1001", "ready", "echo", "\x00", "", " 5 "]  # fmt: skip
QUERY_VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(ODD_NUMBERS),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),
)
QUERY_PAIRS = st.one_of(
    st.tuples(st.sampled_from(QUERY_NAMES), QUERY_VALUES | WORDS),
    st.tuples(st.sampled_from(["key", "tag", "cursor", "after"]), WORDS),  # free text
    st.tuples(st.text(max_size=6), QUERY_VALUES),
)
QUERIES = st.one_of(
    st.lists(QUERY_PAIRS, max_size=6).map(urlencode),
    # Raw, so its escapes may be broken ("%zz", "%", "%00"); httpx encodes the spaces.
    st.text(alphabet="abcdeflmnoprstuy_=&%;+0123456789.-xz ", max_size=60),
)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_any_query_on_a_list_is_answered_2xx_or_4xx(tmp_path: Path, backend: str) -> None:
    paths = st.sampled_from(["/v1/tasks", "/v1/dead", "/v1/functions"])

    def check(http: httpx.Client, example: tuple[str, str]) -> None:
        path, query = example
        assert_answered(http.get(f"{path}?{query}"))

    async with running_server(tmp_path, app, backend) as server:
        await seed(server)
        await hypothesize(server, st.tuples(paths, QUERIES), check)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_any_cron_and_zone_in_a_schedule_is_answered_2xx_or_4xx(
    tmp_path: Path, backend: str
) -> None:
    """A refused schedule stores nothing; an accepted one has a next fire time (one that
    never fires is refused)."""

    def check(http: httpx.Client, example: tuple[str, str | None]) -> None:
        expr, zone = example
        spec: dict[str, Any] = {"function": "echo", "cron": expr}
        if zone is not None:
            spec["timezone"] = zone
        response = http.put("/v1/schedules/fuzzed", json=spec)
        assert_answered(response)
        if response.status_code == 200:
            assert response.json()["next_fire_at"] is not None, response.text
            assert http.delete("/v1/schedules/fuzzed").status_code == 204
        assert http.get("/v1/schedules").json()["schedules"] == []

    async with running_server(tmp_path, app, backend) as server:
        await hypothesize(server, st.tuples(CRONS, st.none() | ZONES), check)


# -- what the fuzzers found -------------------------------------------------------------

# A NUL character in any string that reaches PostgreSQL: asyncpg refuses it (invalid byte
# sequence for encoding "UTF8": 0x00) and the request ends in a 500. SQLite stores it.
# Found by the selector and query properties above; the same strings in ids and keys.
NUL_REQUESTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/tasks?key=%00", None),
    ("GET", "/v1/tasks?tag=a%00b", None),
    ("GET", "/v1/tasks?cursor=%00", None),
    ("GET", "/v1/dead?after=%00", None),
    ("POST", "/v1/tasks/cancel", {"selector": {"key": "\x00"}}),
    ("POST", "/v1/tasks/retry", {"selector": {"tags": ["\x00"]}}),
    ("POST", "/v1/pauses", {"selector": {"tags": ["\x00"]}}),
    ("POST", "/v1/tasks", {"function": "echo", "key": "\x00"}),
    ("GET", "/v1/tasks/a%00b", None),
    ("DELETE", "/v1/pauses/a%00b", None),
]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_nul_character_in_a_string_is_answered_2xx_or_4xx(
    tmp_path: Path, backend: str
) -> None:
    async with running_server(tmp_path, app, backend) as server:
        headers = {"authorization": f"Bearer {server.api_key}"}
        failed = {}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            for method, path, body in NUL_REQUESTS:
                response = await http.request(method, path, json=body)
                try:
                    assert_answered(response)
                except AssertionError as exc:
                    failed[f"{method} {path} {json.dumps(body)}"] = str(exc)[:120]
            assert (await http.get("/v1/health")).status_code == 200
        assert not failed, json.dumps(failed, indent=1)


# A schedule stored before today's checks (by an older version, or before the zone
# database or croniter changed under it) may hold what the checks now refuse; the tick
# decodes it with the schedule's type, then plans it. Found by asking for the property
# above on any string: `fire_times` raises on a zone the database does not hold and on
# an expression croniter does not read, the tick lets it out, and as the broken
# schedule stays due (first in the due order), no schedule of any tenant fires again.
STORED_CRONS = st.one_of(CRON_LIKE, st.sampled_from(["0 0 31 2 *", "* * * * * *", "H * * * *"]))
STORED_ZONES = st.one_of(
    st.sampled_from(["UTC", "Europe/Berlin", "Europe", "Mars/Olympus", "US/Pacific-New"]),
    st.from_regex(r"\A[A-Za-z0-9_+-]{1,12}(/[A-Za-z0-9_+-]{1,12})?\Z"),
)


async def test_a_stored_schedule_that_cannot_be_planned_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    numbers = iter(range(10**6))

    async def tick_with(example: tuple[str, str]) -> None:
        expr, zone = example
        node, tenant_id, n = server.node, server.tenant_id, next(numbers)
        now = node.clock.now()
        broken = json.dumps({"function": "echo", "cron": expr, "timezone": zone}).encode()
        healthy = json.dumps({"function": "echo", "cron": "* * * * *"}).encode()
        await node.store.put_schedule(tenant_id, f"broken-{n}", broken, now - 3600, now - 7200)
        await node.store.put_schedule(tenant_id, f"healthy-{n}", healthy, now - 60, now - 120)
        try:
            await node.schedules.tick()
            (row,) = await node.store.list_schedules(tenant_id, f"healthy-{n}")
            assert row.fired > 0, f"{expr!r} in {zone!r} kept the healthy schedule from firing"
        finally:
            for name in (f"broken-{n}", f"healthy-{n}"):
                await node.store.delete_schedule(tenant_id, name)

    async with running_server(tmp_path, app) as server:
        loop = asyncio.get_running_loop()

        def run() -> None:
            @bounded(100, shrink=False)
            @given(st.tuples(STORED_CRONS, STORED_ZONES))
            def each(example: tuple[str, str]) -> None:
                asyncio.run_coroutine_threadsafe(tick_with(example), loop).result(timeout=60)

            each()

        await asyncio.to_thread(run)
