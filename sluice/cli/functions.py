"""`sluice functions ls|get|set|reset`: a tenant's functions and their config; what
`set` sets is the operator's and wins over the code's until `reset`."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from ..contract import Function, FunctionConfig, FunctionSettings
from ..errors import RemoteError
from .output import (
    AsJson,
    Format,
    Key,
    Output,
    Profile,
    Url,
    connect,
    console,
    machine_output,
    new_table,
    print_data,
    print_table,
)

functions_cli = typer.Typer(no_args_is_help=True, help="Functions and their config.")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def _table(functions: list[FunctionConfig]) -> Table:
    table = new_table("name", "max attempts", "timeout", "priority", "ttl", "backoff", "limits",
                      "tags", whole=("name",))  # fmt: skip
    for f in functions:
        backoff = f"{f.retry.base_s:g}s..{f.retry.cap_s:g}s"
        limits = []
        if f.rate is not None:
            limits.append(f"{f.rate:g}/s burst {f.burst}")
        if f.max_concurrency is not None:
            limits.append(f"{f.max_concurrency} at once")
        if f.memory_mb is not None:
            limits.append(f"{f.memory_mb} MiB each")
        if f.cpu is not None:
            limits.append(f"{f.cpu:g} cpu each")
        table.add_row(f.name, str(f.retry.max_attempts), _seconds(f.timeout_s), str(f.priority),
                      _seconds(f.ttl_s), backoff, ", ".join(limits) or "-",
                      ",".join(f.tags))  # fmt: skip
    return table


def _show(functions: list[FunctionConfig], machine: Format | None) -> None:
    if machine:
        print_data(functions, machine)
    else:
        print_table(_table(functions))


@functions_cli.command("ls")
def ls(
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Every function of the tenant."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        found = client.functions.list()
    _show(found, machine)


@functions_cli.command("get")
def get(
    name: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """One function's config (exit 3 if there is none)."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        function = client.functions.get(name)
    # The config as `set` prints it: the adaptive state a read adds is not config.
    config = FunctionConfig(**{f: getattr(function, f) for f in FunctionConfig.__struct_fields__})
    if machine:
        print_data(config, machine)
    else:
        _show([config], machine)
        mine = sorted(f for f, source in function.sources.items() if source == "operator")
        if mine:
            console.print(f"set by the operator (reset undoes it): {', '.join(mine)}")


@functions_cli.command("set")
def set_(
    name: str,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before dead (1-1000).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds an attempt may run.")] = None,
    priority: Annotated[int | None, typer.Option(help="Default priority, 0-9, 9 first.")] = None,
    ttl: Annotated[float | None, typer.Option(help="Seconds a task may wait to start.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag (repeatable; replaces).")] = None,
    backoff_base: Annotated[float | None, typer.Option(help="First retry delay (s).")] = None,
    backoff_cap: Annotated[float | None, typer.Option(help="Longest retry delay (s).")] = None,
    max_retry_duration: Annotated[
        float | None, typer.Option(help="Seconds after which a failing task stops retrying.")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Most starts per second (cluster).")] = None,
    burst: Annotated[int | None, typer.Option(help="Starts allowed at once on top.")] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(help="Most running at once (cluster).")
    ] = None,
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Create a function or change its config; options left out keep their value."""
    machine = machine_output(output, as_json)
    retry = {"max_attempts": max_attempts, "base_s": backoff_base, "cap_s": backoff_cap,
             "max_retry_duration_s": max_retry_duration}  # fmt: skip
    fields = {"timeout_s": timeout, "priority": priority, "ttl_s": ttl, "tags": tag,
              "rate": rate, "burst": burst, "max_concurrency": max_concurrency}  # fmt: skip
    with connect(url, api_key, profile, as_json=machine) as client:
        current: Function
        try:
            current = client.functions.get(name)
        except RemoteError as exc:
            if exc.status != 404:
                raise
            current = Function(name)
        # PUT replaces the operator's settings: keep the ones already set, add what was
        # asked; the other fields keep following the code.
        read: dict[str, Any] = msgspec.to_builtins(current)
        settings = {
            field: read[field]
            for field in FunctionSettings.__struct_fields__
            if current.sources.get(field) == "operator"
        }
        asked_retry = {k: v for k, v in retry.items() if v is not None}
        if asked_retry:
            settings["retry"] = {**read["retry"], **asked_retry}
        settings.update({k: v for k, v in fields.items() if v is not None})
        function = client.functions.set(name, settings)
    if machine:
        print_data(function, machine)
    else:
        _show([function], machine)


@functions_cli.command("reset")
def reset(
    name: str,
    field: Annotated[str, typer.Argument(help="The setting: timeout_s, rate, retry, ...")],
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Return a setting to the code's value (the operator's setting is dropped)."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        function = client.functions.reset(name, field)
    if machine:
        print_data(function, machine)
    else:
        _show([function], machine)
