"""Tenant quotas alone: held in memory, the waiting count read at most once a second of
the fake clock (engine/quotas.py)."""

from __future__ import annotations

import msgspec
import pytest

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig, TaskSpec, TenantQuota
from sluice.engine.admission import build_task
from sluice.engine.quotas import REFRESH_S, Quotas
from sluice.engine.runtime import Runtime
from sluice.errors import PayloadTooLarge, QuotaExceeded, Unprocessable
from sluice.model import MIN_RATE, NewTask
from tests.engine.conftest import heard, make_function, make_task, make_tenant, until


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def tasks(rt: Runtime, n: int, args: bytes = b"[]") -> list[NewTask]:
    spec = TaskSpec(function="send", args=msgspec.Raw(args))
    return [build_task(spec, FunctionConfig(name="send"), rt.settings, rt.clock.now())
            for _ in range(n)]  # fmt: skip


async def test_quotas_set_are_stored_told_and_read_back_at_start(rt: Runtime) -> None:
    changed = Changes()
    quotas = Quotas(rt, changed=changed)
    quota = TenantQuota(max_queued=10, weight=2.0)

    await quotas.set("acme", quota)

    assert quotas.cached("acme") == quota
    assert changed.count == 1
    assert heard(rt, "quotas") == ["acme"]
    again = Quotas(rt, changed=Changes())
    await again.start()
    assert again.all() == {"acme": quota}


async def test_a_payload_over_the_tenants_quota_is_refused_naming_the_task(rt: Runtime) -> None:
    quotas = Quotas(rt, changed=Changes())
    await quotas.set("acme", TenantQuota(max_payload_bytes=40))

    await quotas.admit("acme", tasks(rt, 1), "")
    with pytest.raises(PayloadTooLarge) as refused:
        await quotas.admit("acme", [*tasks(rt, 1), *tasks(rt, 1, b'["' + b"x" * 40 + b'"]')],
                           "tasks[]")  # fmt: skip
    assert refused.value.field == "tasks[1].args"


async def test_the_waiting_count_is_read_once_a_second_of_fake_time_and_counted_between(
    rt: Runtime, clock: FakeClock
) -> None:
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    quotas = Quotas(rt, changed=Changes())
    await quotas.set(tenant, TenantQuota(max_queued=2))
    waiting = [await make_task(rt, tenant, send) for _ in range(2)]

    with pytest.raises(QuotaExceeded):
        await quotas.admit(tenant, tasks(rt, 1), "")
    await rt.store.cancel_tasks(tenant, waiting, clock.now())  # the store has room now
    with pytest.raises(QuotaExceeded):
        await quotas.admit(tenant, tasks(rt, 1), "")  # not read again within the second
    clock.advance(REFRESH_S + 0.01)
    await quotas.admit(tenant, tasks(rt, 1), "")  # read again: 0 waiting
    await quotas.admit(tenant, tasks(rt, 1), "")  # counted up by this node: 1
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.admit(tenant, tasks(rt, 1), "")  # 2 counted, though the store has 0
    assert refused.value.retry_after_s == 1


async def test_another_nodes_change_is_read_again_in_the_background_and_told(
    rt: Runtime,
) -> None:
    changed = Changes()
    quotas = Quotas(rt, changed=changed)
    await rt.store.put_quota("acme", b'{"max_queued":5}')

    quotas.forget("acme")

    await until(lambda: quotas.cached("acme") == TenantQuota(max_queued=5))
    assert changed.count == 1
    assert quotas.limited() == {}  # a waiting count is no claim limit
    await rt.store.put_quota("acme", b'{"rate":2.0}')
    quotas.resync()
    await until(lambda: "acme" in quotas.limited())


async def test_a_stored_quota_that_breaks_a_newer_rule_is_mended_or_left_out_not_fatal(
    rt: Runtime,
) -> None:
    # A rate of 1e-320 was once accepted (its 1 / rate is infinite); the contract now
    # refuses it. Stored, it counts as the slowest rate allowed, and the quota's other
    # limits stay. One that breaks another rule is left out: the node still starts.
    await rt.store.put_quota("old", b'{"rate":1e-320,"max_queued":5}')
    await rt.store.put_quota("broken", b'{"max_queued":-1}')
    await rt.store.put_quota("acme", msgspec.json.encode(TenantQuota(max_queued=5)))
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"rate":1e-320}', type=TenantQuota)

    quotas = Quotas(rt, changed=Changes())
    await quotas.start()

    assert quotas.all() == {
        "acme": TenantQuota(max_queued=5), "old": TenantQuota(rate=MIN_RATE, max_queued=5),
    }  # fmt: skip


async def test_a_reserve_larger_than_the_cap_is_refused(rt: Runtime) -> None:
    quotas = Quotas(rt, changed=Changes())
    with pytest.raises(Unprocessable) as refused:
        await quotas.set("acme", TenantQuota(min_slots=5, max_concurrency=4))
    assert (refused.value.code, refused.value.field) == ("min_slots_above_max_concurrency",
                                                         "min_slots")  # fmt: skip
    assert quotas.cached("acme") is None
    assert await rt.store.get_quota("acme") is None
    await quotas.set("acme", TenantQuota(min_slots=4, max_concurrency=4))
