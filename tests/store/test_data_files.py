"""The SQLite store's files hold webhook and target secrets and key hashes: the folders it
makes and the database with its -wal and -shm files are the owner's only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.contract import FunctionConfig
from sluice.store.sqlite import SQLiteStore
from tests.store.test_contract import NOW


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual 022, under which files are made readable by everyone."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
async def test_the_database_its_wal_and_shm_and_new_folders_are_owner_only(
    tmp_path: Path,
) -> None:
    existing = tmp_path / "srv"
    existing.mkdir(mode=0o755)
    path = existing / "var" / "sluice" / "sluice.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        tenant = await store.create_tenant("acme", NOW)
        await store.upsert_functions(tenant.id, [FunctionConfig(name="send")], NOW)
        assert await store.get_tenant(tenant.id) == tenant  # a read: the -shm is in use
        files = [path, path.with_name("sluice.db-wal"), path.with_name("sluice.db-shm")]

        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(path.parent) == mode(path.parent.parent) == 0o700
        assert mode(existing) == 0o755  # a folder it did not make is left as it was
    finally:
        await store.close()


@pytest.mark.usefixtures("permissive_umask")
async def test_an_existing_database_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "sluice.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.create_tenant("acme", NOW)

        assert mode(path) == 0o640
    finally:
        await store.close()
