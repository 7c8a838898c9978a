"""The `sluice` command: `dev | server | worker | migrate` here (they run or touch the
server itself); the client commands (`submit`, `tasks`, `dlq`, `functions`, `schedules`,
`pause`, `resume`, `pauses`, `tenants`, `keys`) speak the HTTP API and live in the
modules beside this one."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..client.http import DEV_FILE
from ..errors import InvalidRequest
from ..logs import SafeFormatter, escape, redacted_url
from ..policy.autoscale import DOWN_AFTER_S, Autoscale
from .admin import keys_cli, tenants_cli
from .dead import dlq_cli
from .functions import functions_cli
from .logs import register as register_log_commands
from .output import (
    AsJson,
    Format,
    Output,
    database_failure,
    machine_output,
    need_server,
    print_data,
)
from .pauses import register as register_pause_commands
from .schedules import schedules_cli
from .stats import register as register_stats_commands
from .tasks import register as register_task_commands
from .webhooks import register as register_webhook_commands

if TYPE_CHECKING:
    from ..config import Settings

# A crash's traceback must not print local variables: they hold keys and database URLs.
cli = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Sluice task processing.",
    pretty_exceptions_show_locals=False,
)  # fmt: skip


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"sluice {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:  # fmt: skip
    """Sluice task processing."""


register_task_commands(cli)
register_log_commands(cli)
cli.add_typer(dlq_cli, name="dlq")
cli.add_typer(functions_cli, name="functions")
cli.add_typer(schedules_cli, name="schedules")
register_pause_commands(cli)
cli.add_typer(tenants_cli, name="tenants")
cli.add_typer(tenants_cli, name="tenant", help="The same as `sluice tenants`.")
cli.add_typer(keys_cli, name="keys")
register_stats_commands(cli)
register_webhook_commands(cli)

Concurrency = Annotated[int, typer.Option(help="Slots per worker process.", min=1)]
Processes = Annotated[int, typer.Option(help="Worker processes to run.", min=1)]
CaFile = Annotated[
    str | None,
    typer.Option(help="CA bundle that signed the server's certificate (or SLUICE_CA_FILE)."),
]
CaptureLogs = Annotated[
    bool,
    typer.Option(
        "--capture-logs/--no-capture-logs",
        envvar="SLUICE_CAPTURE_LOGS",
        help="Keep each task's logging and print lines for `sluice logs` (or SLUICE_CAPTURE_LOGS).",
    ),
]

Prefetch = Annotated[
    bool,
    typer.Option(
        "--prefetch/--no-prefetch",
        envvar="SLUICE_PREFETCH",
        help="Hold short tasks ahead of free slots, so they do not wait for the server's "
        "round trip; tasks that run longer than a few ms are never held (or SLUICE_PREFETCH).",
    ),
]

InlineShort = Annotated[
    bool,
    typer.Option(
        "--inline-short/--no-inline-short",
        envvar="SLUICE_INLINE_SHORT",
        help="Run a plain function on the worker's event loop, not in a thread, once 50 of "
        "its calls used under 0.5 ms of CPU within 10 ms; one call there over 2 ms sends it "
        "back to threads (or SLUICE_INLINE_SHORT).",
    ),
]


def _logging(secrets: Iterable[str] = (), level: str = "INFO") -> None:
    """Every sluice process logs through one SafeFormatter (sluice/logs.py): control
    characters escaped, and this process's secrets masked wherever they turn up."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(secrets=secrets))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    logging.getLogger("uvicorn.error").addFilter(_traceback_in_message)


