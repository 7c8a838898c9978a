"""The console in headless Chromium against a real server and worker (issue 17 point 5):
every page loads with real data and no console error (screenshots at 1280 px and at a
phone's width are kept), and the flows people use it for: find a failed task, read its
traceback and logs, retry it and see it succeed; pause and resume a function;
bulk-cancel by selector after seeing the count; the keyboard reaches everything."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.dashboard.console import STATES
from tests.browser.conftest import ADMIN_KEY, ARTIFACTS, ROOT, new_page, signed_in
from tests.harness import Running, free_port, running_server, wait_for

pytestmark = pytest.mark.xdist_group("browser")  # one Chromium at a time on 2 cores
ARTIFACTS.mkdir(parents=True, exist_ok=True)
PAGES = ["/", "/?function=ping", "/ui/tasks", "/ui/dead", "/ui/functions", "/ui/workers",
         "/ui/schedules", "/ui/pauses", "/ui/events"]  # fmt: skip


async def submit(server: Running, function: str, *args: Any, **extra: Any) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.post(
            "/v1/tasks", json={"function": function, "args": list(args), **extra},
            headers={"Authorization": f"Bearer {server.api_key}"},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


async def state_of(server: Running, task_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.get(f"/v1/tasks/{task_id}",
                                headers={"Authorization": f"Bearer {server.api_key}"})  # fmt: skip
        return str(answer.json()["state"])


async def real_data(server: Running) -> dict[str, str]:
    """A bit of everything: successes, a dead task, a schedule, a pause, a subscription."""
    ok = [await submit(server, "ping", n) for n in range(5)]
    dead = await submit(server, "charge", 7)
    await wait_for(lambda: state_of(server, dead), timeout=20)
    await wait_for(lambda: _is(server, dead, "dead"), timeout=20)
    await wait_for(lambda: _is(server, ok[-1], "succeeded"), timeout=20)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=headers) as http:
        nightly = {"function": "export", "cron": "0 3 * * *", "args": [10]}
        made = await http.put("/v1/schedules/nightly-export", json=nightly)
        assert made.status_code in (200, 201), made.text
        made = await http.put("/v1/subscriptions/orders-export",
                              json={"topic": "orders", "function": "export"})  # fmt: skip
        assert made.status_code in (200, 201), made.text
    # The rollup and the backlog snapshot as their timers would have them by now.
    await server.node.meters.flush()
    await server.node.snapshot.take_once()
    return {"ok": ok[0], "dead": dead}


async def _is(server: Running, task_id: str, state: str) -> bool:
    return await state_of(server, task_id) == state


def fix(broken: Path) -> None:
    """Deploy the fix: `charge` stops failing."""
    broken.unlink()


def sizes(folder: Path, *names: str) -> list[int]:
    return [(folder / name).stat().st_size for name in names]


async def shoot(page: Any, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_every_page_loads_with_real_data_and_no_console_error(
    browser: Any, console: Running, backend: str
) -> None:
    ids = await real_data(console)
    for width, label in ((1280, "desktop"), (390, "phone")):
        page = await signed_in(browser, console, console.api_key, width=width)
        asked: list[str] = []  # every URL the browser fetched: nothing from the internet
        page.on("request", lambda r, asked=asked: asked.append(r.url))
        for path in [*PAGES, f"/ui/tasks/{ids['dead']}", f"/ui/tasks/{ids['ok']}"]:
            answer = await page.goto(console.url + path)
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            await page.wait_for_load_state("networkidle")
            assert await page.locator("main h1").count() == 1, path
            # It fits the screen: wide tables scroll in their own box, the page does not.
            wide = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert wide <= 0, (path, width, wide)
            name = re.sub(r"[^\w]+", "-", path.strip("/?")) or "overview"
            if name.startswith("ui-tasks-0"):
                name = "task-dead" if ids["dead"] in path else "task-succeeded"
            await shoot(page, f"{backend}-{label}-{name}")
        assert page.errors.messages == [], page.errors.messages
        assert "/ui/static/vendor/htmx-2.0.11.min.js" in " ".join(asked)  # the recorder works
        elsewhere = [u for u in asked if not u.startswith(console.url + "/") and u != "data:,"]
        assert elsewhere == [], elsewhere
        await page.context.close()
    # The admin sees the tenants page and can look at a tenant's pages.
    page = await signed_in(browser, console, ADMIN_KEY)
    assert await page.locator("h1").inner_text() == "Tenants and fairness"
    async with page.expect_navigation():
        await page.select_option("#tenant-pick", label="shop")
    assert await page.locator("h1").inner_text() == "Overview"
    await page.goto(console.url + "/ui/tenants")
    assert "shop" in await page.locator("table").inner_text()
    await shoot(page, f"{backend}-desktop-tenants")
    assert page.errors.messages == [], page.errors.messages


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_user_finds_a_failed_task_reads_it_retries_it_and_sees_it_succeed(
    browser: Any, console: Running, broken: Path
) -> None:
    dead = await submit(console, "charge", 42)
    await wait_for(lambda: _is(console, dead, "dead"), timeout=20)
    page = await signed_in(browser, console, console.api_key)
    # The overview says there are dead letters; the dead-letter page groups them.
    await page.click("nav >> text=Dead letters")
    group = page.locator("tr", has_text="ValueError")
    await group.locator("summary").click()
    assert "card declined for order 42" in await group.inner_text()
    await group.locator("a.id").click()
    await page.wait_for_url(f"{console.url}/ui/tasks/{dead}")
    # Its traceback, and its logs: the logging line with its logger and the print.
    await page.locator("details summary", has_text="ValueError").click()
    assert "Traceback" in await page.locator("pre.traceback").inner_text()
    logs = page.locator("#log-box")
    await logs.locator(".logline", has_text="charging order 42").wait_for()
    assert "shop.payments" in await logs.inner_text()
    assert "card lookup for order 42" in await logs.inner_text()
    # A fix is deployed; the user retries and sees it succeed without reloading.
    fix(broken)
    await page.click("#retry-task")
    await page.locator("#task-state", has_text="succeeded").wait_for(timeout=20_000)
    assert await state_of(console, dead) == "succeeded"
    assert '"charged": 42' in await page.locator("main").inner_text()
    # The waterfall draws both attempts, each stage named in words as well as coloured.
    rows = page.locator(".waterfall .wf-row")
    assert await rows.count() == 2
    assert "#2 succeeded" in await rows.nth(1).inner_text()
    for n in range(2):
        assert "running" in await rows.nth(n).locator(".bar.running .sr").inner_text()
    assert page.errors.messages == [], page.errors.messages


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_user_pauses_a_function_sees_what_it_holds_and_resumes_it(
    browser: Any, console: Running
) -> None:
    page = await signed_in(browser, console, console.api_key)
    await page.click("nav >> text=Pauses")
    await page.select_option("#pause-function", "export")
    await page.click("#create-pause")
    await page.locator("td", has_text="function = export").wait_for()
    held = await submit(console, "export", 3)
    page_task = await new_page(page.context)
    await page_task.goto(f"{console.url}/ui/tasks/{held}")
    await page_task.locator("#task-state", has_text="paused").wait_for()
    assert "pause" in (await page_task.locator(".why").inner_text()).lower()
    await page.reload()
    assert (await page.locator("tbody td.n").first.inner_text()).strip() == "1"  # holding
    await page.click("button[data-lift]")
    await page.locator("td", has_text="No pause.").wait_for()
    await page_task.locator("#task-state", has_text="succeeded").wait_for(timeout=20_000)
    assert page.errors.messages == [] and page_task.errors.messages == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_user_bulk_cancels_by_selector_after_seeing_the_count(
    browser: Any, console: Running
) -> None:
    headers = {"Authorization": f"Bearer {console.api_key}"}
    async with httpx.AsyncClient(base_url=console.url, headers=headers) as http:
        # Held by a pause, so they wait; and one ping that must not be touched.
        await http.post("/v1/pauses", json={"selector": {"function": ["export"]}})
        batch = [{"function": "export", "args": [n]} for n in range(30)]
        answer = await http.post("/v1/tasks/batch", json={"tasks": batch})
        assert answer.status_code in (200, 201), answer.text
    other = await submit(console, "ping", 1)
    page = await signed_in(browser, console, console.api_key)
    await page.goto(f"{console.url}/ui/tasks?function=export&state=paused")
    assert await page.locator("#task-table tbody tr").count() == 30
    await page.click("button[data-verb=cancel]")
    count = page.locator("[data-count]")
    await count.wait_for()
    assert await count.get_attribute("data-count") == "30"
    assert await state_of(console, other) != "cancelled"  # nothing happened yet
    await page.click("#confirm-bulk")
    done = page.locator("[data-done]")
    await done.wait_for()
    assert await done.get_attribute("data-done") == "30"
    async with httpx.AsyncClient(base_url=console.url, headers=headers) as http:
        found = await http.get("/v1/tasks", params={"function": "export", "state": "cancelled"})
        assert len(found.json()["tasks"]) == 30
    assert await state_of(console, other) != "cancelled"
    assert page.errors.messages == [], page.errors.messages


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_keyboard_reaches_the_pages_and_skips_to_the_content(
    browser: Any, console: Running
) -> None:
    page = await signed_in(browser, console, console.api_key)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.keyboard.press("Enter")
    # The jump is a same-document navigation: page.url changes when the browser reports
    # it, which may be after press() returns.
    await page.wait_for_url(console.url + "/#main")
    # Every nav link is reachable by Tab, in order, and opens its page with Enter.
    await page.goto(console.url + "/")
    seen = []
    for _ in range(20):
        await page.keyboard.press("Tab")
        seen.append(await page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Tasks", "Dead letters", "Pauses"} <= set(seen), seen
    await page.focus("nav >> text=Tasks")
    await page.keyboard.press("Enter")
    await page.wait_for_url(console.url + "/ui/tasks")
    # States are told in words, not by colour alone: every coloured state has its name.
    await submit(console, "ping", 1)
    await page.goto(console.url + "/ui/tasks")
    states = await page.locator("#task-table .state").all_inner_texts()
    assert states and all(s.strip().lstrip("●").strip() in STATES for s in states), states
    assert page.errors.messages == [], page.errors.messages


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_screenshots_for_the_readme(browser: Any, console: Running) -> None:
    """The overview and a failed task's page: into the run's artefacts, or, for
    `make screenshots`, where the README shows them (SLUICE_SCREENSHOTS=docs/images)."""
    ids = await real_data(console)
    chosen = os.environ.get("SLUICE_SCREENSHOTS")
    out = ROOT / chosen if chosen else ARTIFACTS
    page = await signed_in(browser, console, console.api_key)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(out / "console-overview.png"))
    await page.goto(f"{console.url}/ui/tasks/{ids['dead']}")
    await page.locator(".logline").first.wait_for()
    await page.screenshot(path=str(out / "console-task.png"), full_page=True)
    assert min(sizes(out, "console-overview.png", "console-task.png")) > 10_000


async def test_the_console_link_make_run_prints_signs_in_at_once(
    browser: Any, tmp_path: Path
) -> None:
    """Issue 17 point 1: `make run` (`cd examples && sluice dev shop:app`) prints a
    `console:` link; opened in a browser, it lands on the overview, signed in."""
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns(
        ".sluice", "outbox", "thumbnails", "images", "__pycache__"))  # fmt: skip
    port = free_port()
    log_path = tmp_path / "dev.log"
    with dev_process(examples, port, log_path):
        pattern = re.compile(r"console: +(http://\S+/ui/signin#key=\S+)")
        found = await wait_for(lambda: pattern.search(log_path.read_text()), timeout=60)
        link = found[1]
        assert link.startswith(f"http://127.0.0.1:{port}/"), link
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await new_page(context)
        await page.goto(link)
        await page.wait_for_url(f"http://127.0.0.1:{port}/")
        assert await page.locator("main h1").inner_text() == "Overview"
        assert "key=" not in page.url  # the key left the address bar
        await page.click("nav >> text=Functions")
        assert "send_welcome" in await page.locator("main").inner_text()
        assert page.errors.messages == [], page.errors.messages
        await context.close()


@contextlib.contextmanager
def dev_process(examples: Path, port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`sluice dev shop:app` in a copy of examples/, as `make run` starts it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "sluice", "dev", "shop:app", "--port", str(port)]
    with open(log_path, "wb") as log:
        dev = subprocess.Popen(argv, cwd=examples, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield dev
        finally:
            dev.terminate()
            try:
                dev.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dev.kill()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_overview_updates_without_a_reload(browser: Any, console: Running) -> None:
    """Issue 17 point 3: live pages. The figures change in place as tasks are submitted."""
    page = await signed_in(browser, console, console.api_key)
    kpi = page.locator('[data-kpi="submitted"]')
    before = int((await kpi.inner_text()).replace(",", ""))
    await page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
    for n in range(3):
        await submit(console, "ping", n)
    await console.node.meters.flush()  # the rollup, as its timer would have it

    async def grown() -> bool:
        return int((await kpi.inner_text()).replace(",", "")) == before + 3

    await wait_for(grown, timeout=15)
    assert await page.evaluate("window.sameDocument") is True
    assert page.errors.messages == [], page.errors.messages


async def test_a_sign_in_link_waits_for_a_click_while_a_session_is_open(
    browser: Any, tmp_path: Path
) -> None:
    # A `#key=` link signs a fresh visitor in at once; one already signed in is asked
    # first: a link from elsewhere must not swap the admin's session for a tenant's.
    from tests.browser.console_app import app

    async with running_server(tmp_path, app, admin_key=ADMIN_KEY) as server:
        page = await signed_in(browser, server, ADMIN_KEY)
        await page.goto(f"{server.url}/ui/signin#key={server.api_key}")
        await page.wait_for_function("document.getElementById('key').value.length > 0")
        assert "#key" not in page.url  # the key left the address bar
        assert await page.evaluate("document.activeElement.textContent.trim()") == "Sign in"
        tenants = await page.goto(f"{server.url}/ui/tenants")
        assert tenants is not None and tenants.status == 200  # still the admin
        await page.goto(f"{server.url}/ui/signin#key={server.api_key}")
        await page.wait_for_function("document.getElementById('key').value.length > 0")
        await page.click("#signin button")
        await page.wait_for_url(f"{server.url}/")
        tenants = await page.goto(f"{server.url}/ui/tenants")
        assert tenants is not None and tenants.status == 403  # the tenant, by a click
        unexpected = [m for m in page.errors.messages if "status of 403" not in m]
        assert unexpected == [], unexpected
