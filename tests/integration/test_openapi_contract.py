"""The live server keeps the promises of its own /openapi.json.

schemathesis reads the document the running server serves, generates requests for every
operation in it (sent with the tenant's bearer key, over real HTTP to a real uvicorn server),
and checks every answer: never a 5xx, a documented status code, a documented content type,
and a body that matches the documented schema.

The server runs in the pytest event loop (tests/harness.py); schemathesis and Hypothesis
are synchronous, so every schemathesis call runs in a worker thread (asyncio.to_thread)
while the loop keeps serving. Generation is derandomized, so each run sends the same
requests; each operation gets at most MAX_EXAMPLES examples per generation mode.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

import sluice
from tests.harness import Running, running_server, running_worker

app = sluice.App("contract")


@app.task
def echo(x: object = None) -> object:
    return x


@app.task(retry=sluice.RetryPolicy(max_attempts=1))
def boom() -> None:
    raise RuntimeError("boom, as planned")


ADMIN_KEY = "sk_admin_contract-test-only"
ADMIN_PATHS = ("/v1/tenants", "/metrics")  # the admin surface: the admin key, 404 to others
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,  # the document is no looser than the server (ST202)
]
# A request the document allows may still be refused: by a rule no schema states (422: a
# cron that never fires, priority_min above priority_max), by the server's policy (403:
# a target on an internal address), or for an id that is not there (404), a state (409),
# a quota (429). Anything else, a 400 above all, means the document says too little.
ACCEPTED_STATUSES = ["2xx", "401", "403", "404", "409", "422", "429"]
MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 10.0
# The server holds these open until the task ends (a long-poll of up to 60 s; an event
# stream). No worker runs while requests are generated, so a seeded task that has not
# ended would hold the request for its whole timeout: they get ended tasks as seeds only.
WAITS_FOR_END = ("/result", "/events", "/logs", "/logs/stream")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,  # real HTTP round trips; latency is not under test here
    # No shrinking: a failing case is reported as found (schemathesis prints it with a curl
    # line to reproduce), which keeps a failing run as quick as a passing one. An operation
    # stops at its first failing case; the other operations still run and report.
    phases=[Phase.explicit, Phase.generate],
    # Generated data is drawn through schemathesis's own filters; a slow or filter-heavy
    # operation is not a contract failure.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=False,
)


@dataclass(frozen=True)
class Seeds:
    """Real ids for path parameters, so generated requests also reach the 2xx paths: tasks
    in each state a client can meet, a registered function, a spare tenant and its key.
    A path parameter with no seeds here is only ever generated."""

    ended: list[str]  # succeeded, dead, cancelled
    scheduled: str
    tenant_id: str
    key_id: str

    def for_parameter(self, operation: Any, name: str) -> list[str]:
        if name == "task_id":
            if operation.path.endswith(WAITS_FOR_END):
                return self.ended
            return [*self.ended, self.scheduled]
        return {"name": ["echo"], "tenant_id": [self.tenant_id], "key_id": [self.key_id]}.get(
            name, []
        )


async def _submit(http: httpx.AsyncClient, spec: dict[str, Any]) -> str:
    response = await http.post("/v1/tasks", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _seed(server: Running, http: httpx.AsyncClient, round_: int) -> Seeds:
    # Generated pauses may hold every task (a priority range holds them all): lift them.
    for pause in (await http.get("/v1/pauses")).json()["pauses"]:
        assert (await http.delete(f"/v1/pauses/{pause['id']}")).status_code == 200
    async with running_worker(server, app, concurrency=2):
        succeeded = await _submit(http, {"function": "echo", "args": [{"n": 1}]})
        dead = await _submit(http, {"function": "boom"})
        for task_id, state in ((succeeded, "succeeded"), (dead, "dead")):
            response = await http.get(f"/v1/tasks/{task_id}/result", params={"timeout": 10})
            assert response.json()["state"] == state, response.text
    scheduled = await _submit(http, {"function": "echo", "delay": 3600, "tags": ["contract"]})
    cancelled = await _submit(http, {"function": "echo", "delay": 3600})
    response = await http.post(f"/v1/tasks/{cancelled}/cancel")
    assert response.status_code == 200, response.text
    # A spare tenant, so that revoking its key never locks this test out.
    spare = await server.node.tenants.create(f"spare-{round_}")
    await server.node.tenants.create_key(spare.id)
    (key,) = await server.node.tenants.keys(spare.id)
    return Seeds([succeeded, dead, cancelled], scheduled, spare.id, key.id)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _strategies(
    operation: Any, mode: GenerationMode, seeds: Seeds, tenant_key: str, names_function: bool
) -> st.SearchStrategy[Any]:
    """Fully generated requests, plus (positive mode) the same with real path parameters."""
    # Every operation is sent the tenant's key. The admin surface is also sent the admin
    # key (the harness sets none; this test passes one): with the tenant key it answers
    # its documented 404, with the admin key it does its work.
    keys = [tenant_key, ADMIN_KEY] if operation.path.startswith(ADMIN_PATHS) else [tenant_key]
    options = [operation.as_strategy(generation_mode=mode, headers=_auth(k)) for k in keys]
    if mode is not GenerationMode.POSITIVE:
        return st.one_of(options)
    if names_function:
        options.append(operation.as_strategy(headers=_auth(keys[-1])).map(_registered))
    seeded = {
        name: values
        for name in (p.name for p in operation.path_parameters)
        if (values := seeds.for_parameter(operation, name))
    }
    for combination in itertools.product(*seeded.values()):
        parameters = dict(zip(seeded, combination, strict=True))
        options.append(operation.as_strategy(headers=_auth(keys[-1]), path_parameters=parameters))
    return st.one_of(options)


def _registered(case: Any) -> Any:
    """The case with the registered function named wherever its body names one: a
    generated name is never registered, so such a submit could only stop at its 404."""
    body = case.body
    if isinstance(body, dict):
        tasks = body.get("tasks")  # a generated batch body may hold anything there
        listed = tasks if isinstance(tasks, list) else []
        for spec in [body, *(t for t in listed if isinstance(t, dict))]:
            if isinstance(spec.get("function"), str):
                spec["function"] = "echo"
    return case


def _exercise(
    operation: Any,
    mode: GenerationMode,
    strategy: st.SearchStrategy[Any],
    base_url: str,
    statuses: collections.Counter[int],
) -> list[str]:
    """Run the generated cases against the live server; return what failed, if anything."""
    with requests.Session() as session:

        @HYPOTHESIS
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        # schemathesis reports failed checks as a FailureGroup, a BaseExceptionGroup.
        except (Exception, BaseExceptionGroup) as exc:
            return [f"{operation.label} [{mode}] {type(exc).__name__}:\n{exc}"]
    return []


def _negatable(operation: Any) -> bool:
    """Whether a schema-violating request exists for the operation.

    Negative mode needs something to violate: a request body or a typed query parameter.
    An operation that takes only a free string in its path (or nothing) has no invalid
    request (the auth header is fixed to a valid key), and schemathesis raises
    Unsatisfiable for it; such operations get positive mode only.
    """
    return bool(operation.body) or any(True for _ in operation.query)


def _load(url: str) -> Any:
    config = schemathesis.Config.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES}}}
    )
    return schemathesis.openapi.from_url(
        f"{url}/openapi.json", config=config, timeout=REQUEST_TIMEOUT_S
    )


def _names_function(document: dict[str, Any], operation: Any) -> bool:
    """Whether the operation's request body has a `function` field, at any depth."""
    components = document.get("components", {}).get("schemas", {})
    body = document["paths"][operation.path][operation.method.lower()].get("requestBody", {})
    pending = [body]
    seen: set[str] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending += node
        elif isinstance(node, dict):
            if "function" in node.get("properties", {}):
                return True
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                pending.append(components.get(ref.rsplit("/", 1)[-1]))
            pending += list(node.values())
    return False


