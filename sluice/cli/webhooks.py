"""`sluice webhooks ls|enable|secret|rotate-secret` and `sluice notifications TASK_ID`:
the tenant's webhook receivers (and their state), re-enabling one disabled for failing,
the signing secret of per-task webhooks, and a task's deliveries with every try
(docs/notifications.md)."""

from __future__ import annotations

import typer
from rich.table import Table

from ..contract import Delivery, WebhookReceiver
from .output import (
    NOT_FOUND,
    AsJson,
    Format,
    Key,
    Output,
    Profile,
    Url,
    connect,
    fail,
    machine_output,
    new_table,
    print_data,
    print_table,
    when,
)

webhooks_cli = typer.Typer(
    no_args_is_help=True,
    help="Webhook receivers: their state, re-enabling, the per-task signing secret.",
)


def _receivers(found: list[WebhookReceiver]) -> Table:
    table = new_table("id", "url", "functions", "state", "retrying", "since", "reason",
                      whole=("id", "url"))  # fmt: skip
    for w in found:
        table.add_row(w.id, w.url, ",".join(w.functions) or "-",
                      "enabled" if w.enabled else "disabled", str(w.retrying),
                      when(w.disabled_at) or "-", w.reason or "-")  # fmt: skip
    return table


@webhooks_cli.command("ls")
def ls(
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """The tenant's webhook receivers: enabled or disabled (when, why), and how many of
    their deliveries are being retried."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = client.webhooks.list()
    if machine:
        print_data(found, machine)
    else:
        print_table(_receivers(found))


webhooks_cli.command("list", help="The same as `sluice webhooks ls`.")(ls)


@webhooks_cli.command("enable")
def enable(
    receiver: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Enable a receiver disabled for failing (by its URL or id): what waited for it is
    delivered (exit 3 if the tenant has no such receiver)."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = next((w for w in client.webhooks.list() if receiver in (w.url, w.id)), None)
        if found is None:
            raise fail(f"no webhook receiver {receiver!r} (see `sluice webhooks ls`)", NOT_FOUND)
        enabled = client.webhooks.enable(found.id)
    if machine:
        print_data(enabled, machine)
    else:
        typer.echo(f"{enabled.url} enabled")


@webhooks_cli.command("secret")
def secret(
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Whether the tenant has a signing secret for per-task webhooks (never its value)."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = client.webhooks.secret()
    if machine:
        print_data(found, machine)
    elif found.keys:
        typer.echo(f"{found.keys} signing keys, rotated {when(found.rotated_at)}")
    else:
        typer.echo("no signing secret yet: `sluice webhooks rotate-secret` makes one")


@webhooks_cli.command("rotate-secret")
def rotate_secret(
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Make a new signing secret for per-task webhooks and print it (this once); the one
    before it keeps signing until the next rotation."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        made = client.webhooks.rotate_secret()
    if machine:
        print_data(made, machine)
    else:
        typer.echo(made.secret)


def _deliveries(found: list[Delivery]) -> Table:
    table = new_table("id", "event", "url", "state", "try", "at", "status", "took",
                      "answer", whole=("id", "url"))  # fmt: skip
    for d in found:
        tries = d.log or []
        if not tries:
            table.add_row(d.id, d.event, d.url, d.state, "-", "-", "-", "-", "-")
        for i, t in enumerate(tries, start=d.tries - len(tries) + 1):
            status = "-" if t.status is None else str(t.status)
            table.add_row(d.id, d.event, d.url, d.state, str(i), when(t.at), status,
                          f"{t.duration_s * 1000:.0f} ms", t.answer or t.error or "-")  # fmt: skip
    return table


def notifications(
    task_id: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A task's notifications (webhooks, destinations) in order, each try on a row: when,
    the HTTP status or the error, how long, the answer's start."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = client.tasks.notifications(task_id)
    if machine:
        print_data(found, machine)
    else:
        print_table(_deliveries(found))


def register(cli: typer.Typer) -> None:
    cli.add_typer(webhooks_cli, name="webhooks")
    cli.command("notifications")(notifications)
