"""Load named SQL blocks: a file of `-- name: NAME` headers, each followed by its SQL.
A backend keeps one such file per noun (tasks.sql beside tasks.py) and loads them all as
one mapping, so a statement of one noun may run inside another's transaction."""

from __future__ import annotations

import re
from pathlib import Path

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load_queries(path: Path) -> dict[str, str]:
    text = path.read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{path.name}: query {name!r} defined twice")
        sql = "\n".join(
            line for line in body.strip().splitlines() if not line.lstrip().startswith("--")
        ).strip()
        queries[name] = sql
    return queries


def load_query_files(folder: Path) -> dict[str, str]:
    """Every `*.sql` file of a folder as one mapping; a name may be defined only once."""
    queries: dict[str, str] = {}
    for file in sorted(folder.glob("*.sql")):
        for name, sql in load_queries(file).items():
            if name in queries:
                raise ValueError(f"{file.name}: query {name!r} is defined in another file too")
            queries[name] = sql
    return queries


def load_migrations(folder: Path) -> list[tuple[int, str]]:
    """Numbered migrations `0001_name.sql`, in order."""
    found = []
    for file in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        found.append((int(file.name[:4]), file.read_text()))
    return found
