"""The store contract for a task's trace context (OBSERVABILITY §3.3): written at submit,
keyed or not, and handed back unchanged, with the time the task became ready, by every
claim and by the read-back of a task claimed on another node."""

from __future__ import annotations

import msgspec

from sluice.store import ClaimRequest, Store
from tests.store.test_contract import FN, LEASE_S, NOW, new_task, submit, tenant  # noqa: F401

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_a_claim_returns_the_trace_context_stored_at_submit(
    store: Store,
    tenant: str,  # noqa: F811
) -> None:
    traced = msgspec.structs.replace(new_task(), trace_parent=PARENT, trace_state="k=v")
    keyed = msgspec.structs.replace(new_task(key="once"), trace_parent=PARENT)
    plain = new_task()
    await submit(store, tenant, traced, keyed, plain)
    request = ClaimRequest(tenant_id=tenant, worker="w", functions=(FN,), limit=10)

    (claimed,) = await store.claim_tasks([request], NOW + 1, LEASE_S)

    by_id = {t.id: t for t in claimed}
    assert (by_id[traced.id].trace_parent, by_id[traced.id].trace_state) == (PARENT, "k=v")
    assert (by_id[keyed.id].trace_parent, by_id[keyed.id].trace_state) == (PARENT, None)
    assert (by_id[plain.id].trace_parent, by_id[plain.id].trace_state) == (None, None)
    assert {t.ready_at for t in claimed} == {NOW}  # ready since the submit, not the claim
    again = await store.get_claimed(tenant, "w", [traced.id])
    assert [(t.trace_parent, t.trace_state, t.ready_at) for t in again] == [(PARENT, "k=v", NOW)]
