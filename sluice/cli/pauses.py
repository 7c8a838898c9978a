"""`sluice pause`, `sluice resume PAUSE_ID` and `sluice pauses ls`: pause and resume the
waiting tasks a selector (function, tags, priority) matches."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..contract import Pause, Selector
from .output import (
    USAGE,
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

pauses_cli = typer.Typer(no_args_is_help=True, help="Pauses: list them (see pause, resume).")

Functions = Annotated[list[str] | None, typer.Option("--function", help="Function (repeatable).")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable; all must match).")]
PrioMin = Annotated[int | None, typer.Option(help="Priority at least (0-9).")]
PrioMax = Annotated[int | None, typer.Option(help="Priority at most (0-9).")]
MIN_PRIORITY, MAX_PRIORITY = 0, 9  # the API's range (docs/api.md), shown for an open end


def register(cli: typer.Typer) -> None:
    cli.command()(pause)
    cli.command()(resume)
    cli.add_typer(pauses_cli, name="pauses")


def describe(selector: Selector) -> str:
    parts = []
    if selector.function:
        parts.append(f"function {','.join(selector.function)}")
    if selector.tags:
        parts.append(f"tags {','.join(selector.tags)}")
    if selector.priority_min is not None or selector.priority_max is not None:
        low = MIN_PRIORITY if selector.priority_min is None else selector.priority_min
        high = MAX_PRIORITY if selector.priority_max is None else selector.priority_max
        parts.append(f"priority {low}-{high}")
    return "  ".join(parts)


def pause(
    function: Functions = None, tag: Tags = None, priority_min: PrioMin = None,
    priority_max: PrioMax = None, url: Url = None, api_key: Key = None,
    profile: Profile = None, output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Hold the waiting and new tasks a selector matches, until `sluice resume`.

    Running tasks finish. Prints the pause id and how many waiting tasks it held."""
    if not function and not tag and priority_min is None and priority_max is None:
        # Refused here, not by the server, so that a forgotten option never reads as
        # "pause everything".
        raise fail("give a selector: --function, --tag, --priority-min or --priority-max",
                   USAGE)  # fmt: skip
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        made = client.pauses.create(function=function, tags=tag, priority_min=priority_min,
                                    priority_max=priority_max)  # fmt: skip
    if machine:
        print_data(made, machine)
    else:
        typer.echo(f"{made.id} held {made.held} waiting tasks ({describe(made.selector)})")


def resume(
    pause_id: Annotated[str, typer.Argument(help="The id `sluice pause` printed.")],
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Lift a pause; prints how many tasks it released (exit 3 if there is none).

    The tasks it held that no other pause holds go back in their fair order."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        released = client.pauses.delete(pause_id)
    if machine:
        print_data({"id": pause_id, "released": released}, machine)
    else:
        typer.echo(f"{pause_id} lifted: released {released}")


def _table(pauses: list[Pause]) -> Table:
    table = new_table("id", "selector", "created", whole=("id", "created"))
    for p in pauses:
        table.add_row(p.id, describe(p.selector), when(p.created_at))
    return table


@pauses_cli.command("ls")
def ls(
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Every pause of the tenant; created in local time."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = client.pauses.list()
    if machine:
        print_data(found, machine)
    else:
        print_table(_table(found))
