"""How the CLI prints for scripts and pipes: YAML that parses back to the same values,
tables that keep ids whole and print one row a line when stdout is not a terminal."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import typer
import yaml
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from sluice.cli import output
from sluice.cli.main import cli
from sluice.cli.yaml_emitter import dumps

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(), st.from_regex(r"[A-Za-z_./][A-Za-z0-9 _./@+-]*\n?", fullmatch=True),  # near plain
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize(
    "value",
    [
        {"id": "0193ab", "state": "ready", "created": True},
        [
            {"a": [1, 2, {"b": None}]},
            [],
            {},
            "no",
            "1.5",
            "a: b",
            " x",
            "#c",
            "ünï",
            "line\nnext",
            ".inf",
        ],
        {"nested": {"empty": [], "cron": "*/15 * * * * *", "tz": "Europe/Berlin"}},
    ],
)
def test_yaml_parses_back_to_the_same_value(value: Any) -> None:
    assert yaml.safe_load(dumps(value)) == value


@given(VALUES)
def test_yaml_of_any_json_value_parses_back_to_it(value: Any) -> None:
    assert yaml.safe_load(dumps(value)) == value


def test_a_table_in_a_pipe_keeps_every_id_whole_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = ["0193f0c2-7a1b-7c3d-9e4f-" + "a" * 40 + str(i) for i in range(3)]
    table = output.new_table("id", "function", "error", whole=("id", "function"))
    for task_id in ids:
        table.add_row(task_id, "send_welcome_to_a_new_customer", "x" * 300)
    output.print_table(table)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(ids)  # the header, then one row a line
    assert "…" not in "".join(lines)
    for task_id, row in zip(ids, lines[1:], strict=True):
        assert row.split()[:3] == [task_id, "send_welcome_to_a_new_customer", "x" * 300]


def test_every_client_command_offers_json_yaml_and_table() -> None:
    # Every command of the tree, so a new one is held to it too; the processes (server,
    # worker, dev) print logs, not answers.
    processes = {"server", "worker", "dev"}
    commands = [
        path for path in _leaves(typer.main.get_command(cli), []) if path[0] not in processes
    ]
    assert len(commands) >= 35 and ["webhooks", "enable"] in commands
    runner = CliRunner()
    for command in commands:
        shown = runner.invoke(cli, [*command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, command
        assert "--output" in shown.stdout and "yaml" in shown.stdout, command


def _leaves(command: Any, path: list[str]) -> list[list[str]]:
    if not hasattr(command, "commands"):  # a group has them (typer's own Group class)
        return [path]
    return [leaf for name, sub in sorted(command.commands.items())
            for leaf in _leaves(sub, [*path, name])]  # fmt: skip


def test_a_table_on_a_narrow_terminal_wraps_other_columns_but_never_an_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, force_terminal=True, width=70,
                                                   color_system=None))  # fmt: skip
    table = output.new_table("id", "function", "cron", "error", whole=("id", "function", "cron"))
    task_id = "0193f0c2-7a1b-7c3d-9e4f-0123456789ab"
    table.add_row(task_id, "send_welcome", "*/15 * * * * *", "a long error message " * 4)
    output.print_table(table)
    shown = screen.getvalue()
    assert task_id in shown and "send_welcome" in shown and "*/15 * * * * *" in shown
    assert max(len(line) for line in shown.splitlines()) <= 70


def test_a_server_command_without_the_server_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As after a plain `pip install sluice`: one of the extra's modules cannot be found.
    monkeypatch.setattr(output, "SERVER_MODULES", (*output.SERVER_MODULES, "sluice_no_such"))
    for command in (["server"], ["dev", "shop:app"], ["migrate"],
                    ["tenants", "create", "acme", "--database", "sqlite:///x.db"]):  # fmt: skip
        done = CliRunner().invoke(cli, command)
        assert done.exit_code == 2, (command, done.output, done.exception)
        assert done.stderr == "error: this command needs the server: pip install " \
            "'sluice[server]' (missing: sluice_no_such)\n", command  # fmt: skip


def test_a_table_too_wide_for_the_terminal_shows_a_record_a_block_with_every_value_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 80 columns a task list cannot keep each column's longest word: rather than cut
    `prio` and `created` to `…`, each row becomes a block, as psql's expanded display."""
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, force_terminal=True, width=80,
                                                   color_system=None))  # fmt: skip
    headers = ("id", "function", "state", "prio", "attempt", "created", "finished", "key")
    table = output.new_table(*headers, whole=("id", "function"))
    rows = [
        ("0193f0c2-7a1b-7c3d-9e4f-0123456789ab", "send_welcome", "succeeded", "5", "1",
         "2026-12-03 08:12:44", "2026-12-03 08:12:45", "welcome-42"),
        ("0193f0c2-7a1b-7c3d-9e4f-0123456789ac", "resize_image", "dead", "9", "5",
         "2026-12-03 08:13:01", "2026-12-03 08:14:31", ""),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    output.print_table(table)
    shown = screen.getvalue()
    assert "…" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 80
    for row in rows:
        for header, value in zip(headers, row, strict=True):
            if value:
                line = rf"^{header} +{re.escape(value)} *$"
                assert re.search(line, shown, re.M), (header, value)
    assert re.findall(r"^-\[ (\d) \]-+$", shown, re.M) == ["1", "2"]
