"""store/sqlite/bulk.py: a multi-row INSERT stores exactly what executemany would."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.store.sqlite import bulk
from sluice.store.sqlite.bulk import SIZES, _statement, insert_rows

COLUMNS = 5
CREATE = "CREATE TABLE t (n INTEGER PRIMARY KEY, a, b, c, d, e)"
INSERT = "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?);"
READ = "SELECT " + ", ".join(f"{c}, typeof({c})" for c in "abcde") + " FROM t ORDER BY n"


def stored(rows: list[tuple[Any, ...]], bulk: bool, limit: int | None = None) -> list[Any]:
    conn = sqlite3.connect(":memory:")
    if limit is not None:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    conn.execute(CREATE)
    if bulk:
        insert_rows(conn, INSERT, rows)
    else:
        conn.executemany(INSERT, rows)
    out = conn.execute(READ).fetchall()
    conn.close()
    return out


# Values that compare equal across types (1 == 1.0 == True) must keep each its own type.
values = st.one_of(
    st.none(), st.integers(-3, 3), st.sampled_from([1, 1.0, True, 0, 0.0, False]),
    st.floats(allow_nan=False), st.text(max_size=3), st.binary(max_size=3),
    st.binary(max_size=3).map(bytearray),  # equal to bytes, and stored as the same blob
)  # fmt: skip
rows = st.lists(st.tuples(*[values] * COLUMNS), max_size=700)


@settings(max_examples=60, deadline=None)
@given(rows)
def test_the_same_rows_as_executemany(rows: list[tuple[Any, ...]]) -> None:
    assert stored(rows, bulk=True) == stored(rows, bulk=False)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.just("shared"), st.integers(-(2**63), 2**63 - 1), st.just(None),
                          st.integers(0, 1), st.just(2.5)), min_size=1, max_size=600))  # fmt: skip
def test_shared_values_are_bound_once_and_stored_in_every_row(
    rows: list[tuple[Any, ...]],
) -> None:
    assert stored(rows, bulk=True) == stored(rows, bulk=False)


def test_a_low_variable_limit_takes_smaller_statements() -> None:
    # SQLite before 3.32 allowed 999 variables; 256 rows of 5 varying values need 1,280.
    rows = [(i, -i, str(i), float(i), bytes([i % 256])) for i in range(1000)]
    assert stored(rows, bulk=True, limit=999) == stored(rows, bulk=False)


def test_rows_in_order_and_none_lost_across_statement_sizes() -> None:
    n = sum(SIZES) * 2 + 3  # every statement size, twice, and a remainder
    rows = [(i, "same", None, i % 2, 1.5) for i in range(n)]
    assert [r[0] for r in stored(rows, bulk=True)] == list(range(n))


def test_a_failing_row_fails_the_insert_as_executemany_does() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE u (k TEXT PRIMARY KEY, v)")
    rows = [(f"k{i}", 1) for i in range(50)] + [("k3", 1)]
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(conn, "INSERT INTO u (k, v) VALUES (?, ?)", rows)


def test_only_a_one_row_insert_of_placeholders_is_taken() -> None:
    with pytest.raises(ValueError, match="one-row INSERT"):
        _statement("INSERT INTO t (a, b) VALUES (?, 1)", 2, (), (0, 1), 4)
    with pytest.raises(ValueError, match="one-row INSERT"):
        _statement("UPDATE t SET a = ?", 1, (), (0,), 4)


def test_equal_values_of_other_types_are_not_taken_as_shared() -> None:
    # 1 == 1.0 == True: bound once, every row would store the first row's type.
    rows = [(i, [1, 1.0, True][i % 3], [0.0, 0, False][i % 3], "x", b"x") for i in range(20)]
    assert stored(rows, bulk=True) == stored(rows, bulk=False)


def test_a_zero_keeps_its_sign() -> None:
    rows = [(i, [0.0, -0.0][i % 2], 0.0, -0.0, "x") for i in range(20)]
    signs = [[str(v) for v in row[::2]] for row in stored(rows, bulk=True)]
    assert signs == [[str(v) for v in row[::2]] for row in stored(rows, bulk=False)]


def test_sharing_patterns_per_statement_are_bounded() -> None:
    # Each pattern of shared values is a statement of each size, compiled and cached:
    # past PATTERNS patterns for one INSERT, every value is bound per row instead.
    conn = sqlite3.connect(":memory:")
    conn.execute(CREATE)
    insert = INSERT.replace("INSERT INTO", "INSERT  INTO")  # a statement text of its own
    for k in range(2 * bulk.PATTERNS):
        # column k % 5 varies; which others are shared changes with k
        rows = [tuple(i if j == k % 5 or j < k // 5 else k for j in range(5)) for i in range(16)]
        insert_rows(conn, insert, rows)
    assert len(bulk._patterns[insert]) == bulk.PATTERNS
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (32 * bulk.PATTERNS,)
