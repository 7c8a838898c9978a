"""Fuzzing the worker protocol: malformed, truncated, oversized, out-of-order and replayed
frames (docs/protocol.md).

Breadth first, in process: Hypothesis writes whole worker sessions, and each is played
through `node.gateway.serve(tenant_id, receive, send)` with in-memory frames (the same
decoder and state machine the websocket route drives) against a real node and store. A
session says hello, is sent its tasks, then sends frames of every kind: results right
and wrong, replays, heartbeats, credits, releases, a second hello, broken bytes. After
each frame, checked:

- the gateway goes on, or stops with one of the errors the websocket route closes with
  4400 (a frame that does not decode, one too deep, one out of order); anything else is
  a crash;
- a refused frame and a heartbeat change nothing: the tasks, attempts and history of the
  watched tasks (the session's, a delayed one of the tenant, one of another tenant), the
  tenant's task list and its functions read back from the store as they were;
- a result is acked once per item, in order; a result for a task the worker holds is
  taken (acked true) and recorded as its attempt; a result for anything else (another
  attempt, another tenant's task, a task never delivered, an unknown id: the fenced
  write's STALE) or a replay (DUPLICATE) changes nothing but a `stale_result` entry in
  the task's history, and is acked true only for an attempt this worker already reported;
- a release changes only the tasks it hands back; a credit only lets the dispatcher hand
  this worker more.

Then a few sessions over a real websocket: the close code, the same checks on the store,
and that the HTTP API still answers (health, a submit) afterwards.

The node runs with long leases (nothing is reaped while a session runs) and an hour of
retry backoff (no failed task comes back by itself): between frames the only thing that
moves is the dispatcher handing this worker what a frame made ready, and each frame is
sent once that has settled (`Session.settle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import sluice
from sluice.contract import Selector
from sluice.engine.gateway import ProtocolError
from sluice.protocol import WORKER_PATH, Credit, Heartbeat, Release, Results, WorkerFrame
from tests.harness import Running, running_server, wait_for

app = sluice.App("frames")


@app.task
def echo(x: object = None) -> object:
    return x


# Leases outlive every session, heartbeats never come due, failed attempts wait an hour.
QUIET = {"lease_s": 3600.0, "heartbeat_s": 60.0}
CONFIG = {"retry": {"max_attempts": 3, "min_backoff_s": 3600.0, "cap_s": 7200.0}}
TASKS = 3  # per session, all delivered at once (the worker has as many slots)
MAX_SLOTS = 10_000
# What the websocket route closes with 4400 (sluice/api/workers.py); anything else is a crash.
REFUSALS = (msgspec.DecodeError, RecursionError, ProtocolError)
OUTCOMES = ["ok", "error", "reject", "retry", "throttled", "timeout", "cancelled", "weird", ""]
SETTLE_S = 10.0
ADMIN_KEY = "sk_admin_protocol-fuzz-only"
FRAME_DECODER = msgspec.json.Decoder(WorkerFrame)  # the gateway's own frame types


class Disconnected(Exception):
    """The worker went away (how the test ends a session)."""


class HelloRefused(Exception):
    """The gateway refused the hello: it sent an error frame and returned (a close with
    4400 on a websocket)."""


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def result(task_id: str, attempt: int, outcome: str = "ok", **fields: Any) -> dict[str, Any]:
    item = {"id": task_id, "attempt": attempt, "outcome": outcome, "started_at": 1.0,
            "finished_at": 2.0}  # fmt: skip
    return {**item, **fields}


def hello(worker_id: str, function: str, slots: int = TASKS, **extra: Any) -> dict[str, Any]:
    return {"t": "hello", "worker_id": worker_id, "slots": slots,
            "functions": [{"name": function, "config": CONFIG}], **extra}  # fmt: skip


# -- the store, as an auditor reads it -----------------------------------------------------

Snapshot = dict[str, Any]


async def snapshot(server: Running, watched: dict[str, list[str]]) -> Snapshot:
    """The watched tasks (by tenant) with their attempts and history; the session tenant's
    task list and functions."""
    store = server.node.store
    functions = await store.list_functions(server.tenant_id)
    out: Snapshot = {
        "functions": sorted(msgspec.json.encode(f.config) for f in functions),
        "tasks": {t.id: t for t in await store.list_tasks(server.tenant_id, Selector(), "", 10**4)},
    }
    for tenant_id, ids in watched.items():
        for task_id in ids:
            out[f"task {task_id}"] = await store.get_task(tenant_id, task_id)
            out[f"attempts {task_id}"] = await store.list_attempts(tenant_id, task_id)
            out[f"history {task_id}"] = await store.list_history(tenant_id, task_id)
    return out


def changes(
    before: Snapshot, after: Snapshot, allowed: set[str] = frozenset(), stale_ok: bool = False
) -> list[str]:
    """What changed, but for the tasks in `allowed`; with `stale_ok`, new `stale_result`
    history entries do not count."""
    found = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if name == "tasks":
            old = {k: v for k, v in old.items() if k not in allowed}
            new = {k: v for k, v in new.items() if k not in allowed}
        elif name.split(" ", 1)[-1] in allowed:
            continue
        elif stale_ok and name.startswith("history "):
            new = [e for e in new if e in old or e.kind != "stale_result"]
        if old != new:
            found.append(f"{name}:\n    before {old}\n    after  {new}")
    return found


# -- one worker connection, in process ----------------------------------------------------


class Session:
    """A worker connection played through the node's gateway with in-memory frames. It
    keeps what the gateway counts: the tasks delivered and not yet answered, its slots."""

    def __init__(self, server: Running, worker_id: str, function: str) -> None:
        self.server = server
        self.worker_id = worker_id
        self.function = function
        self.inbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.waiting = asyncio.Event()  # the gateway asks for the next frame
        self.received: list[dict[str, Any]] = []
        self.delivered: set[str] = set()
        self.held: dict[str, int] = {}  # task id: the attempt delivered, not yet answered
        self.slots = 0
        self.serving = asyncio.create_task(
            server.node.gateway.serve(server.tenant_id, self._receive, self._send)
        )

    async def _receive(self) -> bytes | str:
        self.waiting.set()
        frame = await self.inbox.get()
        self.waiting.clear()
        if frame is None:
            raise Disconnected
        return frame

    async def _send(self, data: bytes) -> None:
        frame = msgspec.json.decode(data)
        self.received.append(frame)
        if frame["t"] == "tasks":
            for task in frame["tasks"]:
                self.delivered.add(task["id"])
                self.held[task["id"]] = task["attempt"]

    def acks(self) -> list[list[list[Any]]]:
        return [frame["items"] for frame in self.received if frame["t"] == "ack"]

    async def send(self, frame: bytes | str) -> BaseException | None:
        """Hand the gateway one frame and wait until it has dealt with it (it asks for the
        next one, or it stopped); what it stopped with, if it did."""
        assert not self.serving.done(), "the session has ended"
        self.waiting.clear()
        await self.inbox.put(frame)
        asking = asyncio.create_task(self.waiting.wait())
        await asyncio.wait({asking, self.serving}, timeout=SETTLE_S,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        asking.cancel()
        assert self.waiting.is_set() or self.serving.done(), "the gateway is stuck on a frame"
        if self.serving.done():
            return self.serving.exception() or HelloRefused()
        return None

    def answered(self, items: list[tuple[str, int]]) -> set[str]:
        """The tasks whose slots these answers free, as the gateway counts them."""
        freed = {task_id for task_id, attempt in items if self.held.get(task_id) == attempt}
        for task_id in freed:
            del self.held[task_id]
        return freed

    async def settle(self) -> None:
        """Wait until the dispatcher has nothing more for this worker: what the store
        leases to it has arrived, and no task of its function is ready for a free slot."""
        store, tenant_id = self.server.node.store, self.server.tenant_id
        ready = Selector(function=[self.function], state=["ready"])

        async def settled() -> bool:
            # Ready first, leased second: a claim between the two reads shows in the second.
            waiting = await store.list_tasks(tenant_id, ready, "", 1)
            leased = {held[0] for held in await store.leased_to(tenant_id, self.worker_id)}
            if not leased <= self.delivered:
                return False
            return self.serving.done() or self.slots - len(self.held) <= 0 or not waiting

        await wait_for(settled, timeout=SETTLE_S)

    async def close(self) -> None:
        """Disconnect (a session that stopped on a frame was checked when it did)."""
        if self.serving.done():
            self.serving.exception()
            return
        await self.inbox.put(None)
        with contextlib.suppress(Disconnected):
            await self.serving


# -- what a session sends -------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
INDEX = st.integers(0, TASKS - 1)
NOT_HELD = ["unknown", "", "long", "nul", "bystander", "delayed", "answered"]
# A frame as a session will build it once it knows what its worker holds: (kind, *args).
# Most go on; a session ends with one that (mostly) is refused, or with none.
GOING_ON = st.one_of(
    st.tuples(
        st.just("result"),
        INDEX,
        st.sampled_from(OUTCOMES),
        st.sampled_from([None, -5.0, 0.0, 3600.0, 1e308]),
    ),
    st.tuples(st.just("result"), INDEX, st.just("ok"), st.none()),
    st.tuples(st.just("replay")),
    st.tuples(st.just("wrong_attempt"), INDEX, st.sampled_from([1, -1, 2, 10**6, -(10**6)])),
    st.tuples(st.just("not_held"), st.sampled_from(NOT_HELD), st.integers(-1, 3)),
    st.tuples(st.just("many_not_held"), st.integers(2, 300)),
    st.tuples(st.just("mixed"), INDEX, st.sampled_from(NOT_HELD)),
    st.tuples(st.just("big_result"), INDEX, st.sampled_from([2 * 1024 * 1024, 1024 * 1024 + 8])),
    st.tuples(st.just("deep_result"), INDEX, st.sampled_from([101, 1_000])),
    st.tuples(st.just("hb"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("credit"), st.integers(-2, TASKS + 2) | st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("release"), INDEX, st.sampled_from([0, 0, 1, -1])),
)
ENDING = st.one_of(
    st.tuples(st.just("hello_again")),
    st.tuples(st.just("truncated"), INDEX, st.integers(0, 10_000)),
    st.tuples(
        st.just("mutated"),
        INDEX,
        st.sampled_from(["t", "items", "id", "attempt", "outcome", "started_at", "result"]),
        JSON_VALUES | st.just("<absent>"),
    ),
    st.tuples(st.just("deep_result"), INDEX, st.sampled_from([5_000, 100_000])),
    st.tuples(st.just("hb"), JSON_VALUES),
    st.tuples(st.just("credit"), st.integers(-(2**70), 2**70) | JSON_VALUES),
    st.tuples(st.just("bytes"), st.binary(max_size=64)),
    st.tuples(st.just("text"), st.text(max_size=64)),
    st.tuples(st.just("empty"), st.sampled_from([b"", ""])),
)
SESSION_FRAMES = st.builds(
    lambda going_on, ending: [*going_on, *([ending] if ending else [])],
    st.lists(GOING_ON, max_size=8),
    st.none() | ENDING,
)


class Player:
    """Plays one session's frames and checks each, as the module docstring says."""

    def __init__(self, world: World, session: Session, tasks: list[str]) -> None:
        self.world = world
        self.session = session
        self.tasks = tasks
        self.last_results: bytes | None = None
        self.log: list[str] = []  # the frames sent, to reproduce a failure

    def task(self, index: int) -> tuple[str, int]:
        """A task the worker holds, by index (or, if it holds none, one it held)."""
        held = sorted(self.session.held.items())
        if held:
            return held[index % len(held)]
        task_id = self.tasks[index % len(self.tasks)]
        return task_id, 1

    def not_held(self, which: str, attempt: int) -> dict[str, Any]:
        ids = {"unknown": "0190e2b1-0000-7000-8000-000000000000", "": "", "long": "x" * 10_000,
               "nul": "a\x00b", "bystander": self.world.bystander,
               "delayed": self.world.delayed}  # fmt: skip
        if which == "answered":  # a task of this session it no longer holds, if any
            gone = [t for t in self.tasks if t not in self.session.held]
            return result(gone[0] if gone else self.world.delayed, attempt)
        return result(ids[which], attempt)

    def build(self, kind: str, *args: Any) -> bytes | str:
        if kind == "result":
            index, outcome, retry_after = args
            fields = {"retry_after_s": retry_after, "result": {"n": index}}
            return encode({"t": "results", "items": [result(*self.task(index), outcome, **fields)]})
        if kind == "replay":
            return self.last_results or self.build("result", 0, "ok", None)
        if kind == "wrong_attempt":
            task_id, attempt = self.task(args[0])
            return encode({"t": "results", "items": [result(task_id, attempt + args[1])]})
        if kind == "not_held":
            return encode({"t": "results", "items": [self.not_held(*args)]})
        if kind == "many_not_held":
            items = [self.not_held("unknown", 1) | {"id": f"unknown-{i}"} for i in range(args[0])]
            return encode({"t": "results", "items": items})
        if kind == "mixed":
            held = result(*self.task(args[0]), "ok")
            return encode({"t": "results", "items": [self.not_held(args[1], 1), held]})
        if kind == "big_result":
            item = result(*self.task(args[0]), "ok", result="x" * args[1])
            return encode({"t": "results", "items": [item]})
        if kind == "deep_result":
            item = json.dumps(result(*self.task(args[0])))[:-1]
            nested = "[" * args[1] + "]" * args[1]
            return '{"t": "results", "items": [' + item + ', "result": ' + nested + "}]}"
        if kind == "hb":
            return encode({"t": "hb", "running": args[0]})
        if kind == "credit":
            return encode({"t": "credit", "slots": args[0]})
        if kind == "release":
            task_id, attempt = self.task(args[0])
            return encode(
                {"t": "release", "items": [{"id": task_id, "attempt": attempt + args[1]}]}
            )
        if kind == "hello_again":
            return encode(hello(self.session.worker_id, self.session.function))
        if kind == "truncated":
            whole = self.build("result", args[0], "ok", None)
            return whole[: args[1] % len(whole)]
        if kind == "mutated":
            frame = {"t": "results", "items": [result(*self.task(args[0]), "ok")]}
            target = frame if args[1] in ("t", "items") else frame["items"][0]
            if args[2] == "<absent>":
                target.pop(args[1], None)
            else:
                target[args[1]] = args[2]
            return encode(frame)
        return args[0]  # bytes, text, empty: as generated

    async def play(self, kind: str, *args: Any) -> bool:
        """Send one frame and check what it did; False once the session has ended."""
        session, world = self.session, self.world
        frame = self.build(kind, *args)
        self.log.append(f"{kind} {frame[:300]!r}")
        await session.settle()
        before = await world.snapshot(self.tasks)
        held, acks = dict(session.held), len(session.acks())
        try:
            decoded = FRAME_DECODER.decode(frame)
        except (msgspec.DecodeError, RecursionError):
            decoded = None
        # The gateway frees the slots of what a result or a release answers as it reads
        # the frame, before anything is written: so does the test, before a delivery
        # that the frame makes possible can arrive.
        answered: set[str] = set()
        if isinstance(decoded, Results | Release):
            answered = session.answered([(i.id, i.attempt) for i in decoded.items])
        stopped = await session.send(frame)
        if stopped is not None:
            assert isinstance(stopped, REFUSALS), f"the gateway crashed: {stopped!r}"
            assert decoded is None or isinstance(stopped, ProtocolError), stopped
            after = await world.snapshot(self.tasks)
            assert not changes(before, after), self.report(before, after)
            return False
        await session.settle()
        if isinstance(decoded, Results):
            await self.check_results(decoded, held, before, acks, answered)
            self.last_results = frame if isinstance(frame, bytes) else frame.encode()
            return True
        after = await world.snapshot(self.tasks)
        if isinstance(decoded, Release):  # what it handed back, and nothing else
            assert not changes(before, after, answered), self.report(before, after, answered)
        elif isinstance(decoded, Credit):  # more may be handed to it, and nothing else
            session.slots = max(0, min(decoded.slots, MAX_SLOTS))
            await session.settle()
            after = await world.snapshot(self.tasks)
            sent = set(session.held) - set(held)
            for task_id in sent:
                task = after[f"task {task_id}"]
                assert (task.state, task.lease_owner) == ("running", session.worker_id), task
            assert not changes(before, after, sent), self.report(before, after, sent)
        else:
            assert isinstance(decoded, Heartbeat), decoded
            assert not changes(before, after), self.report(before, after)
        return True

    async def check_results(
        self, frame: Results, held: dict[str, int], before: Snapshot, acks: int, taken: set[str]
    ) -> None:
        session = self.session
        await wait_for(lambda: len(session.acks()) > acks, timeout=SETTLE_S)
        ack = session.acks()[acks]
        assert [(i[0], i[1]) for i in ack] == [(i.id, i.attempt) for i in frame.items], ack
        after = await self.world.snapshot(self.tasks)
        assert not changes(before, after, taken, True), self.report(before, after, taken, True)
        for (task_id, attempt, accepted), item in zip(ack, frame.items, strict=True):
            attempts = after.get(f"attempts {task_id}") or []
            mine = [a for a in attempts if (a.attempt, a.worker) == (attempt, session.worker_id)]
            if held.get(task_id) == attempt:  # it held the task: the result is taken
                assert accepted and mine, (item, ack, attempts)
            elif accepted:  # a duplicate: this worker had reported that attempt before
                assert mine and before.get(f"attempts {task_id}") == attempts, (item, ack)
        for item in frame.items:  # a result the server could not serve back fails its attempt
            why = _unservable(bytes(item.result))
            if item.id in taken and why is not None:
                (mine,) = [a for a in after[f"attempts {item.id}"] if a.attempt == item.attempt]
                assert (mine.outcome, mine.error_type) == ("rejected", why), mine

    def report(self, before: Snapshot, after: Snapshot | None = None, *how: Any) -> str:
        frames = "\n  ".join(self.log)
        diff = "" if after is None else "\n".join(changes(before, after, *how))
        return f"frames sent:\n  {frames}\nchanged:\n{diff}"


