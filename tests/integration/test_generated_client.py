"""The OpenAPI document is usable by standard tooling: a client generated from a live
server's `/openapi.json` by openapi-python-client submits, gets and lists tasks.

The generator is strict (`--fail-on-warning`), and every operation of the document must
come out as a module: an operation it cannot read (an array without `items` once made it
drop both submits and the schedule PUT) fails here with the generator's own words.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import sluice
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("generated")
PACKAGE = "sluice_generated_client"
# The generator's formatting hooks (ruff) are left out: they change nothing it reads.
CONFIG = "post_hooks: []\n"


@app.task
def add(a: int, b: int) -> int:
    return a + b


def _snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


async def _generate(document: dict[str, Any], into: Path) -> None:
    """Run openapi-python-client on the document; fail with its output on any warning."""
    spec, config = into / "openapi.json", into / "generator.yaml"
    spec.write_text(json.dumps(document))
    config.write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
        "--config", str(config), "--meta", "none", "--output-path", str(into / PACKAGE),
        "--fail-on-warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    report = out.decode(errors="replace")
    assert process.returncode == 0, f"openapi-python-client failed:\n{report}"
    assert "Warning" not in report, f"openapi-python-client warned:\n{report}"


@pytest.fixture
def generated_path(tmp_path: Path) -> Iterator[Path]:
    """The generated package is imported from tmp_path, and forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_generated_client_submits_gets_and_lists_tasks(
    tmp_path: Path, generated_path: Path
) -> None:
    async with running_server(tmp_path, app) as server, running_worker(server, app):
        async with httpx.AsyncClient(base_url=server.url) as http:
            document = (await http.get("/openapi.json")).raise_for_status().json()
        await _generate(document, generated_path)

        operations = {op["operationId"] for path in document["paths"].values()
                      for op in path.values()}  # fmt: skip
        made = {p.stem for p in (generated_path / PACKAGE / "api").rglob("*.py")}
        dropped = sorted(o for o in operations if _snake(o) not in made)
        assert not dropped, f"the generator left out {dropped}"

        models = _module("models")
        where = {p.stem: p.parent.name for p in (generated_path / PACKAGE / "api").rglob("*.py")}
        calls = {op: _module(f"api.{where[_snake(op)]}.{_snake(op)}") for op in (
            "submitTask", "submitBatch", "getTask", "listTasks", "putSchedule")}  # fmt: skip
        client = _module("client").AuthenticatedClient(base_url=server.url, token=server.api_key)
        async with client:
            submitted = await calls["submitTask"].asyncio_detailed(
                client=client, body=models.TaskSpec(function="add", args=[2, 3])
            )
            assert submitted.status_code == 201, submitted.content
            outcome = submitted.parsed
            assert isinstance(outcome, models.SubmitOutcome) and outcome.created

            specs = [models.TaskSpec(function="add", args=[i, i]) for i in range(3)]
            batch = await calls["submitBatch"].asyncio(
                client=client, body=models.BatchRequest(tasks=specs)
            )
            assert isinstance(batch, models.BatchOutcome), batch
            assert len(batch.tasks) == 3

            async def succeeded() -> Any:
                task = await calls["getTask"].asyncio(client=client, task_id=outcome.id)
                assert isinstance(task, models.Task), task
                return task if task.state == "succeeded" else None

            task = await wait_for(succeeded)
            assert (task.function, task.args, task.result) == ("add", [2, 3], 5)
            assert [a.outcome for a in task.attempts] == ["succeeded"]

            page = await calls["listTasks"].asyncio(client=client, function=["add"], limit=10)
            assert isinstance(page, models.TaskPage), page
            listed = {t.id for t in page.tasks}
            assert listed == {outcome.id, *(t.id for t in batch.tasks)}

            schedule = await calls["putSchedule"].asyncio(
                client=client, name="nightly",
                body=models.ScheduleSpec(function="add", cron="0 3 * * *", args=[1, 2]),
            )  # fmt: skip
            assert isinstance(schedule, models.Schedule), schedule
            assert (schedule.name, schedule.args) == ("nightly", [1, 2])
