"""`sluice tenants ls|create` and `sluice keys ls|create|revoke`, through the HTTP admin API.

They take the admin key (`--admin-key`, a profile's `admin_key`, or SLUICE_ADMIN_KEY).
A tenant is named by its id or its name.
"""

from __future__ import annotations

import typer
from rich.table import Table

from ..client import Client
from .output import (
    AdminKey,
    AsJson,
    Format,
    Output,
    Profile,
    Url,
    connect,
    console,
    print_json,
    wants_json,
    when,
)

tenants_cli = typer.Typer(no_args_is_help=True, help="Tenants (admin key).")
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
    machine = wants_json(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        found = client.tenants.list()
    if machine:
        print_json(found)
        return
    table = Table("id", "name", "created")
    for t in found:
        table.add_row(t.id, t.name, when(t.created_at))
    console.print(table)


@tenants_cli.command("create")
def tenants_create(
    name: str, url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Create a tenant and print its first API key (shown this once)."""
    machine = wants_json(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        made = client.tenants.create(name)
    if machine:
        print_json(made)
    else:
        typer.echo(f"tenant {made.name} ({made.id})\napi key {made.api_key}  (shown only now)")


@keys_cli.command("ls")
def keys_ls(
    tenant: str, url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A tenant's keys: ids and prefixes, never the keys."""
    machine = wants_json(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        found = client.keys.list(_tenant_id(client, tenant))
    if machine:
        print_json(found)
        return
    table = Table("id", "prefix", "created", "revoked")
    for k in found:
        table.add_row(k.id, k.prefix, when(k.created_at), when(k.revoked_at))
    console.print(table)


@keys_cli.command("create")
def keys_create(
    tenant: str, url: Url = None, admin_key: AdminKey = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A new key for a tenant (shown this once)."""
    machine = wants_json(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        made = client.keys.create(_tenant_id(client, tenant))
    if machine:
        print_json(made)
    else:
        typer.echo(f"key {made.id}\napi key {made.api_key}  (shown only now)")


@keys_cli.command("revoke")
def keys_revoke(
    tenant: str, key_id: str, url: Url = None, admin_key: AdminKey = None,
    profile: Profile = None, output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Revoke a key: it stops working at once."""
    machine = wants_json(output, as_json)
    with connect(url, admin_key, profile, admin=True, as_json=machine) as client:
        client.keys.revoke(_tenant_id(client, tenant), key_id)
    if machine:
        print_json({"id": key_id, "revoked": True})
    else:
        typer.echo(f"revoked {key_id}")
