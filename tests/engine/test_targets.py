"""HTTP targets alone, with no network: their configs checked, their connections made to
match the functions' configs, their AIMD windows on the fake clock (engine/targets.py).
Nothing here is ever POSTed: the Attempts stand-in fails if a call ever ended."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig, HttpTarget
from sluice.engine.queues import Queues
from sluice.engine.registry import TARGET_PREFIX, Registry, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.engine.targets import TargetConn, Targets, check_target
from sluice.errors import Forbidden, InvalidRequest, SluiceError, Unprocessable
from sluice.policy.aimd import L_INIT, OK, W_MIN_S
from sluice.protocol import ResultItem
from tests.engine.conftest import FN, make_function, make_tenant, settle, with_settings

LOCAL = HttpTarget(url="http://127.0.0.1:9/run")  # never called
SECRET = "whsec_" + "A" * 44  # 33 bytes in base64


class NoCalls:
    """Attempts, for targets that are never called."""

    async def finish(self, conn: WorkerConn, items: list[ResultItem]) -> None:
        raise AssertionError("no target is called in these tests")


class Built:
    def __init__(self, rt: Runtime) -> None:
        self.queues = Queues(rt.bus)
        self.registry = Registry()
        self.targets = Targets(rt, self.registry, self.queues, NoCalls())

    def conn(self, tenant: str = "acme") -> TargetConn:
        conn = self.targets.get(tenant, FN)
        assert conn is not None
        return conn


def test_a_target_gets_a_signing_secret_and_keeps_a_good_one_given() -> None:
    made = check_target(LOCAL, allow_loopback=True, allow_private=False)
    assert made.secret is not None and made.secret.startswith("whsec_")
    given = HttpTarget(url=LOCAL.url, secret=SECRET)
    assert check_target(given, allow_loopback=True, allow_private=False) == given


@pytest.mark.parametrize(
    ("target", "allow_loopback", "refused"),
    [
        (LOCAL, False, Forbidden),  # loopback, not allowed by the settings
        (HttpTarget(url="http://10.0.0.1/run"), True, Forbidden),  # private
        (HttpTarget(url="http://[::1/run"), True, Unprocessable),  # no host that parses
        (HttpTarget(url=LOCAL.url, secret="whsec_c2hvcnQ="), True, InvalidRequest),
        (HttpTarget(url=LOCAL.url, timeout_s=901.0), True, InvalidRequest),
    ],
)
def test_a_target_the_settings_refuse_or_that_makes_no_sense_is_refused(
    target: HttpTarget, allow_loopback: bool, refused: type[SluiceError]
) -> None:
    with pytest.raises(refused):
        check_target(target, allow_loopback=allow_loopback, allow_private=False)


async def test_sync_makes_the_target_connections_match_the_functions_configs(
    rt: Runtime,
) -> None:
    built = Built(rt)
    targets, registry = built.targets, built.registry

    targets.sync("acme", {FN: FunctionConfig(name=FN, target=LOCAL),
                          "resize": FunctionConfig(name="resize")})  # fmt: skip
    first = built.conn()
    assert [c.worker_id for c in registry] == [TARGET_PREFIX + FN]
    assert built.queues.woken.is_set()

    targets.sync("acme", {FN: FunctionConfig(name=FN, target=LOCAL, max_concurrency=3)})
    assert built.conn() is first and first.aimd.limit == 3  # the same target: recapped

    moved = HttpTarget(url="http://127.0.0.1:9/v2")
    targets.sync("acme", {FN: FunctionConfig(name=FN, target=moved)})
    assert built.conn() is not first and first.closed
    assert [c for c in registry] == [built.conn()]

    targets.sync("acme", {FN: FunctionConfig(name=FN)})  # workers serve it now
    assert targets.get("acme", FN) is None and len(registry) == 0


async def test_a_targets_slots_are_its_aimd_room_and_it_never_goes_silent(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    built.targets.sync("acme", {FN: FunctionConfig(name=FN, target=LOCAL)})
    conn = built.conn()

    clock.advance(3600)

    assert conn.free == L_INIT
    assert built.registry.dispatchable(silent_since=clock.now()) == [conn]
    conn.aimd.paused_until = clock.now() + 5  # a Retry-After
    assert conn.free == 0


async def test_a_window_closed_with_backlog_grows_the_limit_and_wakes_the_dispatcher(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    built.targets.sync("acme", {FN: FunctionConfig(name=FN, target=LOCAL)})
    conn = built.conn()
    epoch = conn.aimd.sent(int(L_INIT))
    conn.aimd.answered(OK, epoch, clock.now())
    conn.backlog = True  # the dispatcher filled every slot
    built.queues.woken.clear()

    clock.advance(W_MIN_S - 0.1)
    built.targets.tick()
    assert conn.aimd.limit == L_INIT
    clock.advance(0.1)
    built.targets.tick()

    assert conn.aimd.limit == L_INIT + 1
    assert built.queues.woken.is_set()
    assert not conn.backlog


async def test_the_tick_after_a_targets_pause_ends_wakes_the_dispatcher(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    built.targets.sync("acme", {FN: FunctionConfig(name=FN, target=LOCAL)})
    conn = built.conn()
    conn.aimd.paused_until = clock.now() + 2.0  # a Retry-After
    built.targets.tick()
    built.queues.woken.clear()

    clock.advance(2.1)
    built.targets.tick()

    assert built.queues.woken.is_set()


async def test_start_reads_every_tenants_targets_and_warns_of_those_now_refused(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(rt)
    await make_function(rt, tenant, FN, target=LOCAL)
    built = Built(rt)  # settings that refuse loopback targets

    with caplog.at_level(logging.WARNING, logger="sluice.targets"):
        await built.targets.start()

    assert built.conn(tenant).target == LOCAL
    assert "which the current settings refuse" in caplog.text
    caplog.clear()
    allowed = Built(with_settings(rt, targets_allow_loopback=True))
    await allowed.targets.start()
    assert "refuse" not in caplog.text


async def test_stop_drops_every_target_from_the_registry(rt: Runtime) -> None:
    built = Built(rt)
    built.targets.sync("acme", {FN: FunctionConfig(name=FN, target=LOCAL)})
    built.targets.sync("globex", {FN: FunctionConfig(name=FN, target=LOCAL)})
    conns = [built.conn("acme"), built.conn("globex")]

    await built.targets.stop()

    assert len(built.registry) == 0 and built.targets.items() == []
    assert all(c.closed for c in conns)


async def test_a_dropped_target_leaves_no_task_behind(rt: Runtime) -> None:
    built = Built(rt)
    before = asyncio.all_tasks()
    for path in ("v1", "v2"):  # the second replaces the first
        target = HttpTarget(url=f"http://127.0.0.1:9/{path}")
        built.targets.sync("acme", {FN: FunctionConfig(name=FN, target=target)})

    await built.targets.stop()

    await settle()
    assert asyncio.all_tasks() - before == set()
