"""The PostgreSQL backend's named queries, loaded once from its one file per noun
(tasks.sql beside tasks.py, and so on): the same files and names as SQLite's, a test
checks.

Parameters are asyncpg's positional ones (`$1`). Batches travel as arrays opened with
`unnest()`, so a frame of a thousand rows is one statement and one round trip. Every query
that compares with "now" takes it as a parameter, so a fake clock reaches SQL; named leases
are the exception, judged on the database's own clock (store/base.py says why).
"""

from __future__ import annotations

from pathlib import Path

from ..sqlfile import load_query_files

Q = load_query_files(Path(__file__).parent)
