"""The front door's rules hold for every spelling of a path the framework routes alike:
`/v1/tenants/`, `/v1//tenants` and `/v1/tenants%2F` reach the same handler as
`/v1/tenants`, so they get the same answer to the same key. And a request that reaches
a handler without the door's admission is refused, not served to nobody."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

import sluice
from sluice.api.route import Access
from sluice.api.table import ROUTES
from tests.harness import running_server

app = sluice.App("door")
ADMIN = "admin-secret-for-door-tests"


@app.task
def echo(x: object = None) -> object:
    return x


def in_process(asgi: Any, root_path: str = "") -> httpx.AsyncClient:
    """A client of an ASGI app called in this process (the door, or the framework past
    it), as an ASGI server would call it."""
    transport = httpx.ASGITransport(app=asgi, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://door")


def _spellings(path: str) -> list[str]:
    """The path with each parameter filled, as the framework also routes it."""
    concrete = re.sub(r"\{\w+\}", "x", path)
    return [
        concrete + "/",
        concrete.replace("/v1/", "/v1//", 1),
        concrete + "%2F",
        concrete + "//",
    ]


async def test_every_spelling_of_a_guarded_route_needs_its_key(tmp_path: Path) -> None:
    guarded = [r for r in ROUTES if r.access is not Access.ANYONE]
    assert any(r.access is Access.ADMIN for r in guarded)
    async with (
        running_server(tmp_path, app, admin_key=ADMIN) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        tenant = {"authorization": f"Bearer {server.api_key}"}
        for route in guarded:
            for spelling in _spellings(route.path):
                nobody = await http.request(route.method, spelling, content=b"{}")
                expected = 404 if route.access is Access.ADMIN else 401
                assert nobody.status_code == expected, (route.method, spelling, nobody.text)
                assert nobody.json()["error"]["code"] in ("not_found", "missing_key")
                if route.access is Access.ADMIN:
                    keyed = await http.request(route.method, spelling, headers=tenant,
                                               content=b"{}")  # fmt: skip
                    assert keyed.status_code == 404, (route.method, spelling, keyed.text)
        # What the holes answered before: every tenant to no key, a submit filed under
        # no tenant. The right keys still get in by those spellings.
        admin = {"authorization": f"Bearer {ADMIN}"}
        listed = await http.get("/v1/tenants/", headers=admin)
        assert listed.status_code == 200
        assert server.tenant_id in {t["id"] for t in listed.json()["tenants"]}
        submitted = await http.post("/v1/tasks/", json={"function": "echo"}, headers=tenant)
        assert submitted.status_code == 201, submitted.text
        assert server.count(f"tenant_id = '{server.tenant_id}'") == 1
        assert server.count() == 1


async def test_a_handler_reached_past_the_door_refuses_a_caller_it_was_not_given(
    tmp_path: Path,
) -> None:
    # The framework on its own, as a path the door read differently would reach it.
    async with running_server(tmp_path, app, admin_key=ADMIN) as server:
        assert server.asgi is not None
        async with in_process(server.asgi.app) as http:
            tenants = await http.get("/v1/tenants")
            assert tenants.status_code == 404
            assert tenants.json()["error"]["code"] == "not_found"
            submit = await http.post("/v1/tasks", json={"function": "echo"})
            assert submit.status_code == 401
            assert submit.json()["error"]["code"] == "missing_key"
            assert (await http.get("/v1/health")).status_code == 200  # open to anyone
        assert server.count() == 0


async def test_behind_a_root_path_the_door_reads_the_path_the_framework_routes(
    tmp_path: Path,
) -> None:
    # A proxy mounting the server under /sluice (uvicorn --root-path): the door takes the
    # root off as the framework does, so each route's rule is the one it applies.
    async with running_server(tmp_path, app, admin_key=ADMIN) as server:
        assert server.asgi is not None
        async with in_process(server.asgi, root_path="/sluice") as http:
            admin = {"authorization": f"Bearer {ADMIN}"}
            assert (await http.get("/sluice/v1/tenants", headers=admin)).status_code == 200
            assert (await http.get("/sluice/v1/tenants/")).status_code == 404
            tenant = {"authorization": f"Bearer {server.api_key}"}
            made = await http.post("/sluice/v1/tasks", json={"function": "echo"}, headers=tenant)
            assert made.status_code == 201, made.text
            refused = await http.post("/sluice/v1/tasks", json={"function": "echo"})
            assert refused.json()["error"]["code"] == "missing_key"
        assert server.count() == 1
