"""Many rows in a few statements: a multi-row INSERT that binds once the values every
row shares.

`executemany` binds each value of each row from Python and steps the statement once
per row. For the task row (20 columns) that was about 10 µs a row on the benchmark
machine, half of a batch submit's server time. One statement of many rows steps once,
and a batch's tasks mostly differ in three values (id, payload, fair tag): bound once
each, the shared values cost nothing per row. Measured (1,000-row commits into the
task table with its indexes): 100k rows/s with executemany, 140k with every value bound
per row, 250k with the shared values bound once.

Statements come in a few fixed sizes (a batch of 1,000 is 3 x 256, 3 x 64, 2 x 16 and
2 x 4 rows), so the connection's statement cache keeps them compiled whatever the
batch sizes are.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

SIZES = (256, 64, 16, 4, 1)  # rows per statement, largest first
FEW = 4  # fewer rows than this: executemany, no statement to build
# Which values a batch shares varies (its functions, delays, priorities...). Each pattern
# is a statement of each size; a compiled 256-row statement keeps its last values bound
# (up to 256 inline payloads). So a statement text takes its first PATTERNS patterns and
# then binds every value per row: at most (PATTERNS + 1) x len(SIZES) statements.
PATTERNS = 8
_patterns: dict[str, set[tuple[int, ...]]] = {}
_patterns_lock = threading.Lock()


def insert_rows(conn: sqlite3.Connection, insert: str, rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` with `insert`, an `INSERT ... VALUES (?, ..., ?)` of one row, as
    `conn.executemany(insert, rows)` would (the same rows, in the same order)."""
    if len(rows) < FEW:
        conn.executemany(insert, rows)
        return
    width = len(rows[0])
    columns = list(zip(*rows, strict=True))
    shared = _pattern(insert, tuple(j for j, column in enumerate(columns) if _same(column)))
    varying = tuple(j for j in range(width) if j not in shared)
    values = [columns[j][0] for j in shared]
    if not varying:  # the same row n times: nothing tells them apart but a constraint
        conn.executemany(insert, rows)
        return
    pick = itemgetter(*varying)
    each = list(chain.from_iterable(map(pick, rows))) if len(varying) > 1 else list(map(pick, rows))
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    v, done = len(varying), 0
    for size in SIZES:
        if size > 1 and len(shared) + size * v > limit:
            continue
        while len(rows) - done >= size:
            sql = _statement(insert, width, shared, varying, size)
            conn.execute(sql, values + each[done * v : (done + size) * v])
            done += size


def _pattern(insert: str, shared: tuple[int, ...]) -> tuple[int, ...]:
    """`shared`, if it is one of the first PATTERNS sharing patterns seen for `insert`;
    past them, none: each pattern is a statement of each size, compiled, cached by the
    connection and holding its last values, so their number stays bounded."""
    with _patterns_lock:
        known = _patterns.setdefault(insert, set())
        if shared in known or len(known) < PATTERNS:
            known.add(shared)
            return shared
    return ()


# Values equal only to values SQLite stores the same way (a bytearray equal to bytes is
# the same blob): their column needs no type check. That holds for the built-in types the
# callers' rows hold (task_row's); a str subclass with its own __eq__, or a type with an
# adapter that compares equal to a str, could be stored otherwise: pass built-in values.
_PLAIN = frozenset({str, bytes, type(None)})


def _same(column: tuple[Any, ...]) -> bool:
    # Equal and of one type: 1 == 1.0 == True, but each is stored as it was given; and
    # 0.0 == -0.0, but a float keeps its sign. Most shared columns of a task row are text
    # or NULL: building their types' list was half of this check's time.
    first = column[0]
    n = len(column)
    if column.count(first) != n:
        return False
    kind = type(first)
    if kind in _PLAIN:
        return True
    if list(map(type, column)).count(kind) != n:
        return False
    return not (kind is float and first == 0.0 and len({str(x) for x in column}) > 1)


@functools.lru_cache(maxsize=512)
def _statement(
    insert: str, width: int, shared: tuple[int, ...], varying: tuple[int, ...], size: int
) -> str:
    head, found, one = insert.rpartition("VALUES")
    if not found or one.strip().rstrip(";").replace(" ", "") != "(" + ",".join("?" * width) + ")":
        raise ValueError(f"not a one-row INSERT ... VALUES of {width} values: {insert!r}")
    slot = {j: f"?{k + 1}" for k, j in enumerate(shared)}
    base = len(shared) + 1
    rows = []
    for r in range(size):
        for k, j in enumerate(varying):
            slot[j] = f"?{base + r * len(varying) + k}"
        rows.append("(" + ",".join(slot[j] for j in range(width)) + ")")
    return f"{head}VALUES {','.join(rows)}"