def _unservable(result: bytes) -> str | None:
    if len(result) > 1024 * 1024:  # Settings.max_result_bytes
        return "ResultTooLarge"
    if result.startswith(b"[" * 101):  # deeper than MAX_DEPTH (sluice/rawjson.py)
        return "ResultTooDeep"
    return None


class World:
    """The server, and what every session watches besides its own tasks: a delayed task
    of the tenant and a task of another tenant (neither ever delivered)."""

    def __init__(self, server: Running, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.delayed = ""
        self.bystander = ""
        self.bystander_tenant = ""
        self.numbers = itertools.count()

    async def start(self) -> None:
        self.delayed = await self.submit({"function": "echo", "delay": 3600})
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        tenant = await self.http.post("/v1/tenants", json={"name": "bystander"}, headers=admin)
        assert tenant.status_code == 201, tenant.text
        other = {"authorization": f"Bearer {tenant.json()['api_key']}"}
        assert (
            await self.http.put("/v1/functions/echo", json={}, headers=other)
        ).status_code == 200
        created = await self.http.post("/v1/tasks", json={"function": "echo"}, headers=other)
        assert created.status_code == 201, created.text
        self.bystander, self.bystander_tenant = created.json()["id"], tenant.json()["id"]

    async def submit(self, spec: dict[str, Any]) -> str:
        created = await self.http.post("/v1/tasks", json=spec)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    async def snapshot(self, tasks: list[str]) -> Snapshot:
        watched = {self.server.tenant_id: [*tasks, self.delayed],
                   self.bystander_tenant: [self.bystander]}  # fmt: skip
        return await snapshot(self.server, watched)

    async def session(self) -> tuple[Session, list[str]]:
        """A worker that said hello and holds its TASKS tasks."""
        n = next(self.numbers)
        session = Session(self.server, f"w{n}", f"f{n}")
        assert await session.send(encode(hello(session.worker_id, session.function))) is None
        session.slots = TASKS
        tasks = [await self.submit({"function": session.function}) for _ in range(TASKS)]
        await session.settle()
        assert sorted(session.held) == sorted(tasks), session.received
        return session, tasks

    async def play(self, frames: list[tuple[Any, ...]]) -> None:
        session, tasks = await self.session()
        player = Player(self, session, tasks)
        try:
            for frame in frames:
                if not await player.play(*frame):
                    break
        finally:
            await session.close()


@contextlib.asynccontextmanager
async def world_on(tmp_path: Path, backend: str = "sqlite") -> Any:
    async with running_server(tmp_path, app, backend, **QUIET, admin_key=ADMIN_KEY) as server:
        headers = {"authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            world = World(server, http)
            await world.start()
            yield world
            # Whatever the sessions sent, the API still answers.
            assert (await http.get("/v1/health")).status_code == 200
            await world.submit({"function": "echo"})


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: a failing session is reported as found, with the frames it sent;
        # a failing run then takes no longer than a passing one.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )


async def in_thread(strategy: st.SearchStrategy[Any], play: Callable[[Any], Any], n: int) -> None:
    """Run Hypothesis in a worker thread; each example plays in this event loop, where the
    server runs."""
    loop = asyncio.get_running_loop()

    def run() -> None:
        @bounded(n)
        @given(strategy)
        def each(example: Any) -> None:
            asyncio.run_coroutine_threadsafe(play(example), loop).result(timeout=120)

        each()

    await asyncio.to_thread(run)


SESSIONS = {"sqlite": 150, "postgres": 60}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_sessions_of_any_frames_never_crash_and_refused_frames_change_nothing(
    tmp_path: Path, backend: str
) -> None:
    async with world_on(tmp_path, backend) as world:
        await in_thread(SESSION_FRAMES, world.play, SESSIONS[backend])


# -- the first frame ------------------------------------------------------------------------

# A hello: right in most of its fields, hostile in a few.
GOOD_HELLO = st.fixed_dictionaries(
    {"t": st.just("hello"), "worker_id": st.from_regex(r"\Ah[A-Za-z0-9_.:@/+-]{0,30}\Z"),
     "slots": st.integers(0, 5),
     "functions": st.lists(st.fixed_dictionaries({"name": st.from_regex(r"\Ah[a-z0-9_]{0,8}\Z"),
                                                  "config": st.just(CONFIG)}),
                           min_size=1, max_size=3)},
    optional={"running": st.lists(st.fixed_dictionaries(
                  {"id": st.text(max_size=40) | st.just("a\x00b"),
                   "attempt": st.integers(-(2**63), 2**63 - 1)}), max_size=3),
              "protocol": st.integers(-5, 5)},
)  # fmt: skip
FUNCTION_CONFIGS = st.fixed_dictionaries({}, optional={
    "retry": st.fixed_dictionaries({}, optional={"max_attempts": st.integers(-1, 30),
                                                 "base_s": st.floats(-1, 10)}),
    "timeout_s": st.none() | st.floats(-1, 1e6), "priority": st.integers(-1, 11),
    "ttl_s": st.none() | st.floats(-1, 1e9), "tags": st.lists(st.text(max_size=300)),
    "target": st.just({"url": "https://example.com/"}), "unknown": JSON_VALUES,
}) | JSON_VALUES  # fmt: skip
HOSTILE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "worker_id": st.sampled_from(["", "a b", "w\x00", "w\u202eid", "pool:x", "target:x",
                                  "x" * 201, "\u00e9"]) | JSON_VALUES,
    "slots": st.integers(-(2**70), 2**70) | JSON_VALUES,
    "functions": st.one_of(
        st.just([]),
        st.integers(0, 3).map(lambda n: [{"name": f"h{i}"} for i in range(501 + n)]),
        st.lists(st.fixed_dictionaries({"name": st.sampled_from(["", "1x", "a b", "h"])},
                                       optional={"config": FUNCTION_CONFIGS,
                                                 "extra": JSON_VALUES}),
                 min_size=1, max_size=2),
        JSON_VALUES,
    ),
    "running": JSON_VALUES,
    "protocol": JSON_VALUES,
    "unknown": JSON_VALUES,
}  # fmt: skip
HELLOS = st.builds(
    lambda good, hostile: {**good, **hostile},
    GOOD_HELLO,
    st.dictionaries(st.sampled_from(list(HOSTILE_FIELDS)), st.just(None), max_size=2).flatmap(
        lambda chosen: st.fixed_dictionaries({k: HOSTILE_FIELDS[k] for k in chosen})
    ),
)
FIRST_FRAMES = st.one_of(
    HELLOS.map(encode),
    HELLOS.map(encode),
    st.sampled_from(
        [
            {"t": "results", "items": []},
            {"t": "hb"},
            {"t": "credit", "slots": 1},
            {"t": "release", "items": []},
            {"t": "welcome"},
            {},
        ]
    ).map(encode),
    HELLOS.map(encode).flatmap(lambda b: st.integers(0, len(b) - 1).map(lambda n: b[:n])),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.integers(95, 5_000).map(lambda d: b'{"t": "hello", "slots": ' + b"[" * d + b"]" * d + b"}"),
)


async def first_frame(world: World, frame: bytes | str) -> None:
    """One connection's first frame: refused with an error frame, or closed as a bad
    frame, changing nothing; or taken (a welcome); never a crash."""
    server = world.server
    before = await world.snapshot([])
    session = Session(server, "?", "?")
    stopped = await session.send(frame)
    kinds = [f["t"] for f in session.received]
    if stopped is None:  # taken: it said hello well enough
        assert kinds[:1] == ["welcome"], session.received
        await session.close()
        after = await world.snapshot([])
        assert not changes({**before, "functions": []}, {**after, "functions": []})
        return
    if isinstance(stopped, HelloRefused):
        assert kinds == ["error"] and session.received[0]["code"], session.received
        assert session.serving.result() is True
    else:
        assert isinstance(stopped, REFUSALS), f"the gateway crashed on {frame[:300]!r}: {stopped!r}"
    after = await world.snapshot([])
    assert not changes(before, after), "\n".join([repr(frame[:300]), *changes(before, after)])
    assert not [c for c in server.node.registry if c.tenant_id == server.tenant_id]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_any_first_frame_is_taken_or_refused_and_a_refusal_changes_nothing(
    tmp_path: Path, backend: str
) -> None:
    async with world_on(tmp_path, backend) as world:
        await in_thread(FIRST_FRAMES, lambda frame: first_frame(world, frame), 200)


# -- over a real websocket --------------------------------------------------------------------


class Live:
    """A worker on a real websocket: frames sent as given, frames read as they come."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: bytes | str) -> None:
        await self.ws.send(frame)

    async def next(self, kind: str) -> dict[str, Any]:
        """The next frame of this kind (a frame of another kind is kept and skipped)."""
        while True:
            frame = msgspec.json.decode(await asyncio.wait_for(self.ws.recv(), SETTLE_S))
            self.frames.append(frame)
            if frame["t"] == kind:
                return frame

    async def tasks(self, n: int) -> list[tuple[str, int]]:
        held: list[tuple[str, int]] = []
        while len(held) < n:
            held += [(t["id"], t["attempt"]) for t in (await self.next("tasks"))["tasks"]]
        return held

    async def closed(self) -> int | None:
        """Read until the server closes; its close code."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), SETTLE_S)
        return self.ws.close_code


@contextlib.asynccontextmanager
async def live_worker(server: Running) -> Any:
    url = server.url.replace("http://", "ws://") + WORKER_PATH
    headers = {"authorization": f"Bearer {server.api_key}"}
    async with websockets.connect(url, additional_headers=headers, max_size=None,
                                  compression=None) as ws:  # fmt: skip
        yield Live(ws)


async def live_session(
    world: World, live: Live, n: int = 2
) -> tuple[list[str], list[tuple[str, int]]]:
    """Say hello as worker `live`, submit n tasks to its function, read them."""
    await live.send(encode(hello("live", "live_fn", slots=n)))
    await live.next("welcome")
    tasks = [await world.submit({"function": "live_fn"}) for _ in range(n)]
    return tasks, await live.tasks(n)


BAD_FRAMES = {
    "bytes that are not JSON": b"\x00\xff garbage",
    "text that is not JSON": "hello?",
    "invalid UTF-8": b'{"t": "release", "items": [{"id": "\xff\xfe", "attempt": 1}]}',
    "a truncated results frame": b'{"t": "results", "items": [{"id": "x", "attempt": 1, "outc',
    "an unknown type": b'{"t": "goodbye"}',
    "a field of the wrong type": b'{"t": "credit", "slots": "many"}',
    "a missing field": b'{"t": "results"}',
    "a float for an integer": b'{"t": "credit", "slots": 1.5}',
    "a second hello": encode(hello("live", "live_fn")),
    "an empty binary frame": b"",
    "an empty text frame": "",
}


@pytest.mark.parametrize("frame", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
async def test_a_refused_frame_on_a_live_socket_closes_4400_and_changes_nothing(
    tmp_path: Path, frame: bytes | str
) -> None:
    async with world_on(tmp_path) as world, live_worker(world.server) as live:
        tasks, _ = await live_session(world, live)
        before = await world.snapshot(tasks)
        await live.send(frame)
        assert await live.closed() == 4400
        after = await world.snapshot(tasks)
        assert not changes(before, after), changes(before, after)


async def test_a_frame_before_hello_on_a_live_socket_is_refused(tmp_path: Path) -> None:
    async with world_on(tmp_path) as world, live_worker(world.server) as live:
        before = await world.snapshot([])
        await live.send(encode({"t": "results", "items": [result(world.delayed, 1)]}))
        error = await live.next("error")
        assert error["code"] == "protocol", error
        assert await live.closed() == 4400
        assert not changes(before, await world.snapshot([]))


async def test_a_replayed_result_on_a_live_socket_is_taken_once(tmp_path: Path) -> None:
    async with world_on(tmp_path) as world, live_worker(world.server) as live:
        tasks, held = await live_session(world, live, 1)
        frame = encode({"t": "results", "items": [result(*held[0], "ok", result=[1])]})
        await live.send(frame)
        assert (await live.next("ack"))["items"] == [[*held[0], True]]
        done = await world.snapshot(tasks)
        assert done[f"task {tasks[0]}"].state == "succeeded"
        await live.send(frame)  # the same frame again: a duplicate, acked, not stored
        assert (await live.next("ack"))["items"] == [[*held[0], True]]
        assert not changes(done, await world.snapshot(tasks))


async def test_results_for_tasks_a_live_worker_does_not_hold_are_refused(
    tmp_path: Path,
) -> None:
    async with world_on(tmp_path) as world, live_worker(world.server) as live:
        tasks, held = await live_session(world, live, 1)
        (task_id, attempt) = held[0]
        before = await world.snapshot(tasks)
        others = [result(task_id, attempt + 1), result(task_id, attempt - 1),
                  result(world.bystander, 1), result(world.delayed, 1),
                  result("0190e2b1-0000-7000-8000-000000000000", 1)]  # fmt: skip
        await live.send(encode({"t": "results", "items": others}))
        ack = (await live.next("ack"))["items"]
        assert ack == [[i["id"], i["attempt"], False] for i in others]
        after = await world.snapshot(tasks)
        assert not changes(before, after, stale_ok=True), changes(before, after)
        await live.send(encode({"t": "results", "items": [result(task_id, attempt)]}))
        assert (await live.next("ack"))["items"] == [[task_id, attempt, True]]


async def test_a_frame_over_the_size_limit_closes_the_live_socket(tmp_path: Path) -> None:
    async with (
        running_server(
            tmp_path, app, **QUIET, admin_key=ADMIN_KEY, max_frame_bytes=64 * 1024
        ) as server,
        httpx.AsyncClient(base_url=server.url,
                          headers={"authorization": f"Bearer {server.api_key}"}) as http,
    ):  # fmt: skip
        world = World(server, http)
        await world.start()
        async with live_worker(server) as live:
            tasks, held = await live_session(world, live, 1)
            before = await world.snapshot(tasks)
            big = result(*held[0], "ok", result="x" * (64 * 1024))
            await live.send(encode({"t": "results", "items": [big]}))
            # uvicorn refuses it (`ws_max_size`) before the route reads it: 1009, message
            # too big; the route itself would close with 4400.
            assert await live.closed() in (4400, 1009)
            assert not changes(before, await world.snapshot(tasks))
        assert (await http.get("/v1/health")).status_code == 200
        await world.submit({"function": "echo"})


# Strings and names that PostgreSQL refuses where SQLite takes them: a NUL character (asyncpg:
# invalid byte sequence for encoding "UTF8": 0x00), one function named twice in an upsert
# (ON CONFLICT DO UPDATE cannot affect a row a second time). Found by the sessions above.
HOSTILE = {
    "a result for an id with a NUL": {"t": "results", "items": [result("a\x00b", 1)]},
    "a release of an id with a NUL": {"t": "release", "items": [{"id": "a\x00b", "attempt": 1}]},
}
HOSTILE_HELLOS = {
    "a function named twice": {"functions": [{"name": "twice"}, {"name": "twice"}]},
    "a running task with a NUL in its id": {"running": [{"id": "a\x00b", "attempt": 1}]},
}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("case", [*HOSTILE, *HOSTILE_HELLOS])
async def test_hostile_strings_in_frames_are_refused_or_ignored_never_a_crash(
    tmp_path: Path, backend: str, case: str
) -> None:
    """Each is refused (an error frame or a close with 4400) or taken as harmless (a stale
    ack, nothing handed back); the connection then still answers."""
    async with world_on(tmp_path, backend) as world, live_worker(world.server) as live:
        before = await world.snapshot([])
        if case in HOSTILE_HELLOS:
            await live.send(encode({**hello("hostile", "hostile_fn"), **HOSTILE_HELLOS[case]}))
        else:
            await live_session(world, live, 1)
            before = await world.snapshot([])
            await live.send(encode(HOSTILE[case]))
        # Then a result for a task that is not there: acked false if the connection is
        # alive (after the hostile result's own ack, false too); or it was refused: 4400.
        probe = result("0190e2b1-0000-7000-8000-000000000000", 1)
        with contextlib.suppress(websockets.ConnectionClosed):
            await live.send(encode({"t": "results", "items": [probe]}))
        expected = [[probe["id"], 1, False]]
        if HOSTILE.get(case, {}).get("t") == "results":
            expected = [[i["id"], i["attempt"], False] for i in HOSTILE[case]["items"]] + expected
        try:
            acks = [item for _ in expected for item in (await live.next("ack"))["items"]]
        except websockets.ConnectionClosed:
            assert live.ws.close_code == 4400, (live.ws.close_code, live.frames)
            assert not changes(before, await world.snapshot([]))
        else:
            assert acks == expected, live.frames
