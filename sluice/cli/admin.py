"""`sluice tenants ls|create` and `sluice keys ls|create|revoke`, through the HTTP admin API
(`sluice tenant` is the same command).

They take the admin key (`--admin-key`, a profile's `admin_key`, or SLUICE_ADMIN_KEY).
A tenant is named by its id or its name. `tenants create` with `--database`, or with no
admin key anywhere, writes the database directly instead: the first tenant, before any
server runs.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from ..client import Client
from ..contract.tenants import NewTenant
from .output import (
    USAGE,
    AdminKey,
    AsJson,
    Format,
    Output,
    Profile,
    Url,
    connect,
    database_failure,
    fail,
    machine_output,
    need_server,
    new_table,
    print_data,
    print_table,
    when,
)
from .profiles import ProfileError, resolve

tenants_cli = typer.Typer(
    no_args_is_help=True, help="Tenants (admin key; `tenant` is the same command)."
)
Database = Annotated[
    str | None,
    typer.Option(help="Write this database directly (sqlite:///PATH or postgresql://...)."),
]
keys_cli = typer.Typer(no_args_is_help=True, help="A tenant's API keys (admin key).")


def _tenant_id(client: Client, tenant: str) -> str:
    """The id of the tenant named by id or name (an unknown one is left for a 404)."""
    for t in client.tenants.list():
        if tenant in (t.id, t.name):
            return t.id
    return tenant


@tenants_cli.command("ls")
def tenants_ls(
    url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Every tenant."""
    machine = machine_output(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        found = client.tenants.list()
    if machine:
        print_data(found, machine)
        return
    table = new_table("id", "name", "created", whole=("id", "name"))
    for t in found:
        table.add_row(t.id, t.name, when(t.created_at))
    print_table(table)


@tenants_cli.command("create")
def tenants_create(
    name: str, url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    database: Database = None, output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Create a tenant and print its first API key (shown this once).

    Through the server's API with the admin key; with --database, or when no admin key
    is set anywhere, straight into the database (SLUICE_DATABASE), for the first tenant
    before any server runs."""
    machine = machine_output(output, as_json)
    if database is not None or not _admin_key_known(url, admin_key, profile):
        made = _create_in_database(name, database)
    else:
        with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
            made = client.tenants.create(name)
    if machine:
        print_data(made, machine)
    else:
        typer.echo(f"tenant {made.name} ({made.id})\napi key {made.api_key}  (shown only now)")


def _admin_key_known(url: str | None, admin_key: str | None, profile: str | None) -> bool:
    try:
        return (
            resolve(os.environ, url=url, key=admin_key, profile=profile, admin=True).key is not None
        )
    except ProfileError as exc:
        raise fail(str(exc), USAGE) from exc


def _create_in_database(name: str, database: str | None) -> NewTenant:
    """The operator's way in: the tenant and its first key written by this process."""
    need_server()
    from ..config import Settings
    from ..engine.node import Node
    from ..errors import InvalidRequest
    from ..store import database_errors

    try:
        settings = Settings.from_env(os.environ, database=database)
    except InvalidRequest as exc:
        raise fail(exc.message, USAGE) from exc

    async def create() -> NewTenant:
        node = Node(settings)
        await node.store.open()
        try:
            tenant = await node.tenants.create(name)
            key = await node.tenants.create_key(tenant.id)
        finally:
            await node.store.close()
        return NewTenant(id=tenant.id, name=tenant.name, api_key=key)

    try:
        return asyncio.run(create())
    except database_errors(settings) as exc:
        raise database_failure(exc, settings.database) from exc


@keys_cli.command("ls")
def keys_ls(
    tenant: str, url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A tenant's keys: ids and prefixes, never the keys."""
    machine = machine_output(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        found = client.keys.list(_tenant_id(client, tenant))
    if machine:
        print_data(found, machine)
        return
    table = new_table("id", "prefix", "created", "revoked", whole=("id", "prefix"))
    for k in found:
        table.add_row(k.id, k.prefix, when(k.created_at), when(k.revoked_at))
    print_table(table)


@keys_cli.command("create")
def keys_create(
    tenant: str, url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A new key for a tenant (shown this once)."""
    machine = machine_output(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        made = client.keys.create(_tenant_id(client, tenant))
    if machine:
        print_data(made, machine)
    else:
        typer.echo(f"key {made.id}\napi key {made.api_key}  (shown only now)")


@keys_cli.command("revoke")
def keys_revoke(
    tenant: str, key_id: str, url: Url = None, admin_key: AdminKey = None,
    profile: Profile = None, output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Revoke a key: it stops working at once."""
    machine = machine_output(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        client.keys.revoke(_tenant_id(client, tenant), key_id)
    if machine:
        print_data({"id": key_id, "revoked": True}, machine)
    else:
        typer.echo(f"revoked {key_id}")
