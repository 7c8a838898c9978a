"""The producer's commands: submit, list, show, cancel, retry, delete, dead letters.

They speak to a server through the client (SLUICE_URL, SLUICE_API_KEY or .sluice/dev.json),
print tables for people and `--json` for scripts, and exit non-zero on an error.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from ..client import Client
from ..errors import RemoteError

console = Console()
Url = Annotated[str | None, typer.Option(help="Server URL (or SLUICE_URL).")]
Key = Annotated[str | None, typer.Option("--api-key", help="Tenant key (or SLUICE_API_KEY).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _when(at: float | None) -> str:
    return "" if at is None else dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def _client(url: str | None, api_key: str | None) -> Client:
    return Client(url, api_key)


def _fail(exc: RemoteError) -> typer.Exit:
    field = f" ({exc.field})" if exc.field else ""
    typer.echo(f"error {exc.status} {exc.code}{field}: {exc.message}", err=True)
    return typer.Exit(1)


def _print_json(value: Any) -> None:
    typer.echo(msgspec.json.encode(value).decode())


def register(cli: typer.Typer) -> None:
    @cli.command()
    def submit(
        function: str,
        args: Annotated[str, typer.Option(help="JSON array of positional arguments.")] = "[]",
        kwargs: Annotated[str, typer.Option(help="JSON object of keyword arguments.")] = "{}",
        delay: Annotated[float | None, typer.Option(help="Seconds from now.")] = None,
        priority: Annotated[int | None, typer.Option(help="0-9, 9 first.")] = None,
        key: Annotated[str | None, typer.Option(help="Deduplication key.")] = None,
        tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
        wait: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 0.0,
        url: Url = None,
        api_key: Key = None,
        as_json: AsJson = False,
    ) -> None:
        """Submit a task; with --wait, print its result."""
        try:
            spec = {"function": function, "args": json.loads(args), "kwargs": json.loads(kwargs),
                    "delay": delay, "priority": priority, "key": key, "tags": tag}  # fmt: skip
        except json.JSONDecodeError as exc:
            typer.echo(f"error: --args and --kwargs take JSON ({exc})", err=True)
            raise typer.Exit(2) from exc
        with _client(url, api_key) as client:
            try:
                outcome = client.submit({k: v for k, v in spec.items() if v is not None})
                task = client.wait(outcome.id, wait) if wait > 0 else None
            except RemoteError as exc:
                raise _fail(exc) from exc
        if as_json:
            _print_json(task if task is not None else outcome)
            return
        typer.echo(f"{outcome.id} {outcome.state}{'' if outcome.created else ' (existing)'}")
        if task is not None:
            shown = json.dumps(task.result) if task.result is not None else task.error
            typer.echo(f"{task.state}: {shown}")
            if task.state not in ("succeeded",):
                raise typer.Exit(1)

    @cli.command()
    def tasks(
        function: Annotated[list[str] | None, typer.Option(help="Function (repeatable).")] = None,
        state: Annotated[list[str] | None, typer.Option(help="State (repeatable).")] = None,
        tag: Annotated[list[str] | None, typer.Option(help="Tag, all must match.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
        url: Url = None,
        api_key: Key = None,
        as_json: AsJson = False,
    ) -> None:
        """List tasks, newest first, filtered by a selector."""
        with _client(url, api_key) as client:
            try:
                pages = client.tasks(function=function, state=state, tags=tag,
                                     page_size=min(limit, 1000))  # fmt: skip
                found = list(itertools.islice(pages, limit))
            except RemoteError as exc:
                raise _fail(exc) from exc
        if as_json:
            _print_json(found)
            return
        table = Table("id", "function", "state", "prio", "attempt", "created", "tags")
        for t in found:
            table.add_row(t.id, t.function, t.state, str(t.priority), str(t.attempt),
                          _when(t.created_at), ",".join(t.tags))  # fmt: skip
        console.print(table)

    @cli.command()
    def show(task_id: str, url: Url = None, api_key: Key = None, as_json: AsJson = False) -> None:
        """A task with its attempts and timeline."""
        with _client(url, api_key) as client:
            try:
                task = client.get(task_id)
            except RemoteError as exc:
                raise _fail(exc) from exc
        if as_json:
            _print_json(task)
            return
        typer.echo(f"{task.id}  {task.function}  {task.state}  attempt {task.attempt}/"
                   f"{task.max_attempts}  priority {task.priority}")  # fmt: skip
        typer.echo(f"args {json.dumps(task.args)}  kwargs {json.dumps(task.kwargs)}")
        if task.result is not None:
            typer.echo(f"result {json.dumps(task.result)}")
        if task.error:
            typer.echo(f"error {task.error}")
        table = Table("at", "stage", "attempt", "detail")
        for entry in task.timeline:
            table.add_row(
                _when(entry.at), entry.stage, str(entry.attempt or ""), entry.detail or ""
            )
        console.print(table)
        for a in task.attempts:
            if a.traceback:
                typer.echo(f"--- attempt {a.attempt} ({a.outcome}) on {a.worker}\n{a.traceback}")

    @cli.command()
    def cancel(
        task_id: Annotated[str | None, typer.Argument(help="One task; or use a selector.")] = None,
        function: Annotated[
            list[str] | None, typer.Option(help="Every task of a function.")
        ] = None,
        tag: Annotated[list[str] | None, typer.Option(help="Every task with these tags.")] = None,
        url: Url = None,
        api_key: Key = None,
    ) -> None:
        """Cancel a task, or every task a selector matches."""
        with _client(url, api_key) as client:
            try:
                if task_id:
                    typer.echo(f"{task_id} {client.cancel(task_id).state}")
                elif function or tag:
                    typer.echo(f"cancelled {client.cancel_where(function=function, tags=tag)}")
                else:
                    typer.echo("give a task id, or --function/--tag", err=True)
                    raise typer.Exit(2)
            except RemoteError as exc:
                raise _fail(exc) from exc

    @cli.command()
    def retry(
        task_id: Annotated[str | None, typer.Argument(help="One dead task; or a selector.")] = None,
        function: Annotated[
            list[str] | None, typer.Option(help="Dead tasks of a function.")
        ] = None,
        url: Url = None,
        api_key: Key = None,
    ) -> None:
        """Run a dead task again, or every dead task of a function."""
        with _client(url, api_key) as client:
            try:
                if task_id:
                    typer.echo(f"{task_id} {client.retry(task_id).state}")
                else:
                    count = client.retry_where(function=function, state="dead")
                    typer.echo(f"retried {count}")
            except RemoteError as exc:
                raise _fail(exc) from exc

    @cli.command()
    def dlq(
        function: Annotated[str | None, typer.Option(help="Only this function.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
        url: Url = None,
        api_key: Key = None,
        as_json: AsJson = False,
    ) -> None:
        """Dead letters: tasks that ended without success, oldest first."""
        with _client(url, api_key) as client:
            try:
                pages = client.dead(function=function, limit=min(limit, 1000))
                found = list(itertools.islice(pages, limit))
            except RemoteError as exc:
                raise _fail(exc) from exc
        if as_json:
            _print_json(found)
            return
        table = Table("id", "function", "attempts", "ended", "error")
        for t in found:
            table.add_row(t.id, t.function, str(t.attempt), _when(t.finished_at), t.error or "")
        console.print(table)
