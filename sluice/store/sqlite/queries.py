"""The SQLite backend's named queries, loaded once from its one file per noun (tasks.sql
beside tasks.py, and so on): the same files and names as PostgreSQL's, a test checks.

Parameters are named (`:tenant_id`). Every query that compares with "now" takes it as
`:now`, so a fake clock reaches the database; named leases are the exception, judged on
the database's own clock (store/base.py says why).
"""

from __future__ import annotations

from pathlib import Path

from ..sqlfile import load_query_files

Q = load_query_files(Path(__file__).parent)
