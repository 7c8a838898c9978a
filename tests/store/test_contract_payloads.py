"""The store contract for large payloads, on every backend: a payload of any size comes
back whole from a claim, a read, a direct dispatch, a keyed submit and a cron fire's
insert; on SQLite one past INLINE_PAYLOAD_BYTES is written once, beside its task, so
a claim or a finish does not write it again, and it goes when its task is deleted."""

from __future__ import annotations

import sqlite3

import msgspec

from sluice.store import ClaimRequest, Store
from sluice.store.sqlite.tasks import INLINE_PAYLOAD_BYTES
from tests.store.test_contract import FN, LEASE_S, NOW, new_task, submit

BIG = b'{"args": ["' + b"x" * 65_536 + b'"], "kwargs": {}}'
SMALL = b'{"args": [1], "kwargs": {}}'


def with_payload(payload: bytes, **fields: object) -> object:
    return msgspec.structs.replace(new_task(**fields), payload=payload)  # type: ignore[arg-type]


async def test_large_and_small_payloads_come_back_whole(store: Store) -> None:
    tenant = (await store.create_tenant("acme", NOW)).id
    big, small = await submit(store, tenant, with_payload(BIG), with_payload(SMALL))  # type: ignore[arg-type]
    keyed = msgspec.structs.replace(with_payload(BIG, key="k1"))  # type: ignore[type-var]
    (kept,) = await store.submit_tasks(tenant, [keyed], NOW)  # type: ignore[list-item]
    again = msgspec.structs.replace(with_payload(BIG, key="k1"))  # type: ignore[type-var]
    (held,) = await store.submit_tasks(tenant, [again], NOW)  # type: ignore[list-item]
    assert kept.created and not held.created and held.id == kept.id

    (claimed,) = await store.claim_tasks([ClaimRequest(tenant, "w1", (FN,), 10)], NOW, LEASE_S)
    assert {t.id: t.payload for t in claimed} == {big: BIG, small: SMALL, kept.id: BIG}
    for task_id, payload in ((big, BIG), (small, SMALL), (kept.id, BIG)):
        record = await store.get_task(tenant, task_id)
        assert record is not None and record.payload == payload

    leased = with_payload(BIG)
    got = await store.submit_leased(tenant, [leased], NOW, "w1", [leased.id], LEASE_S)  # type: ignore[list-item, attr-defined]
    assert [t.payload for t in got] == [BIG]

    (waiting,) = await submit(store, tenant, with_payload(BIG))  # type: ignore[arg-type]
    assert await store.delete_tasks(tenant, [waiting]) == [waiting]  # not running: deletable
    assert await store.get_task(tenant, waiting) is None


async def test_sqlite_writes_a_large_payload_once_and_deletes_it_with_its_task(
    tmp_path: object,
) -> None:
    from pathlib import Path

    from sluice.store.sqlite import SQLiteStore

    path = Path(str(tmp_path)) / "p.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        tenant = (await store.create_tenant("acme", NOW)).id
        big, small = await submit(store, tenant, with_payload(BIG), with_payload(SMALL))  # type: ignore[arg-type]
        await store.claim_tasks([ClaimRequest(tenant, "w1", (FN,), 10)], NOW, LEASE_S)
        with sqlite3.connect(path) as db:
            inline = dict(db.execute("SELECT id, length(payload) FROM tasks").fetchall())
            beside = dict(db.execute("SELECT id, length(payload) FROM payloads").fetchall())
        assert inline == {big: 0, small: len(SMALL)}  # the claim rewrote no 64 KiB
        assert beside == {big: len(BIG)} and len(SMALL) <= INLINE_PAYLOAD_BYTES < len(BIG)
        (waiting,) = await submit(store, tenant, with_payload(BIG))  # type: ignore[arg-type]
        assert await store.delete_tasks(tenant, [waiting]) == [waiting]
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT id FROM payloads").fetchall() == [(big,)]  # only its own
    finally:
        await store.close()
