"""`sluice dev` saves its URL and keys in .sluice/dev.json (cli/main.py's _write_secret)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from sluice.cli.main import _write_secret


def test_the_keys_file_is_written_whole_and_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".sluice" / "dev.json"
    _write_secret(path, json.dumps({"api_key": "sk_one"}))
    path.chmod(0o644)  # an older file someone opened up
    _write_secret(path, json.dumps({"api_key": "sk_two"}))

    assert json.loads(path.read_text()) == {"api_key": "sk_two"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["dev.json"]  # no part file left
