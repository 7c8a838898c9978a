"""What operators see: log records that cannot be forged, and no secrets in them
(sluice/logs.py), and Settings that do not show their keys."""

from __future__ import annotations

import logging
import sys

import pytest
from rich.pretty import pretty_repr

from sluice.config import Settings
from sluice.logs import SafeFormatter, escape, redacted_url, url_secrets


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    return logging.LogRecord(
        "sluice.gateway", logging.INFO, __file__, 1, msg, args, sys.exc_info() if exc else None
    )


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("worker\x00id", "worker\\x00id"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\x09here"),
        ("line\nINFO forged", "line\\x0aINFO forged"),
        ("cr\rover", "cr\\x0dover"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("admin\u202etxt.exe", "admin\\u202etxt.exe"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("sep\u2028\u2029", "sep\\u2028\\u2029"),
        ("plain café 東京 🙂 C:\\dir", "plain café 東京 🙂 C:\\dir"),
    ],
)
def test_control_characters_in_a_message_are_escaped(raw: str, shown: str) -> None:
    line = SafeFormatter("%(message)s").format(record("worker %s connected", raw))
    assert line == f"worker {shown} connected"


def test_a_record_with_a_line_break_in_its_message_stays_one_line() -> None:
    line = SafeFormatter().format(record("worker %s", "w1\n2026-01-01 INFO sluice: forged"))
    assert "\n" not in line
    assert line.endswith("INFO sluice.gateway: worker w1\\x0a2026-01-01 INFO sluice: forged")


def test_a_traceback_keeps_its_lines_indented_and_its_other_controls_escaped() -> None:
    try:
        raise ValueError("bad id\nERROR sluice: forged \x1b[2J")
    except ValueError:
        text = SafeFormatter("%(message)s").format(record("failed: %s", "x\x00", exc=True))
    first, *rest = text.split("\n")
    assert first == "failed: x\\x00"
    assert rest[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in rest)  # nothing looks like a new record
    assert "  ERROR sluice: forged \\x1b[2J" in rest


def test_a_traceback_cached_raw_by_another_formatter_is_escaped_too() -> None:
    try:
        raise ValueError("\u202eevil")
    except ValueError:
        rec = record("failed", exc=True)
    logging.Formatter().format(rec)  # caches rec.exc_text, unescaped
    rec.exc_info = None
    text = SafeFormatter("%(message)s").format(rec)
    assert "\u202e" not in text
    assert "ValueError: \\u202eevil" in text


def test_stack_info_is_indented_and_escaped() -> None:
    rec = record("here")
    rec.stack_info = 'Stack (most recent call last):\n  File "x\x07.py"'
    text = SafeFormatter("%(message)s").format(rec)
    assert text == 'here\n  Stack (most recent call last):\n    File "x\\x07.py"'


def test_secrets_are_masked_in_messages_and_tracebacks_longest_first() -> None:
    formatter = SafeFormatter("%(message)s", secrets=["pw", "pw-and-more", ""])
    try:
        raise ConnectionError("postgresql://u:pw-and-more@db/x refused")
    except ConnectionError:
        text = formatter.format(record("dsn %s and %s", "pw", "pw-and-more", exc=True))
    assert "pw" not in text
    assert text.startswith("dsn *** and ***\n")
    assert "postgresql://u:***@db/x refused" in text


def test_escape_keeps_newlines_only_when_asked() -> None:
    assert escape("a\nb\x00") == "a\\x0ab\\x00"
    assert escape("a\nb\x00", keep_newlines=True) == "a\nb\\x00"


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("sqlite:///.sluice/sluice.db", "sqlite:///.sluice/sluice.db", []),
        ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://postgres@127.0.0.1:5432/db", []),
        ("postgresql://u:s3%40t@h:5432/db", "postgresql://u:***@h:5432/db", ["s3%40t", "s3@t"]),
        ("postgres://u:p@ss@h/db", "postgres://u:***@h/db", ["p@ss"]),
        ("postgresql://u:pw@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db", ["pw"]),
        (
            "postgresql:///db?host=/run&password=pw&sslmode=require",
            "postgresql:///db?host=/run&password=***&sslmode=require",
            ["pw"],
        ),
        ("postgresql://u@h/db?sslpassword=k#x", "postgresql://u@h/db?sslpassword=***#x", ["k"]),
        ("https://me:tok@example.com/v1?x=1", "https://me:***@example.com/v1?x=1", ["tok"]),
        ("wss://h:8420/v1/workers/connect", "wss://h:8420/v1/workers/connect", []),
        ("not a url", "not a url", []),
        ("postgresql://u:pw@[::1", "postgresql://u:***@[::1", ["pw"]),
    ],
)  # fmt: skip
def test_redacted_url_hides_passwords_and_keeps_the_rest(
    url: str, shown: str, secrets: list[str]
) -> None:
    assert redacted_url(url) == shown
    assert url_secrets(url) == secrets


def test_settings_never_show_their_keys_or_the_database_password() -> None:
    settings = Settings.from_env(
        {"SLUICE_ADMIN_KEY": "adm-secret", "SLUICE_POOL_KEY": "pool-secret"},
        database="postgresql://sluice:db-secret@db.internal:5432/sluice",
    )
    for shown in (repr(settings), str(settings), f"{settings}", pretty_repr(settings)):
        assert "adm-secret" not in shown
        assert "pool-secret" not in shown
        assert "db-secret" not in shown
        assert "sluice:***@db.internal" in shown
        assert "admin_key='***'" in shown
    assert settings.admin_key == "adm-secret"  # only the display is redacted
    assert sorted(settings.secret_values) == ["adm-secret", "db-secret", "pool-secret"]
    assert "pool_key=None" in repr(Settings.from_env({}))
