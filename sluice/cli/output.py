"""What every client command shares: connecting, printing, confirming, exit codes.

Exit codes, which scripts can rely on (docs/cli.md):

    0  ok
    1  the server answered an error (4xx other than 404, or 5xx); or the database
       refused (`migrate`, `tenants create` writing it directly)
    2  usage error: a bad option or argument, an unreadable profile; a command that
       needs the server's packages without them (`pip install 'sluice[server]'`)
    3  not found (404): no such task, function, schedule, pause, tenant or key
    4  cannot reach the server (connection refused, DNS, timeout), or the database
    5  not confirmed: the user said no, or no terminal to ask and no --yes
    6  `submit --wait`: the task ended without success (dead, cancelled, expired)
    7  `submit --wait`: the wait ended before the task did
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, TypeVar

import httpx
import msgspec
import typer
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..client import Client
from ..errors import RemoteError
from ..logs import redacted_url
from . import yaml_emitter
from .profiles import ProfileError, resolve

OK, API_ERROR, USAGE, NOT_FOUND, UNREACHABLE, NOT_CONFIRMED = 0, 1, 2, 3, 4, 5
TASK_FAILED, TASK_PENDING = 6, 7
T = TypeVar("T")

console = Console()
errors = Console(stderr=True)


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


# What the server answers to an admin route when the key is not the admin key: a 404 as
# if the route did not exist (docs/security.md). The CLI knows it sent an admin key.
ADMIN_REFUSED = (
    "the admin key was not accepted (SLUICE_ADMIN_KEY, --admin-key or a profile's admin_key);"
    " admin routes answer 404 to any other key"
)


Url = Annotated[str | None, typer.Option(help="Server URL (else profile or SLUICE_URL).")]
Key = Annotated[
    str | None, typer.Option("--api-key", help="Tenant key (else profile or SLUICE_API_KEY).")
]
AdminKey = Annotated[
    str | None,
    typer.Option("--admin-key", help="Admin key (else profile or SLUICE_ADMIN_KEY)."),
]
Profile = Annotated[
    str | None, typer.Option(help="Profile of the profile file (or SLUICE_PROFILE).")
]
Output = Annotated[
    Format, typer.Option("--output", "-o", help="table for people; json or yaml for scripts.")
]
AsJson = Annotated[bool, typer.Option("--json", help="The same as --output json.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def machine_output(output: Format, as_json: bool) -> Format | None:
    """The format for scripts the command was asked for (json or yaml); None: a table."""
    if as_json:
        return Format.json
    return None if output is Format.table else output


def fail(message: str, code: int) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


# The [server] extra's packages (pyproject.toml) by module name: a plain `pip install
# sluice` leaves them out, and the commands that run a server or write its database need them.
SERVER_MODULES = ("litestar", "uvicorn", "asyncpg", "croniter", "prometheus_client", "jinja2")


def need_server() -> None:
    """Stop in one line that says what to install when the server's packages are missing,
    rather than with the traceback of the first import that fails."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(missing)
        install = "pip install 'sluice[server]'"
        raise fail(markup_escape(f"this command needs the server: {install} (missing: {names})"),
                   USAGE)  # fmt: skip


def database_failure(exc: Exception, database: str) -> typer.Exit:
    """A database a command could not use (store.database_errors), said in one line with
    what to check, its URL without the password: not reached (4) or refused (1)."""
    reached = not isinstance(exc, OSError)
    what = "the database refused" if reached else "cannot reach the database"
    message = f"{what} {redacted_url(database)}: {exc} (check SLUICE_DATABASE or --database)"
    return fail(markup_escape(message), API_ERROR if reached else UNREACHABLE)


@contextlib.contextmanager
def connect(
    url: str | None, key: str | None, profile: str | None, *, admin: bool = False,
    as_json: Format | bool | None = False,
) -> Iterator[Client]:  # fmt: skip
    """A client for the resolved server, turning every failure into its exit code."""
    try:
        connection = resolve(os.environ, url=url, key=key, profile=profile, admin=admin)
    except ProfileError as exc:
        raise fail(str(exc), USAGE) from exc
    try:
        with Client(connection.url, connection.key) as client:
            yield client
    except RemoteError as exc:
        code = NOT_FOUND if exc.status == 404 else API_ERROR
        if admin and exc.status == 404 and exc.code == "not_found":
            exc = RemoteError(exc.status, "admin_key_refused", ADMIN_REFUSED)
            code = API_ERROR
        if as_json:
            body = {"status": exc.status, "code": exc.code, "message": exc.message,
                    "field": exc.field}  # fmt: skip
            typer.echo(msgspec.json.encode({"error": body}).decode(), err=True)
            raise typer.Exit(code) from exc
        field = f" ({exc.field})" if exc.field else ""
        raise fail(f"{exc.status} {exc.code}{field}: {exc.message}", code) from exc
    except httpx.TransportError as exc:
        raise fail(
            f"cannot reach {connection.url}: {exc or type(exc).__name__}", UNREACHABLE
        ) from exc


