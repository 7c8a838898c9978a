"""The console in a real browser: Debian's Chromium driven by Playwright for Python.

`make test` installs Chromium when it is missing (the Makefile's `browser` target).
Without it these tests skip and say why, except under CI=true, where they fail."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.console_app import app
from tests.harness import Running, process, running_server, wait_for

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "sa_console-tests-admin-key"
# Screenshots of every page are kept as the run's artefacts (`make screenshots` points
# this at docs/images for the README's two).
ARTIFACTS = ROOT / "test-artifacts" / "console"


def chromium() -> str:
    found = os.environ.get("SLUICE_CHROMIUM") or shutil.which("chromium")
    if not found:
        reason = "no Chromium (install Debian's package: `make browser`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: the browser tests must run)", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = chromium()
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """While this file exists, the app's `charge` fails."""
    flag = tmp_path / "charge-is-broken"
    flag.touch()
    return flag


@contextlib.contextmanager
def worker_process(server: Running, broken: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLUICE_URL": server.url,
           "SLUICE_API_KEY": server.api_key, "SLUICE_TEST_BROKEN": str(broken)}  # fmt: skip
    argv = [sys.executable, "-m", "sluice", "worker", "tests.browser.console_app:app",
            "--concurrency", "4", "--grace", "1"]  # fmt: skip
    with process(argv, env, log) as worker:
        yield worker


@pytest.fixture
async def console(tmp_path: Path, backend: str, broken: Path) -> AsyncIterator[Running]:
    """A server with the admin key, its tenant `shop` and a `sluice worker` process."""
    async with running_server(tmp_path, app, backend, admin_key=ADMIN_KEY) as server:
        with worker_process(server, broken, tmp_path / "worker.log") as worker:
            await wait_for(lambda: len(server.node.registry) >= 1 or worker.poll() is not None,
                           timeout=30)  # fmt: skip
            assert worker.poll() is None, "the worker exited: see worker.log"
            yield server


class PageErrors:
    """Console errors and uncaught exceptions of a page: every test asserts none."""

    def __init__(self, page: Any) -> None:
        self.messages: list[str] = []
        page.on("console", lambda m: self.messages.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))


async def new_page(context: Any) -> Any:
    """A page whose console errors are kept in `page.errors.messages`."""
    page = await context.new_page()
    page.errors = PageErrors(page)
    return page


async def signed_in(browser: Any, server: Running, key: str, width: int = 1280) -> Any:
    """A page signed in through the sign-in link `sluice dev` prints (the key after #)."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await new_page(context)
    await page.goto(f"{server.url}/ui/signin#key={key}")
    await page.wait_for_url(f"{server.url}/")
    return page
