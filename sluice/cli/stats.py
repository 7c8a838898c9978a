"""`sluice why TASK` (why a waiting task has not started) and `sluice stats` (the
tenant's figures: tasks by state now, and counts over the last minutes)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..contract import Counts
from .output import (
    AsJson,
    Format,
    Key,
    Output,
    Profile,
    Url,
    connect,
    machine_output,
    new_table,
    print_data,
    print_table,
)


def register(cli: typer.Typer) -> None:
    cli.command()(why)
    cli.command()(stats)


def why(
    task_id: str, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Why a waiting task has not started yet: a pause, a limit, no worker, or the tasks ahead."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        waiting = client.tasks.why(task_id)
    if machine:
        print_data(waiting, machine)
        return
    typer.echo(f"{waiting.reason}: {waiting.message}")


Minutes = Annotated[int, typer.Option(help="Minutes back to count (1 to 1440).", min=1, max=1440)]


def stats(
    minutes: Minutes = 60, url: Url = None, api_key: Key = None, profile: Profile = None,
    output: Output = Format.table, as_json: AsJson = False,
) -> None:  # fmt: skip
    """The tenant's tasks by state now, and what happened to them over the last minutes."""
    machine = machine_output(output, as_json)
    with connect(url, api_key, profile, as_json=machine) as client:
        figures = client.stats(minutes)
    if machine:
        print_data(figures, machine)
        return
    table = new_table("function", "ready", "scheduled", "paused", "running", "dead", "submitted",
                      "succeeded", "failed", "mean wait s", "mean run s",
                      whole=("function",), title=f"last {minutes} min")  # fmt: skip
    for f in figures.functions:
        t = f.tasks
        table.add_row(
            f.function or "(server ends)",
            *(str(t.get(s, 0)) for s in ("ready", "scheduled", "paused", "running", "dead")),
            str(f.counts.submitted), str(f.counts.succeeded), str(f.counts.failed),
            *_means(f.counts),
        )  # fmt: skip
    print_table(table)


def _means(c: Counts) -> tuple[str, str]:
    return _seconds(c.wait_s), _seconds(c.run_s)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
