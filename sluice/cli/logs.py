"""`sluice logs TASK [--follow]`: a task's captured log lines, every attempt's in order.

Lines print as `time LEVEL [attempt N] logger: message`; with --output json, one JSON
object a line (JSON Lines), so a pipe can filter them as they come.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated

import typer

from ..contract import LogEntry
from ..logs import escape
from .output import AsJson, Format, Key, Output, Profile, Url, connect, machine_output, print_data

Follow = Annotated[
    bool, typer.Option("--follow", "-f", help="Print lines as they come, until the task ends.")
]
Attempt = Annotated[int | None, typer.Option(help="Only this attempt's lines.")]
Level = Annotated[
    str | None, typer.Option(help="debug, info, warning, error or critical: it and above.")
]
Grep = Annotated[str | None, typer.Option("--grep", help="Only lines holding this text.")]


def line(entry: LogEntry) -> str:
    """One line for a terminal: control characters escaped, a traceback kept on its lines."""
    at = dt.datetime.fromtimestamp(entry.at).strftime("%H:%M:%S.%f")[:-3]
    where = entry.logger if entry.stream == "log" else entry.stream
    text = escape(entry.message, keep_newlines=True)
    if entry.stream == "marker":
        return f"{at} {'':8} [attempt {entry.attempt}] {text}"
    return f"{at} {entry.level:<8} [attempt {entry.attempt}] {escape(where)}: {text}"


def logs(
    task_id: str, follow: Follow = False, attempt: Attempt = None, level: Level = None,
    grep: Grep = None, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A task's log lines (its handler's logging records, stdout and stderr)."""
    machine = machine_output(output, as_json)
    filters = {"attempt": attempt, "level": level, "q": grep}
    with connect(url, api_key, profile, as_json=machine) as client:
        lines: Iterator[LogEntry] = (
            client.tasks.follow_logs(task_id, **filters)
            if follow
            else client.tasks.logs(task_id, **filters)
        )
        for entry in lines:
            if machine:
                print_data(entry, machine)
            else:
                typer.echo(line(entry))


def register(cli: typer.Typer) -> None:
    cli.command()(logs)