def _traceback_in_message(record: logging.LogRecord) -> bool:
    """uvicorn logs the app's start-up failure as a message holding a whole traceback:
    its first line stays the message, the rest is shown as a traceback (indented lines)."""
    first, newline, rest = record.getMessage().partition("\n")
    if newline and record.exc_info is None:
        record.msg, record.args, record.exc_text = first, (), rest
    return True


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad one stops the command with its reason."""
    from ..config import Settings

    try:
        return Settings.from_env(os.environ, **overrides)
    except InvalidRequest as exc:
        typer.echo(f"sluice: {escape(exc.message)}", err=True)
        raise typer.Exit(2) from exc


def _base_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{settings.host}:{settings.port}"


def _settle_heap() -> None:
    """Move everything built at start-up out of the collector's sight: full collections
    then scan only what the running node allocates, which keeps latency tails short."""
    gc.collect()
    gc.freeze()


def _run(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


async def _serve_http(node: Any, host: str, port: int, manage_node: bool) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # From the first signal on, submits get 503 + Retry-After (clients retry on
            # another node, or here after the restart); what was acknowledged is committed.
            # On SIGTERM the listener stays open `shutdown_delay_s` longer, answering 503,
            # so load balancers and clients see the refusal rather than a reset.
            delay = node.settings.shutdown_delay_s
            if sig == signal.SIGTERM and delay > 0 and node.accepting:
                node.accepting = False
                timer = threading.Timer(delay, self.handle_exit, (sig, frame))
                timer.daemon = True
                timer.start()
                return
            node.accepting = False
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:  # a requested stop that completed is a success: exit 0
                self._captured_signals.remove(sig)

    from ..api import create_app
    from ..api.serving import server_config

    config = server_config(
        create_app(node, manage_node=manage_node), node.settings, host=host, port=port,
        lifespan="on", timeout_graceful_shutdown=5,
    )  # fmt: skip
    return Server(config)


@cli.command()
def server(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    database: Annotated[
        str | None, typer.Option(help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    ] = None,
) -> None:
    """Run a server node: API, dispatcher, timers and the worker gateway."""
    need_server()
    from ..engine.node import Node

    settings = _settings(host=host, port=port, database=database)
    _logging(settings.secret_values)
    node = Node(settings)

    async def main() -> None:
        server = await _serve_http(node, settings.host, settings.port, manage_node=True)
        _settle_heap()
        logging.getLogger("sluice").info(
            "serving on %s (%s)", _base_url(settings), redacted_url(settings.database)
        )
        await server.serve()

    _run(main())


@cli.command()
def worker(
    app: Annotated[str, typer.Argument(help="MODULE:APP, the sluice.App to serve.")],
    concurrency: Concurrency = 10,
    processes: Processes = 1,
    autoscale: Annotated[
        str | None,
        typer.Option(help="MIN:MAX worker processes, following the server's load "
                     "(GET /v1/scaling/default); MIN may be 0."),
    ] = None,
    scale_down_after: Annotated[
        float,
        typer.Option(help="With --autoscale: seconds fewer processes must be wanted before "
                     "one is stopped (or SLUICE_SCALE_DOWN_AFTER_S).",
                     envvar="SLUICE_SCALE_DOWN_AFTER_S", min=0),
    ] = DOWN_AFTER_S,
    url: Annotated[str | None, typer.Option(help="Server URL (or SLUICE_URL).")] = None,
    api_key: Annotated[str | None, typer.Option(help="Tenant key (or SLUICE_API_KEY).")] = None,
    grace: Annotated[
        float | None,
        typer.Option(help="Longest wait for running tasks on SIGTERM, in seconds; the rest "
                     "are handed back. Default: until each ends (bounded by its timeout).",
                     min=0),
    ] = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(help="Exit (0) after this many seconds with no task (a Kubernetes Job).",
                     min=0),
    ] = None,
    ca_file: CaFile = None,
    capture_logs: CaptureLogs = True,
    prefetch: Prefetch = True,
    inline_short: InlineShort = True,
    isolation: Annotated[
        str | None,
        typer.Option(help="thread or process: how functions that do not choose run "
                     "(default: thread; process for a shared pool's worker)."),
    ] = None,
    memory_mb: Annotated[
        float | None,
        typer.Option(help="Memory (MiB) offered to tasks that declare memory_mb "
                     "(default: the machine's, or its cgroup's limit).", min=0),
    ] = None,
    cpu: Annotated[
        float | None,
        typer.Option(help="CPUs offered to tasks that declare a cpu weight (default: unbounded).",
                     min=0),
    ] = None,
    child_max_tasks: Annotated[
        int, typer.Option(help="Attempts an isolated child runs before it is replaced.", min=1)
    ] = 100,
    child_max_rss_mb: Annotated[
        float, typer.Option(help="An isolated child past this resident memory is replaced.", min=1)
    ] = 1024,
) -> None:  # fmt: skip
    """Run worker processes that serve an App's functions."""
    from ..cli.loading import load_app
    from ..client.http import discover

    base, key = discover(url, api_key)
    _logging([key] if key else [])
    bounds = _autoscale_bounds(autoscale) if autoscale is not None else None
    if processes > 1 or bounds is not None:
        args = ["worker", app, "--concurrency", str(concurrency)]
        if grace is not None:
            args += ["--grace", str(grace)]
        if url:
            args += ["--url", url]
        if ca_file:
            args += ["--ca-file", ca_file]
        if not capture_logs:
            args.append("--no-capture-logs")
        if not prefetch:
            args.append("--no-prefetch")
        if not inline_short:
            args.append("--no-inline-short")
        if isolation:
            args += ["--isolation", isolation]
        for flag, value in (("--memory-mb", memory_mb), ("--cpu", cpu)):
            if value is not None:
                args += [flag, str(value)]
        args += ["--child-max-tasks", str(child_max_tasks)]
        args += ["--child-max-rss-mb", str(child_max_rss_mb)]
        # The key goes in the environment: a command line is readable by every local user.
        env = {**os.environ, "SLUICE_API_KEY": api_key} if api_key else None
        if bounds is None:
            from ..worker.supervisor import supervise

            raise typer.Exit(supervise(args, processes, env=env))
        policy = Autoscale(bounds[0], bounds[1], concurrency, scale_down_after)
        raise typer.Exit(_autoscale(app, args, policy, base, key, ca_file, env))
    from ..worker.runtime import FatalWorkerError, serve

    loaded = load_app(app)
    _settle_heap()
    try:
        _run(serve(
            loaded, url=url, api_key=api_key, concurrency=concurrency, grace_s=grace,
            ca_file=ca_file, capture_logs=capture_logs, prefetch=prefetch,
            inline_short=inline_short, isolation=isolation,
            app_ref=app if ":" in app else None, memory_mb=memory_mb, cpu=cpu,
            child_max_tasks=child_max_tasks, child_max_rss_mb=child_max_rss_mb,
            exit_when_idle_s=exit_when_idle,
        ))  # fmt: skip
    except ValueError as exc:  # a bad --isolation
        typer.echo(f"sluice worker: {escape(str(exc))}", err=True)
        raise typer.Exit(2) from exc
    except FatalWorkerError as exc:
        typer.echo(f"sluice worker: {escape(str(exc))}", err=True)
        raise typer.Exit(2) from exc