def _documented(document: dict[str, Any]) -> set[str]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


async def test_every_operation_keeps_the_documented_contract(tmp_path: Path) -> None:
    failures: list[str] = []
    tested: list[str] = []
    summary: list[str] = []
    async with running_server(tmp_path, app, admin_key=ADMIN_KEY) as server:
        headers = {"authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
            document = (await http.get("/openapi.json")).json()
            schema = await asyncio.to_thread(_load, server.url)
            rounds = itertools.count()
            seeds: Seeds | None = None
            for result in schema.get_all_operations():
                if not isinstance(result, Ok):
                    failures.append(f"schemathesis cannot read an operation: {result.err()}")
                    continue
                operation = result.ok()
                tested.append(operation.label)
                modes = [GenerationMode.POSITIVE]
                if _negatable(operation):
                    modes.append(GenerationMode.NEGATIVE)
                for mode in modes:
                    if seeds is None:
                        seeds = await _seed(server, http, next(rounds))
                    strategy = _strategies(
                        operation, mode, seeds, server.api_key, _names_function(document, operation)
                    )
                    statuses: collections.Counter[int] = collections.Counter()
                    failures += await asyncio.to_thread(
                        _exercise, operation, mode, strategy, server.url, statuses
                    )
                    summary.append(f"{operation.label} [{mode}]: {dict(sorted(statuses.items()))}")
                    if operation.method.upper() not in SAFE_METHODS:
                        seeds = None  # it may have cancelled, retried or deleted them

    print("\n".join(summary))  # pytest -s shows which statuses each operation reached
    # Every operation the live document lists was exercised: none skipped, none unread.
    assert sorted(tested) == sorted(_documented(document))
    assert not failures, "\n\n".join(failures) + "\n\nstatuses seen:\n" + "\n".join(summary)
