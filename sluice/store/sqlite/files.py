"""The database's files are the owner's only: they hold webhook and target secrets and
key hashes. The store makes its missing folders 0700 and the database file 0600 before
SQLite opens it; SQLite gives the -wal and -shm files it makes the database file's mode."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def create_private(path: Path) -> None:
    """Make the missing folders of `path` and the empty file, owner-only; an existing
    file and folders are left as the operator set them."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