def _autoscale_bounds(text: str) -> tuple[int, int]:
    low, colon, high = text.partition(":")
    try:
        bounds = (int(low), int(high))
    except ValueError:
        bounds = (-1, -1)
    if not colon or not 0 <= bounds[0] <= bounds[1] or bounds[1] < 1:
        typer.echo(f"sluice worker: --autoscale takes MIN:MAX with 0 <= MIN <= MAX and "
                   f"MAX >= 1 (got {escape(text)!r})", err=True)  # fmt: skip
        raise typer.Exit(2)
    return bounds


def _autoscale(
    app: str, args: list[str], policy: Autoscale, base: str, key: str | None,
    ca_file: str | None, env: dict[str, str] | None,
) -> int:  # fmt: skip
    from ..cli.loading import load_app
    from ..client.http import tls_context
    from ..errors import SluiceError
    from ..worker.supervisor import Signal, autoscale

    if key is None:
        typer.echo("sluice worker: no API key: pass --api-key or set SLUICE_API_KEY", err=True)
        return 2
    functions = sorted(load_app(app).tasks)  # the signal counts the App's functions
    try:
        verify = tls_context(ca_file)
    except SluiceError as exc:
        typer.echo(f"sluice worker: {escape(str(exc))}", err=True)
        return 2
    return autoscale(args, policy, Signal(base, key, functions, verify), env=env)


@cli.command()
def dev(
    app: Annotated[str, typer.Argument(help="MODULE:APP, the sluice.App to serve.")],
    host: str = "127.0.0.1",
    port: int = 8420,
    concurrency: Concurrency = 10,
    processes: Processes = 1,
    data: Annotated[Path, typer.Option(help="Where the SQLite data lives.")] = Path(".sluice"),
) -> None:
    """Everything in one command, on SQLite: server, dispatcher, timers and workers."""
    need_server()
    from ..cli.loading import load_app
    from ..engine.devlog import SUMMARY_S, DevLog
    from ..engine.node import Node

    database = os.environ.get("SLUICE_DATABASE") or f"sqlite:///{data / 'sluice.db'}"
    # Development: HTTP targets on this machine are allowed (docs/http-targets.md), and
    # the admin routes answer a key of its own, so the tenant and key commands can be tried.
    settings = _settings(
        host=host, port=port, database=database, targets_allow_loopback=True,
        admin_key=None if os.environ.get("SLUICE_ADMIN_KEY") else _dev_admin_key(),
    )  # fmt: skip
    _logging(settings.secret_values)
    loaded = load_app(app)
    node = Node(settings)
    url = _base_url(settings)
    devlog = DevLog(node.rt)
    node.meters.watch = devlog.attempts_ended
    node.timers.every("dev summary", SUMMARY_S, devlog.summarize, first_after=SUMMARY_S)

    async def main() -> None:
        await node.start()
        workers: list[subprocess.Popen[bytes]] = []
        try:
            tenant = await node.tenants.ensure(loaded.name)
            key = await _dev_key(node, tenant.id, url, settings.admin_key)
            await node.functions.register(tenant.id, [t.config for t in loaded.tasks.values()])
            server = await _serve_http(node, host, port, manage_node=False)
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            if serving.done():
                serving.result()
                return
            env = {**os.environ, "SLUICE_API_KEY": key, "SLUICE_URL": url}
            command = [sys.executable, "-m", "sluice", "worker", app]
            command += ["--concurrency", str(concurrency), "--processes", str(processes)]
            workers.append(subprocess.Popen(command, env=env))  # noqa: ASYNC220 (fork is quick)
            typer.echo(_next_steps(url, tenant.name, key, settings.admin_key, loaded.tasks))
            await serving
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in workers:
                try:
                    proc.wait(timeout=35)
                except subprocess.TimeoutExpired:
                    proc.kill()
            await node.stop()

    _run(main())


