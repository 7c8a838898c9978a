"""`sluice submit` and `sluice tasks ls|get|cancel|retry|delete`.

Bulk forms (`--where` and selector options) count the tasks they would change, print the
count, and ask before changing anything.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from ..client import Client
from ..contract import TaskProgress, TaskSummary
from ..errors import RemoteError
from .output import (
    NOT_FOUND,
    TASK_FAILED,
    TASK_PENDING,
    USAGE,
    AsJson,
    Format,
    Key,
    Output,
    Profile,
    Url,
    Yes,
    confirm,
    connect,
    counting,
    fail,
    machine_output,
    new_table,
    parse_time,
    print_data,
    print_table,
    when,
    working,
)

tasks_cli = typer.Typer(no_args_is_help=True, help="List, show, cancel, retry and delete tasks.")

ENDED = ("succeeded", "dead", "cancelled", "expired")
Functions = Annotated[list[str] | None, typer.Option("--function", help="Function (repeatable).")]
States = Annotated[list[str] | None, typer.Option("--state", help="State (repeatable).")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable; all must match).")]
PrioMin = Annotated[int | None, typer.Option(help="Priority at least (0-9).")]
PrioMax = Annotated[int | None, typer.Option(help="Priority at most (0-9).")]
After = Annotated[str | None, typer.Option(help="Created after: epoch, ISO 8601 or 2h (ago).")]
Before = Annotated[str | None, typer.Option(help="Created before: epoch, ISO 8601 or 2h (ago).")]
TaskKey = Annotated[str | None, typer.Option("--key", help="Deduplication key.")]
Where = Annotated[bool, typer.Option("--where", help="Act on every task the selector matches.")]
Ids = Annotated[list[str] | None, typer.Argument(help="Task ids; or --where and a selector.")]


def selector(
    function: list[str] | None, state: list[str] | None, tag: list[str] | None,
    priority_min: int | None, priority_max: int | None, created_after: str | None,
    created_before: str | None, key: str | None,
) -> dict[str, Any]:  # fmt: skip
    chosen = {
        "function": function, "state": state, "tags": tag, "priority_min": priority_min,
        "priority_max": priority_max, "key": key,
        "created_after": parse_time(created_after, "--created-after"),
        "created_before": parse_time(created_before, "--created-before"),
    }  # fmt: skip
    return {name: value for name, value in chosen.items() if value is not None}


def _task_table(found: list[TaskSummary]) -> Table:
    table = new_table("id", "function", "state", "prio", "attempt", "created", "tags",
                      whole=("id", "function", "state"))  # fmt: skip
    for t in found:
        table.add_row(t.id, t.function, t.state, str(t.priority), str(t.attempt),
                      when(t.created_at), ",".join(t.tags))  # fmt: skip
    return table


def register(cli: typer.Typer) -> None:
    cli.add_typer(tasks_cli, name="tasks")
    cli.command()(submit)


def submit(
    function: str,
    args: Annotated[str, typer.Option(help="JSON array of positional arguments.")] = "[]",
    kwargs: Annotated[str, typer.Option(help="JSON object of keyword arguments.")] = "{}",
    delay: Annotated[float | None, typer.Option(help="Seconds from now.")] = None,
    priority: Annotated[int | None, typer.Option(help="0-9, 9 first.")] = None,
    key: Annotated[str | None, typer.Option(help="Deduplication key.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    ttl: Annotated[float | None, typer.Option(help="Expire if not started within.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before dead.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 0.0,
    webhook: Annotated[
        list[str] | None,
        typer.Option(help="URL[,event,...]: a webhook of this task alone (repeatable, 3 at most)."),
    ] = None,
    url: Url = None,
    api_key: Key = None,
    profile: Profile = None,
    output: Output = Format.table,
    as_json: AsJson = False,
) -> None:
    """Submit a task; with --wait, wait for it and print its result."""
    try:
        spec = {"function": function, "args": json.loads(args), "kwargs": json.loads(kwargs),
                "delay": delay, "priority": priority, "key": key, "tags": tag,
                "ttl": ttl, "max_attempts": max_attempts,
                "webhooks": [task_webhook(w) for w in webhook] if webhook else None}  # fmt: skip
    except json.JSONDecodeError as exc:
        raise fail(f"--args and --kwargs take JSON ({exc})", USAGE) from exc
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        outcome = client.submit({k: v for k, v in spec.items() if v is not None})
        task = client.wait(outcome.id, wait) if wait > 0 else None
    if machine:
        print_data(task if task is not None else outcome, machine)
    else:
        typer.echo(f"{outcome.id} {outcome.state}{'' if outcome.created else ' (existing)'}")
        if task is not None:
            shown = json.dumps(task.result) if task.result is not None else task.error
            typer.echo(f"{task.state}: {shown}")
    if task is not None and task.state != "succeeded":
        raise typer.Exit(TASK_FAILED if task.state in ENDED else TASK_PENDING)


def task_webhook(option: str) -> dict[str, Any]:
    """`--webhook URL[,event,...]` as the submit's `{"url", "events"}` (the server checks
    the URL and the events)."""
    url, *events = [part.strip() for part in option.split(",")]
    if not url:
        raise fail("--webhook takes URL[,event,...]", USAGE)
    return {"url": url, "events": events} if events else {"url": url}


@tasks_cli.command("ls")
def ls(
    function: Functions = None, state: States = None, tag: Tags = None,
    priority_min: PrioMin = None, priority_max: PrioMax = None, created_after: After = None,
    created_before: Before = None, key: TaskKey = None,
    limit: Annotated[int, typer.Option(help="At most this many; 0 for all.", min=0)] = 50,
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """List tasks, newest first, filtered by a selector."""
    chosen = selector(function, state, tag, priority_min, priority_max, created_after,
                      created_before, key)  # fmt: skip
    machine = machine_output(output, as_json)
    page_size = min(limit or 1000, 1000)
    with connect(url, api_key, profile, as_json=machine) as client:
        pages = client.tasks.list(page_size=page_size, **chosen)
        found = list(itertools.islice(pages, limit or None))
    if machine:
        print_data(found, machine)
    else:
        print_table(_task_table(found))


@tasks_cli.command("get")
def get(
    task_id: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A task with its arguments, result, attempts and timeline."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        task = client.tasks.get(task_id)
    if machine:
        print_data(task, machine)
        return
    typer.echo(f"{task.id}  {task.function}  {task.state}  attempt {task.attempt}/"
               f"{task.max_attempts}  priority {task.priority}")  # fmt: skip
    typer.echo(f"args {json.dumps(task.args)}  kwargs {json.dumps(task.kwargs)}")
    if task.tags or task.key:
        typer.echo(f"tags {','.join(task.tags) or '-'}  key {task.key or '-'}")
    if task.result is not None:
        typer.echo(f"result {json.dumps(task.result)}")
    if task.error:
        typer.echo(f"error {task.error}")
    if task.progress is not None:
        typer.echo(f"progress {progress_text(task.progress)}")
    table = new_table("at", "stage", "attempt", "detail", whole=("at", "stage"))
    for entry in task.timeline:
        table.add_row(when(entry.at), entry.stage, str(entry.attempt or ""), entry.detail or "")
    print_table(table)
    for a in task.attempts:
        if a.traceback:
            typer.echo(f"--- attempt {a.attempt} ({a.outcome}) on {a.worker}\n{a.traceback}")


def progress_text(p: TaskProgress) -> str:
    """`1,200 of 1,800 (66%): message  (attempt 1, at 12:00:01)`."""
    text = f"{p.done:,g}"
    if p.total is not None:
        text += f" of {p.total:,g}"
        if p.total > 0:
            text += f" ({min(p.done, p.total) / p.total:.0%})"
    if p.message:
        text += f": {p.message}"
    return f"{text}  (attempt {p.attempt}, at {when(p.at)})"


# verb: (its past tense, which of the listed tasks it would change)
_VERBS: dict[str, tuple[str, Callable[[TaskSummary], bool]]] = {
    "cancel": ("cancelled", lambda t: t.state not in ENDED),
    "retry": ("retried", lambda t: t.state == "dead"),
    "delete": ("deleted", lambda t: t.state != "running"),
}


def _act(
    verb: str, ids: list[str] | None, where: bool, chosen: dict[str, Any], yes: bool,
    connection: tuple[str | None, str | None, str | None], machine: Format | None,
) -> None:  # fmt: skip
    if ids and (where or chosen):
        raise fail("give task ids or --where with a selector, not both", USAGE)
    if not ids and not where:
        hint = " (add --where to act on every task they match)" if chosen else ""
        raise fail(f"give task ids, or --where and selector options{hint}", USAGE)
    done, changes = _VERBS[verb]
    with connect(*connection, as_json=machine) as client:
        if ids:
            one_by_one(client, verb, done, ids, machine)
            return
        matched = counting(client.tasks.list(page_size=1000, **chosen), changes, "counting")
        what = "every task" if not chosen else "the tasks matching the selector"
        if not machine:
            typer.echo(f"{matched:,} tasks to {verb} ({what})")
        if matched:
            confirm(f"{verb.capitalize()} {matched:,} tasks?", yes)
            bulk = getattr(client.tasks, f"{verb}_where")
            count = working(f"{verb} {matched:,} tasks", lambda: bulk(**chosen))
        else:
            count = 0
    if machine:
        print_data({"matched": matched, "count": count}, machine)
    else:
        typer.echo(f"{done} {count:,}")


def one_by_one(
    client: Client, verb: str, done: str, ids: list[str], machine: Format | None
) -> None:
    """Each id in turn; a missing one is reported and the others still go (exit 3)."""
    results: list[dict[str, Any]] = []
    missing = False
    for task_id in ids:
        try:
            task = getattr(client.tasks, verb)(task_id)
        except RemoteError as exc:
            if exc.status != 404 or len(ids) == 1:
                raise
            missing = True
            typer.echo(f"{task_id} not found", err=True)
            continue
        state = done if task is None else task.state
        results.append({"id": task_id, "state": state})
        if not machine:
            typer.echo(f"{task_id} {state}")
    if machine:
        print_data(results, machine)
    if missing:
        raise typer.Exit(NOT_FOUND)


def _bulk_command(verb: str, doc: str) -> None:
    def command(
        ids: Ids = None, where: Where = False, function: Functions = None, state: States = None,
        tag: Tags = None, priority_min: PrioMin = None, priority_max: PrioMax = None,
        created_after: After = None, created_before: Before = None, key: TaskKey = None,
        yes: Yes = False, url: Url = None, api_key: Key = None, profile: Profile = None,
        output: Output = Format.table, as_json: AsJson = False,
    ) -> None:  # fmt: skip
        chosen = selector(function, state, tag, priority_min, priority_max, created_after,
                          created_before, key)  # fmt: skip
        _act(
            verb, ids, where, chosen, yes, (url, api_key, profile), machine_output(output, as_json)
        )

    command.__doc__ = doc
    tasks_cli.command(verb)(command)


_bulk_command("cancel", "Cancel tasks that have not ended (a running one is stopped).")
_bulk_command("retry", "Run dead tasks again, each with a new attempt series.")
_bulk_command("delete", "Delete tasks, with their history; running tasks are skipped.")