def print_json(value: Any) -> None:
    typer.echo(msgspec.json.encode(value).decode())


def print_data(value: Any, fmt: Format) -> None:
    """The value for scripts: one JSON document a line, or a YAML document."""
    if fmt is Format.yaml:
        typer.echo("---\n" + yaml_emitter.dumps(value), nl=False)
    else:
        print_json(value)


def new_table(*headers: str, whole: Iterable[str] = ("id",), title: str | None = None) -> Table:
    """A table whose `whole` columns (ids, names, cron expressions) are never cut or
    wrapped; the other columns wrap on a narrow terminal."""
    table = Table(*headers, title=title)
    keep = set(whole)
    for column in table.columns:
        if column.header in keep:
            column.no_wrap = True
    return table


def print_table(table: Table) -> None:
    """On a terminal, the table fits its width (kept columns whole, the rest wrapped), or
    where it cannot without cutting a column below its longest word, one record a block.
    In a pipe or CI, one row a line at its full width with no frame, so nothing is cut
    and `grep`, `awk` and `cut` see whole values."""
    for column in table.columns:
        if column.no_wrap:
            column.min_width = max((len(str(c)) for c in column.cells), default=0) or None
    if console.is_terminal:
        if _narrowest(table) <= console.width:
            console.print(table)
        else:  # some column would be squeezed below its longest word: a record a block
            _records(table)
        return
    table.box = None
    table.pad_edge = False
    wide = Console(width=100_000, no_color=True, highlight=False, soft_wrap=False,
                   color_system=None)  # fmt: skip
    with wide.capture() as captured:
        wide.print(table)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())


def _narrowest(table: Table) -> int:
    """The table's width with each column at its longest word (a kept column whole):
    narrower, rich would cut words to `…`. A column takes its text and 3 of frame."""
    widths = []
    for column in table.columns:
        texts = [str(column.header), *(str(c) for c in column.cells)]
        if column.no_wrap:
            widths.append(max(len(t) for t in texts))
        else:
            widths.append(max((len(w) for t in texts for w in t.split()), default=1))
    return sum(widths) + 3 * len(widths) + 1


def _records(table: Table) -> None:
    """Each row as a block of `field value` lines, as psql's expanded display does, for
    a table too wide for the terminal: every value stays whole (a long one wraps onto
    the next lines), where the table would cut columns down to `…`."""
    headers = [str(column.header) for column in table.columns]
    columns = [list(column.cells) for column in table.columns]
    for n in range(table.row_count):
        record = Table.grid(padding=(0, 2))
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for header, cells in zip(headers, columns, strict=True):
            record.add_row(header, cells[n])
        label = f"-[ {n + 1} ]"
        console.print(label + "-" * max(0, 24 - len(label)), markup=False, highlight=False)
        console.print(record)


def when(at: float | None) -> str:
    return "" if at is None else dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str | None, option: str) -> float | None:
    """Epoch seconds from epoch seconds, an ISO 8601 time (local if no zone), or a
    duration ago (`90s`, `15m`, `2h`, `7d`)."""
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return float(value)
    ago = _AGO.match(value)
    if ago:
        return dt.datetime.now().timestamp() - float(ago[1]) * _UNITS[ago[2]]
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not epoch seconds, an ISO 8601 time or a duration ago like 2h",
            param_hint=option,
        ) from None


def confirm(question: str, yes: bool) -> None:
    """Ask before a change; without a terminal to ask, refuse unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail(f"{question} Not confirmed: run again with --yes (no terminal to ask).",
                   NOT_CONFIRMED)  # fmt: skip
    if not typer.confirm(question, default=False, err=True):
        raise fail("aborted; nothing was changed.", NOT_CONFIRMED)


def counting(items: Iterable[T], keep: Callable[[T], bool], description: str) -> int:
    """How many items are kept, with a live count on the terminal while pages arrive."""
    found = 0
    with _progress(transient=True) as progress:
        bar = progress.add_task(description, total=None)
        for item in items:
            if keep(item):
                found += 1
                progress.update(bar, description=f"{description} {found:,}")
    return found


def working(description: str, action: Callable[[], T]) -> T:
    """Run one long call with a spinner, a bar and the time elapsed on the terminal."""
    with _progress(transient=False) as progress:
        bar = progress.add_task(description, total=None)
        result = action()
        progress.update(bar, total=1, completed=1)
    return result


def _progress(transient: bool) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=errors, transient=transient, disable=not errors.is_terminal,
    )  # fmt: skip