def _saved_dev() -> dict[str, Any]:
    try:
        return dict(json.loads(DEV_FILE.read_text())) if DEV_FILE.exists() else {}
    except (OSError, ValueError):
        return {}


def _dev_admin_key() -> str:
    """The admin key of an earlier `sluice dev` here, or a new one (saved by _dev_key)."""
    return str(_saved_dev().get("admin_key") or "sa_" + secrets.token_urlsafe(24))


async def _dev_key(node: Any, tenant_id: str, url: str, admin_key: str | None) -> str:
    """Reuse the dev key saved by an earlier `sluice dev`, or make one; save it with the
    URL and the admin key (the CLI reads them from there, docs/cli.md)."""
    saved = _saved_dev()
    key = saved.get("api_key", "")
    if not key or await node.tenants.authenticate(key) != tenant_id:
        key = await node.tenants.create_key(tenant_id)
    dev = {"url": url, "api_key": key, "tenant": tenant_id}
    if admin_key:
        dev["admin_key"] = admin_key
    if dev != saved:
        _write_secret(DEV_FILE, json.dumps(dev, indent=2))
    return str(key)


def _write_secret(path: Path, text: str) -> None:
    """Write a file of keys whole, readable by its owner only from its first byte: a
    reader (the SDK, the CLI, a script waiting for it) sees the old file or the new
    one, never a half-written one, and no one else ever sees the keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file (a stale part file)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def _next_steps(
    url: str, tenant: str, key: str, admin_key: str | None, functions: Iterable[str]
) -> str:
    """What `sluice dev` prints once it serves: where it is, its keys, what to type next."""
    exports = f"export SLUICE_URL={url} SLUICE_API_KEY={key}"
    if admin_key:
        exports += f" SLUICE_ADMIN_KEY={admin_key}"
    admin = f"  admin key: {admin_key}\n" if admin_key else ""
    return (
        f"\n  Sluice is running at {url}  (API: {url}/openapi.json)\n"
        f"  console:   {url}/ui/signin#key={key}\n"
        f"             (signs you in as {tenant}; the key stays in your browser)\n"
        f"  tenant:    {tenant}\n"
        f"  API key:   {key}\n{admin}"
        f"  functions: {', '.join(sorted(functions))}\n"
        f"  Saved in {DEV_FILE.resolve()}: the CLI, the SDK and the examples run in this\n"
        f"  directory read it from there. Elsewhere, in another terminal:\n\n"
        f"    {exports}\n"
        f"{_cli_hint()}"
        f"    sluice submit ping --args '[1]' --wait 10\n"
        f"    sluice tasks ls\n\n"
        f"  Failed attempts and dead tasks are logged here, one line each.\n"
    )


def _cli_hint() -> str:
    """How to reach the `sluice` command, when it is not on PATH (a venv not activated)."""
    here = Path(sys.executable).parent
    if shutil.which("sluice") == str(here / "sluice") or not (here / "sluice").exists():
        return ""
    return f"    source {here / 'activate'}     # puts sluice on PATH\n"


@cli.command()
def migrate(
    database: Annotated[
        str | None, typer.Option(help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    ] = None,
    output: Output = Format.table,
    as_json: AsJson = False,
) -> None:
    """Bring the database's schema up to date (a server also does this when it starts)."""
    need_server()
    settings = _settings(database=database)

    from ..store import database_errors
    from ..store import migrate as migrate_store

    try:
        version = asyncio.run(migrate_store(settings))
    except database_errors(settings) as exc:
        raise database_failure(exc, settings.database) from exc
    machine = machine_output(output, as_json)
    if machine:
        print_data({"database": redacted_url(settings.database), "version": version}, machine)
    else:
        typer.echo(f"{redacted_url(settings.database)}: schema version {version}")


def main() -> None:
    cli()
