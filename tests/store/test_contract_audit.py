"""The store contract for the audit log, on every backend: entries are kept as given,
listed newest first in keyset pages, of one action if asked, to their tenant only (the
admin sees every tenant's and the cluster-wide ones), and purged by age."""

from __future__ import annotations

from sluice.contract import AuditEntry
from sluice.store import Store
from tests.store.test_contract import NOW


def entry(
    tenant_id: str | None, action: str, at: float = NOW, actor: str = "admin", **fields: object
) -> AuditEntry:
    return AuditEntry(tenant_id=tenant_id, actor=actor, action=action, at=at, **fields)  # type: ignore[arg-type]


def ids(entries: list[AuditEntry]) -> list[str]:
    return [e.id for e in entries]


def newest_first(entries: list[AuditEntry]) -> list[str]:
    return sorted(ids(entries), reverse=True)  # ids are time-ordered: made later, larger


async def test_an_entry_is_kept_as_recorded(store: Store) -> None:
    full = entry(
        "t-a", "tasks.cancel", actor="key:0123456789abcdef",
        selector='{"function":["send"],"state":["ready"]}', count=1_234, detail="by selector",
    )  # fmt: skip
    bare = entry(None, "tenant.create", at=NOW + 0.25)

    await store.record_audit([full, bare])
    await store.record_audit([])

    assert await store.list_audit("t-a", "", 10) == [full]
    assert await store.list_audit(None, "", 10) == [bare, full]  # bare: made later


async def test_a_tenant_sees_only_its_own_entries(store: Store) -> None:
    made = [
        entry("t-a", "tasks.cancel"), entry("t-b", "tasks.delete"), entry(None, "tenant.create"),
        entry("t-a", "pause.create"), entry("t-b", "tasks.cancel"),
    ]  # fmt: skip
    a, b = made[0::3], made[1::3]
    await store.record_audit(made[::-1])  # the order of recording does not matter

    assert ids(await store.list_audit("t-a", "", 10)) == newest_first(a)
    assert ids(await store.list_audit("t-b", "", 10)) == newest_first(b)
    assert await store.list_audit("t-a", "", 10, action="tasks.delete") == []
    assert await store.list_audit("t-c", "", 10) == []
    # A cursor taken from another tenant's page still shows only the tenant's own.
    assert ids(await store.list_audit("t-a", b[1].id, 10)) == newest_first(a)
    # The admin sees every tenant's and the cluster-wide ones, newest first.
    assert ids(await store.list_audit(None, "", 10)) == newest_first(made)


async def test_entries_come_in_keyset_pages_newest_first(store: Store) -> None:
    entries = [entry("t-a", "tasks.retry", at=NOW + i) for i in range(7)]
    await store.record_audit(entries)

    pages: list[list[str]] = []
    before = ""
    while page := await store.list_audit("t-a", before, 3):
        pages.append(ids(page))
        before = page[-1].id

    order = newest_first(entries)
    assert pages == [order[:3], order[3:6], order[6:]]
    assert ids(await store.list_audit(None, order[1], 2)) == order[2:4]


async def test_an_action_filter_keeps_only_that_action(store: Store) -> None:
    made = [
        entry("t-a", "tasks.cancel"), entry("t-a", "dead.retry"), entry("t-a", "tasks.cancel"),
        entry("t-b", "tasks.cancel"), entry("t-a", "tasks.cancel"),
    ]  # fmt: skip
    await store.record_audit(made)
    cancels = newest_first([made[4], made[2], made[0]])

    assert ids(await store.list_audit("t-a", "", 10, action="tasks.cancel")) == cancels
    assert ids(await store.list_audit("t-a", "", 2, action="tasks.cancel")) == cancels[:2]
    assert ids(await store.list_audit("t-a", cancels[1], 10, action="tasks.cancel")) == [cancels[2]]
    assert ids(await store.list_audit(None, "", 10, action="dead.retry")) == [made[1].id]
    everyones = await store.list_audit(None, "", 10, action="tasks.cancel")
    assert ids(everyones) == newest_first([made[0], made[2], made[3], made[4]])


async def test_purge_deletes_entries_recorded_before_the_cutoff_oldest_first(
    store: Store,
) -> None:
    old = [entry("t-a", "tasks.cancel", at=NOW + i) for i in range(5)]
    kept = [entry("t-b", "key.create", at=NOW + 10), entry(None, "tenant.create", at=NOW + 20)]
    await store.record_audit([*old, *kept])

    assert await store.purge_audit(NOW + 10, 3) == 3  # the three oldest
    assert ids(await store.list_audit("t-a", "", 10)) == newest_first(old[3:])
    assert await store.purge_audit(NOW + 10, 100) == 2  # the rest; at the cutoff: kept
    assert await store.purge_audit(NOW + 10, 100) == 0
    assert ids(await store.list_audit(None, "", 10)) == newest_first(kept)
