"""A route cannot exist undocumented: the application's routes are exactly the
document's operations (both come from the route table, api/table.py), and no handler
authenticates (the front door does, once: api/door.py)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

import sluice
from sluice.api.table import ROUTES
from tests.harness import running_server

app = sluice.App("table")
API = Path(__file__).parents[2] / "sluice" / "api"


@app.task
def echo(x: object = None) -> object:
    return x


async def test_the_applications_routes_are_exactly_the_documents(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            document = (await http.get("/openapi.json")).json()
        assert server.asgi is not None
        framework = server.asgi.app  # behind the front door
        served = {
            (method, re.sub(r":\w+\}", "}", route.path))
            for route in framework.routes
            for method in getattr(route, "methods", ())
            if method not in ("OPTIONS", "HEAD") and route.path != "/openapi.json"
            and not _console(route.path)
        }  # fmt: skip
        documented = {
            (method.upper(), path) for path, item in document["paths"].items() for method in item
        }
        assert served == documented
        assert len(documented) == len(ROUTES)
        operations = [op["operationId"] for item in document["paths"].values()
                      for op in item.values()]  # fmt: skip
        assert len(set(operations)) == len(operations)


def _console(path: str) -> bool:
    """The web console's pages and files (sluice/dashboard): HTML for people, not API."""
    return path == "/" or path.startswith("/ui/")


def test_no_handler_authenticates_or_works_around_a_type() -> None:
    for path in sorted(API.glob("*.py")):
        text = path.read_text()
        assert "type: ignore" not in text, path.name
        if path.name not in ("door.py", "workers.py"):
            assert ".authenticate" not in text and "is_admin" not in text, path.name
