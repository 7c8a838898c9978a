"""What `pip install sluice` gets: one version, written once; a wheel whose own
requirements are the client's and the worker's only, the server's behind `[server]`;
an sdist beside it. (`make smoke-package` installs both into fresh venvs.)"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

import sluice
from sluice.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
SERVER = {"litestar", "uvicorn", "asyncpg", "croniter", "prometheus-client"}


def test_the_version_is_written_once_and_sluice_version_prints_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "sluice/__init__.py"
    shown = CliRunner().invoke(cli, ["--version"])
    assert (shown.exit_code, shown.stdout) == (0, f"sluice {sluice.__version__}\n")


def test_a_changelog_names_the_current_version() -> None:
    assert f"## {sluice.__version__}" in (ROOT / "CHANGELOG.md").read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, as `python -m build` makes them (the dev extra has it)."""
    try:
        import build  # noqa: F401
        import hatchling  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("`build` and `hatchling` are not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(name))
    return [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]


def test_the_wheel_needs_no_server_package_without_the_server_extra(built: Path) -> None:
    (wheel,) = built.glob(f"sluice-{sluice.__version__}-py3-none-any.whl")
    requirements = _requirements(wheel)
    plain = {r.name for r in requirements if r.marker is None}
    server = {r.name for r in requirements if r.marker and r.marker.evaluate({"extra": "server"})}
    assert plain and not plain & SERVER, plain & SERVER
    assert {"msgspec", "httpx", "typer"} <= plain
    assert server >= SERVER
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "sluice/py.typed" in names
    for dialect in ("sqlite", "postgres"):  # the query files ship with the code
        assert any(n.startswith(f"sluice/store/{dialect}/") and n.endswith(".sql") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)


def test_the_sdist_holds_the_package_the_docs_and_the_changelog(built: Path) -> None:
    (sdist,) = built.glob(f"sluice-{sluice.__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "sluice/__init__.py"} <= names
