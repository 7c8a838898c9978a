"""`sluice schedules ls|get|set|pause|resume|delete`: cron schedules that submit tasks."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from ..client import Client
from ..contract import Schedule
from ..errors import RemoteError
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

schedules_cli = typer.Typer(no_args_is_help=True, help="Cron schedules that submit tasks.")


class Catchup(enum.StrEnum):
    all = "all"
    latest = "latest"
    none = "none"


def _table(schedules: list[Schedule]) -> Table:
    whole = ("name", "function", "cron", "timezone", "next fire")
    table = new_table("name", "function", "cron", "timezone", "paused", "next fire", "fired",
                      "skipped", whole=whole)  # fmt: skip
    for s in schedules:
        table.add_row(s.name, s.function, s.cron, s.timezone, "yes" if s.paused else "no",
                      when(s.next_fire_at) or "-", str(s.fired), str(s.skipped))  # fmt: skip
    return table


def _show(schedule: Schedule, machine: Format | None) -> None:
    if machine:
        print_data(schedule, machine)
        return
    print_table(_table([schedule]))
    tags = ",".join(schedule.tags or []) or "-"
    priority = "-" if schedule.priority is None else str(schedule.priority)
    typer.echo(f"args {json.dumps(schedule.args)}  kwargs {json.dumps(schedule.kwargs)}  "
               f"priority {priority}  tags {tags}  catchup {schedule.catchup} "
               f"(within {schedule.max_catchup_s:g}s)")  # fmt: skip


@schedules_cli.command("ls")
def ls(
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Every schedule of the tenant, by name; next fire in local time."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = client.schedules.list()
    if machine:
        print_data(found, machine)
    else:
        print_table(_table(found))


@schedules_cli.command("get")
def get(
    name: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """One schedule (exit 3 if there is none)."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        schedule = client.schedules.get(name)
    _show(schedule, machine)


def _json(value: str | None, option: str, kind: type) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise fail(f"{option} takes JSON ({exc})", USAGE) from exc
    if not isinstance(parsed, kind):
        raise fail(f"{option} takes a JSON {'array' if kind is list else 'object'}", USAGE)
    return parsed


def _current(client: Client, name: str) -> dict[str, Any]:
    """The schedule's spec as stored, or nothing if there is no such schedule."""
    try:
        schedule = client.schedules.get(name)
    except RemoteError as exc:
        if exc.status != 404:
            raise
        return {}
    fields = ("function", "cron", "timezone", "args", "kwargs", "priority", "tags",
              "catchup", "max_catchup_s")  # fmt: skip
    return {k: v for k, v in msgspec.structs.asdict(schedule).items() if k in fields}


@schedules_cli.command("set")
def set_(
    name: str,
    function: Annotated[str | None, typer.Option(help="The function each fire submits.")] = None,
    cron: Annotated[
        str | None, typer.Option(help='Five fields, or six with seconds first: "*/5 * * * *".')
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the cron (default UTC).")
    ] = None,
    args: Annotated[str | None, typer.Option(help="JSON array of positional arguments.")] = None,
    kwargs: Annotated[str | None, typer.Option(help="JSON object of keyword arguments.")] = None,
    priority: Annotated[int | None, typer.Option(help="Priority of its tasks, 0-9.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag (repeatable; replaces).")] = None,
    catchup: Annotated[
        Catchup | None, typer.Option(help="Missed fires to run: all, latest or none.")
    ] = None,
    max_catchup: Annotated[
        float | None, typer.Option(help="Seconds back a missed fire is still run.")
    ] = None,
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Create a schedule (with --function and --cron) or change only the options given."""
    machine = machine_output(output, as_json)
    given = {"function": function, "cron": cron, "timezone": timezone,
             "args": _json(args, "--args", list), "kwargs": _json(kwargs, "--kwargs", dict),
             "priority": priority, "tags": tag, "catchup": catchup and catchup.value,
             "max_catchup_s": max_catchup}  # fmt: skip
    with connect(url, api_key, profile, as_json=machine) as client:
        # PUT replaces the whole spec: read it, change what was asked, write it back.
        spec = _current(client, name)
        if not spec and (function is None or cron is None):
            raise fail(f"no schedule {name!r} yet: give --function and --cron", USAGE)
        schedule = client.schedules.set(name, {**spec, **_given(given)})
    _show(schedule, machine)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _verb(verb: str, doc: str) -> None:
    def command(
        name: str, url: Url = None, api_key: Key = None, profile: Profile = None,
        output: Output = Format.table, as_json: AsJson = False,
    ) -> None:  # fmt: skip
        machine = machine_output(output, as_json)
        with connect(url, api_key, profile, as_json=machine) as client:
            schedule = getattr(client.schedules, verb)(name)
        _show(schedule, machine)

    command.__doc__ = doc
    schedules_cli.command(verb)(command)


_verb("pause", "Stop a schedule firing (exit 3 if there is none).")
_verb("resume", "Fire again, from the first fire time after now; missed ones are not run.")


@schedules_cli.command("delete")
def delete(
    name: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Delete a schedule; the tasks it submitted stay (exit 3 if there is none)."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        client.schedules.delete(name)
    if machine:
        print_data({"name": name, "state": "deleted"}, machine)
    else:
        typer.echo(f"{name} deleted")
