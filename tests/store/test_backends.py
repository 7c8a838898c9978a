"""The shape of the store: both backends have the same modules, each protocol noun is
implemented in the module of that noun in both, with the protocol's parameters; nothing
above the store names a backend, and what differs between backends is asked of the store."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.config import Settings
from sluice.store import base, migrate, open_bus, open_store
from sluice.store.postgres import PostgresStore
from sluice.store.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from sluice.store.sqlite import SQLiteStore
from sluice.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests import pg

PACKAGE = Path(__file__).parents[2] / "sluice"
STORE = PACKAGE / "store"
BACKENDS = {"sqlite": SQLiteStore, "postgres": PostgresStore}
BACKEND_MODULES = ("store.sqlite", "store.postgres")
# Each part of the protocol, and the module that implements it in every backend.
NOUNS = {
    base.TenantStore: "tenants",
    base.FunctionStore: "functions",
    base.TaskStore: "tasks",
    base.AttemptStore: "attempts",
    base.FairnessStore: "fairness",
    base.LimitStore: "limits",
    base.LeaseStore: "leases",
    base.ScheduleStore: "schedules",
    base.PauseStore: "pauses",
    base.SubscriptionStore: "subscriptions",
    base.QuotaStore: "quotas",
    base.HistoryStore: "history",
    base.LogStore: "logs",
    base.AuditStore: "audit",
    base.RollupStore: "rollup",
    base.NotificationStore: "notifications",
}
# A module only one backend has: PostgreSQL's cluster bus (LISTEN/NOTIFY). SQLite is one
# node, whose bus is store/bus.py's LocalBus, which carries nothing. SQLite's multi-row
# INSERT (bulk.py): PostgreSQL inserts a batch with one statement over arrays already.
ONLY_IN_ONE_BACKEND = {("postgres", "bus"), ("sqlite", "bulk")}


def methods(part: type) -> list[str]:
    return sorted(n for n, v in vars(part).items() if inspect.iscoroutinefunction(v))


def test_both_backends_have_the_same_modules() -> None:
    modules = {name: {p.stem for p in (STORE / name).glob("*.py")} for name in BACKENDS}
    only = {
        (name, stem)
        for name in BACKENDS
        for other in BACKENDS
        if other != name
        for stem in modules[name] - modules[other]
    }

    assert only == ONLY_IN_ONE_BACKEND


def test_the_store_protocol_is_made_of_its_nouns() -> None:
    parts = [b for b in base.Store.__bases__ if b.__name__ != "Protocol"]

    assert set(parts) == set(NOUNS)
    assert all(methods(part) for part in NOUNS)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_method_lives_in_the_module_of_its_noun(backend: str) -> None:
    store = BACKENDS[backend]
    misplaced = [
        (name, getattr(store, name).__module__)
        for part, noun in NOUNS.items()
        for name in methods(part)
        if getattr(store, name).__module__ != f"sluice.store.{backend}.{noun}"
    ]

    assert misplaced == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_method_takes_the_protocols_parameters(backend: str) -> None:
    def shape(function: Callable[..., object]) -> list[tuple[str, object, object]]:
        params = inspect.signature(function).parameters.values()
        return [(p.name, p.kind, p.default) for p in params]

    store = BACKENDS[backend]
    differ = [
        name
        for part in NOUNS
        for name in methods(part)
        if shape(getattr(store, name)) != shape(getattr(part, name))
    ]

    assert differ == []


def _names_a_backend(node: ast.AST) -> bool:
    """An import of a backend's module, or a test of the settings for one."""
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
    elif isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        return isinstance(node, ast.Attribute) and node.attr == "is_postgres"
    return any(f".{backend}." in f".{t}." for t in targets for backend in BACKEND_MODULES)


def test_nothing_above_the_store_names_a_backend() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents or path == PACKAGE / "config.py":  # config defines it
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if _names_a_backend(node):
                found.append(f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}")

    assert found == []


def test_the_backend_check_finds_what_it_looks_for() -> None:
    named = [
        "from ..store.postgres import migrate",
        "from ..store import sqlite",
        "import sluice.store.sqlite",
        "x = settings.is_postgres",
    ]
    plain = ["from ..store import Store, migrate", "from ..store.bus import Bus, LocalBus"]

    for source in named:
        assert any(_names_a_backend(n) for n in ast.walk(ast.parse(source))), source
    for source in plain:
        assert not any(_names_a_backend(n) for n in ast.walk(ast.parse(source))), source


def test_each_backend_says_what_it_is_and_whether_its_node_is_alone(tmp_path: Path) -> None:
    lite = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'sluice.db'}")
    cluster = Settings.from_env({}, database="postgresql://nobody@127.0.0.1:1/none")

    assert (open_store(lite).backend, open_bus(lite, "n1").local) == ("sqlite", True)
    assert (open_store(cluster).backend, open_bus(cluster, "n1").local) == ("postgres", False)


async def test_migrate_brings_a_new_sqlite_file_to_the_latest_version(tmp_path: Path) -> None:
    settings = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'new' / 'sluice.db'}")

    assert await migrate(settings) == SQLITE_MIGRATIONS[-1][0]
    assert await migrate(settings) == SQLITE_MIGRATIONS[-1][0]  # again: nothing to do


async def test_migrate_brings_a_postgres_database_to_the_latest_version() -> None:
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        settings = Settings.from_env({}, database=dsn)

        assert await migrate(settings) == POSTGRES_MIGRATIONS[-1][0]
