"""`sluice dlq ls|retry`: dead letters, the tasks that ended without success."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer

from .output import (
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
from .tasks import one_by_one

dlq_cli = typer.Typer(no_args_is_help=True, help="Dead letters: list them, retry them.")

Function = Annotated[str | None, typer.Option(help="Only this function.")]
Since = Annotated[str | None, typer.Option(help="Ended at or after: epoch, ISO 8601 or 2h (ago).")]
Until = Annotated[str | None, typer.Option(help="Ended before: epoch, ISO 8601 or 2h (ago).")]


@dlq_cli.command("ls")
def ls(
    function: Function = None, since: Since = None, until: Until = None,
    limit: Annotated[int, typer.Option(help="At most this many; 0 for all.", min=0)] = 50,
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Dead tasks, oldest first."""
    machine = machine_output(output, as_json)
    window = (parse_time(since, "--since"), parse_time(until, "--until"))
    with connect(url, api_key, profile, as_json=machine) as client:
        pages = client.dead.list(function=function, since=window[0], until=window[1],
                                 page_size=min(limit or 1000, 1000))  # fmt: skip
        found = list(itertools.islice(pages, limit or None))
    if machine:
        print_data(found, machine)
        return
    table = new_table("id", "function", "attempts", "ended", "error", whole=("id", "function"))
    table.columns[0].no_wrap = True
    for t in found:
        table.add_row(t.id, t.function, str(t.attempt), when(t.finished_at), t.error or "")
    print_table(table)


@dlq_cli.command("retry")
def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead task ids; or --where.")] = None,
    where: Annotated[bool, typer.Option("--where", help="Every dead task matching.")] = False,
    function: Function = None, since: Since = None, until: Until = None, yes: Yes = False,
    url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Run dead tasks again: by id, or every one of a function and time window (--where)."""
    machine = machine_output(output, as_json)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    given = any(v is not None for v in (function, start, end))
    if ids and (where or given):
        raise fail("give task ids or --where with --function/--since/--until, not both", USAGE)
    if not ids and not where:
        raise fail("give dead task ids, or --where (with --function, --since, --until)", USAGE)
    with connect(url, api_key, profile, as_json=machine) as client:
        if ids:
            one_by_one(client, "retry", "retried", ids, machine)
            return
        dead = client.dead.list(function=function, since=start, until=end, page_size=1000)
        matched = counting(dead, lambda _: True, "counting")
        if not machine:
            typer.echo(f"{matched:,} dead tasks to retry")
        count = 0
        if matched:
            confirm(f"Retry {matched:,} dead tasks?", yes)
            count = working(
                f"retry {matched:,} tasks",
                lambda: client.dead.retry(function=function, since=start, until=end),
            )
    if machine:
        print_data({"matched": matched, "count": count}, machine)
    else:
        typer.echo(f"retried {count:,}")
