"""The live server keeps its contract along the links of its own /openapi.json.

schemathesis builds a state machine from the document's `links` (submitTask 201 feeds
getTask, cancelTask, deleteTask, retryTask, waitResult and taskEvents; createPause feeds
deletePause; putSchedule its get, pause, resume and delete; createTenant its keys and
quota; ...) and runs chains of calls against a real uvicorn server. Every answer is
checked as in test_openapi_contract.py: never a 5xx, a documented status and content
type, a body that matches its schema, and no schema-valid request refused (ST202).

The chains follow the document's links only (schemathesis's own inference is off), so
what is tested is what the document says. Which links a run follows, and whether the
object a link names still exists when it is followed (a bulk delete may come between),
is up to the generated chain; that every link leads where it says is shown apart, one
link at a time from a fresh answer (`test_every_link_leads_where_it_says`).

Each scenario first calls every operation that has links once, with a valid request,
so every link can be followed from its first step; chains may also start at any
operation that takes no id (lists, bulk verbs, health), whose effects then meet the
other chains. Only revokeKey (an id no link gives) is left to the contract test.

Each scenario starts in a world of its own: a new tenant (with `echo` registered) whose
key the scenario uses, and tenant names made unique to it. Otherwise a replayed prefix
would meet what an earlier scenario left (a deduplicated key answers 200 where it
answered 201, a tenant name 409), take another branch, and Hypothesis would report its
own generation as flaky.

Long-polls: no worker runs, so no task ends while the scenarios run. `waitResult` holds
the request for its `timeout`: a generated timeout above WAIT_S (or none, 30 s) is cut
to WAIT_S before it is sent; the parameter's whole range is the contract test's
business, where only ended tasks are waited for. `taskEvents` streams until the task
ends: schemathesis stops reading a stream after `max-stream-events` events (one: the
state as it is now, sent at once) or after `request-timeout` seconds in all.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import Bundle, initialize, rule
from schemathesis import GenerationMode
from schemathesis.core.errors import format_transition
from schemathesis.core.result import Ok
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

import sluice
from tests.harness import running_server
from tests.integration.test_openapi_contract import (
    ACCEPTED_STATUSES,
    ADMIN_KEY,
    ADMIN_PATHS,
    CHECKS,
    _registered,
)

app = sluice.App("stateful")


@app.task
def echo(x: object = None) -> object:
    return x


REQUEST_TIMEOUT_S = 10.0
WAIT_S = 0.2  # waitResult's timeout at most: no task ends meanwhile, so it takes this long
STEPS = 30  # calls per scenario at most, its first ones included
SCENARIOS = 40
HYPOTHESIS = settings(
    max_examples=SCENARIOS,
    stateful_step_count=STEPS,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: a failing chain is reported as found, each step with its curl line.
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
# Links whose target cannot answer 2xx while no worker runs: a retry needs a dead task.
NO_2XX_WITHOUT_WORKERS = {"RetryTask": 409}
# Generated cron expressions and zone names almost never mean anything (a 422; see
# tests/policy/test_input_fuzz.py), and a schedule never created feeds no link: a
# schedule's are replaced by one of these, picked by the generated value.
CRONS = ["* * * * *", "*/5 * * * *", "0 9 * * 1-5", "30 2 * * *", "0 0 1 * *", "0 */5 * * * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


def _config(tenant_key: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            # Known to schemathesis, so it generates no Authorization of its own; each
            # call replaces it with its scenario's key (or the admin key).
            "headers": {"Authorization": f"Bearer {tenant_key}"},
            "request-timeout": REQUEST_TIMEOUT_S,
            "max-stream-events": 1,
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES}},
            "phases": {"stateful": {"inference": {"algorithms": []}}},
        }
    )


def _new_tenant(url: str, number: int) -> str:
    """A tenant of the scenario's own, with `echo` registered; returns its key."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = requests.post(
        f"{url}/v1/tenants", json={"name": f"scenario-{number}"}, headers=admin, timeout=10
    )
    assert created.status_code == 201, created.text
    key = str(created.json()["api_key"])
    registered = requests.put(
        f"{url}/v1/functions/echo", json={}, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert registered.status_code == 200, registered.text
    return key


def _own_tenant_name(case: Any, number: int) -> None:
    """Tenant names are global: a scenario's are its own, so a replay meets no 409."""
    if isinstance(case.body, dict) and isinstance(name := case.body.get("name"), str):
        case.body["name"] = f"s{number}-{name}"[:64]


def _meaningful_schedule(case: Any) -> None:
    """A schedule's cron and zone, replaced by ones that fire (see CRONS)."""
    body = case.body
    if not isinstance(body, dict):
        return
    for field, choices in (("cron", CRONS), ("timezone", ZONES)):
        if isinstance(body.get(field), str):
            body[field] = choices[len(body[field]) % len(choices)]


def _bounded_wait(case: Any) -> None:
    """A long-poll waits WAIT_S at most: a generated timeout above it (or none, which
    means 30 s) is cut to it; anything else (negative, not a number) is sent as made."""
    query = dict(case.query or {})
    value = query.get("timeout")
    if value is None or (isinstance(value, int | float) and value > WAIT_S):
        query["timeout"] = WAIT_S
    case.query = query


ADJUST: dict[str, Callable[[Any], None]] = {
    "PUT /v1/schedules/{name}": _meaningful_schedule,
    "GET /v1/tasks/{task_id}/result": _bounded_wait,
}


def _links(document: dict[str, Any]) -> dict[str, str]:
    """Every link of the document, as schemathesis names a followed one: link name."""
    labels = {
        op["operationId"]: f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    return {
        format_transition(labels[op["operationId"]], status, name, labels[link["operationId"]]):
        name
        for item in document["paths"].values()
        for op in item.values()
        for status, response in op["responses"].items()
        for name, link in response.get("links", {}).items()
    }  # fmt: skip


def _has_links(operation: Any) -> bool:
    return any("links" in r for r in operation.definition.raw.get("responses", {}).values())


def _calling(operation: Any) -> Callable[..., StepOutput]:
    """The body of a rule that calls `operation` with the generated case it is given."""

    def call(machine: Any, case: Any) -> StepOutput:
        machine.recorder.record_case(case=case)
        output: StepOutput = machine.step(StepInput.initial(case))
        return output

    call.__name__ = f"call_{operation.definition.raw['operationId']}"
    return call


class Record:
    """What the scenarios did: each answer, and each followed link's statuses."""

    def __init__(self) -> None:
        self.answers: collections.Counter[str] = collections.Counter()
        self.followed: collections.defaultdict[str, set[int]] = collections.defaultdict(set)


def _machine(schema: Any, url: str, record: Record) -> type:
    scenarios = itertools.count()

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.number = next(scenarios)
            self.key = _new_tenant(url, self.number)

        def before_call(self, case: Any) -> None:
            # A generated function name is never registered: such a submit could only
            # stop at its 404, and no link from it would be followed.
            _registered(case)
            if case.operation.label == "POST /v1/tenants":
                _own_tenant_name(case, self.number)
            ADJUST.get(case.operation.label, lambda _: None)(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            admin = case.operation.path.startswith(ADMIN_PATHS)
            key = ADMIN_KEY if admin else self.key
            return {
                "base_url": url,
                "timeout": REQUEST_TIMEOUT_S,
                "headers": {"Authorization": f"Bearer {key}"},
            }

        def step(self, input: StepInput) -> StepOutput:
            output: StepOutput = super().step(input)
            if input.transition is not None and input.is_applied:
                record.followed[input.transition.id].add(output.response.status_code)
            return output

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            record.answers[f"{case.operation.label} {response.status_code}"] += 1

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response, checks=CHECKS, transport_kwargs=kwargs, recorder=self.recorder
            )

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result.err()}"
        operation = result.ok()
        name = operation.definition.raw["operationId"]
        if _has_links(operation):  # first, once per scenario: every link can be followed
            strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            decorate = initialize(target=Bundle("catch_all"), case=strategy)
        elif not operation.path_parameters:  # a chain may also start here, in either mode
            strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            if operation.body or any(True for _ in operation.query):
                negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
                strategy = strategy | negative
            decorate = rule(target=Bundle("catch_all"), case=strategy)
        else:
            continue
        setattr(Workflow, f"call_{name}", decorate(_calling(operation)))
    return Workflow


def _run(url: str, tenant_key: str) -> Record:
    schema = schemathesis.openapi.from_url(
        f"{url}/openapi.json", config=_config(tenant_key), timeout=REQUEST_TIMEOUT_S
    )
    record = Record()
    workflow = _machine(schema, url, record)
    schemathesis.generation.stateful.run_state_machine_as_test(workflow, settings=HYPOTHESIS)
    return record


async def test_linked_operations_keep_the_documented_contract(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, admin_key=ADMIN_KEY) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        document = (await http.get("/openapi.json")).json()
        record = await asyncio.to_thread(_run, server.url, server.api_key)
        assert (await http.get("/v1/health")).status_code == 200  # still whole

    print("\n".join(f"{n:4d} {answer}" for answer, n in sorted(record.answers.items())))
    print("\n".join(f"{sorted(s)} {link}" for link, s in sorted(record.followed.items())))
    # The chains went along the document's links (and only along them); every answer on
    # the way passed the checks above.
    links = _links(document)
    assert record.followed and set(record.followed) <= set(links), set(record.followed) - set(links)


# Fixed, valid requests of the operations whose answers carry links.
SOURCES: dict[str, dict[str, Any]] = {
    "submitTask": {"json": {"function": "echo", "args": [1]}},
    "submitBatch": {"json": {"tasks": [{"function": "echo"}, {"function": "echo"}]}},
    "createPause": {"json": {"selector": {"function": ["echo"]}}},
    "putSchedule": {"path": {"name": "nightly"}, "json": {"function": "echo", "cron": "0 2 * * *"}},
    "putSubscription": {
        "path": {"name": "orders"},
        "json": {"topic": "orders", "function": "echo"},
    },
    "putFunction": {"path": {"name": "echo"}, "json": {}},
    "createTenant": {"json": {"name": "linked"}},
}
# Targets whose answer is the object named, and the field that names it.
NAMING = {"getTask": "id", "getSchedule": "name", "getFunction": "name"}


def _pointer(body: Any, expression: str) -> str:
    """The value a `$response.body#/json/pointer` runtime expression names."""
    prefix = "$response.body#"
    assert expression.startswith(prefix), f"not a response body pointer: {expression}"
    for part in expression.removeprefix(prefix).strip("/").split("/"):
        body = body[int(part)] if isinstance(body, list) else body[part]
    return str(body)


async def test_every_link_leads_where_it_says(tmp_path: Path) -> None:
    """Each link of the document, followed from a fresh answer of its operation with the
    value it names, reaches what it names: a 2xx (a retry, 409: no task is dead while no
    worker runs), and the answer is the named object's."""
    async with (
        running_server(tmp_path, app, admin_key=ADMIN_KEY) as server,
        httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as http,
    ):
        document = (await http.get("/openapi.json")).json()
        operations = {
            op["operationId"]: (method.upper(), path, op)
            for path, item in document["paths"].items()
            for method, op in item.items()
        }

        async def call(op_id: str, path: dict[str, str], **kwargs: Any) -> httpx.Response:
            method, template, op = operations[op_id]
            url = template.format(**path)
            key = ADMIN_KEY if url.startswith(ADMIN_PATHS) else server.api_key
            headers = {"Authorization": f"Bearer {key}"}
            if "requestBody" in op and "json" not in kwargs:
                kwargs["json"] = {}  # the targets' bodies are all optional fields
            if op_id == "taskEvents":  # a stream: its first event is the state now
                async with http.stream(method, url, headers=headers, **kwargs) as answer:
                    first = await anext(answer.aiter_lines())
                    assert first.startswith(("event:", "id:", "data:")), first
                    return answer
            if op_id == "waitResult":
                kwargs["params"] = {"timeout": WAIT_S}
            return await http.request(method, url, headers=headers, **kwargs)

        followed = []
        for (source, status), links in _links_by_source(document).items():
            for name, (target, parameters) in links.items():
                request = dict(SOURCES[source])
                if source == "createTenant":  # tenant names are unique
                    request["json"] = {"name": f"linked-{name.lower()}"}
                answer = await call(source, request.pop("path", {}), **request)
                assert answer.status_code == status, (source, answer.text)
                path = {p: _pointer(answer.json(), e) for p, e in parameters.items()}
                reached = await call(target, path)
                expected = NO_2XX_WITHOUT_WORKERS.get(name)
                if expected is not None:
                    assert reached.status_code == expected, (name, reached.status_code)
                else:
                    assert 200 <= reached.status_code < 300, (name, reached.text)
                if target in NAMING:  # the answer is the object the link names
                    (named,) = path.values()
                    assert reached.json()[NAMING[target]] == named, reached.text
                followed.append(name)
    assert sorted(followed) == sorted(n for _, n in _links(document).items())


def _links_by_source(
    document: dict[str, Any],
) -> dict[tuple[str, int], dict[str, tuple[str, dict[str, str]]]]:
    """(operation, status): {link name: (target operation, parameters)}, as served."""
    return {
        (op["operationId"], int(status)): {
            name: (link["operationId"], link["parameters"])
            for name, link in response["links"].items()
        }
        for item in document["paths"].values()
        for op in item.values()
        for status, response in op["responses"].items()
        if "links" in response
    }


# -- what the stateful run found ---------------------------------------------------------

# Target URLs that the document's pattern for HttpTarget.url allows and the server's URL
# parser cannot read: a port out of range or not a number, a port with no host, an
# unclosed IPv6 bracket, a host IDNA cannot encode (a soft hyphen).
UNREADABLE_URLS = ["http://a:99999/", "http://:80/", "http://a:b/", "http://[::1/",
                   "https://\u00ad\u00b7/"]  # fmt: skip


async def test_a_target_url_the_document_allows_is_not_refused_as_malformed(
    tmp_path: Path,
) -> None:
    """ST202, found by the stateful run on PUT /v1/functions/{name}: the server answered
    400 invalid_request to URLs its own document allows. A URL the schema allows gets a
    2xx, a 403 (an address the server does not call) or a 422 (a rule no schema states);
    or the document's pattern refuses it too, and then a 400 is right."""
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}
        ) as http,
    ):
        document = (await http.get("/openapi.json")).json()
        pattern = document["components"]["schemas"]["HttpTarget"]["properties"]["url"]["pattern"]
        refused = {}
        for url in UNREADABLE_URLS:
            response = await http.put("/v1/functions/hooked", json={"target": {"url": url}})
            if re.search(pattern, url) and response.status_code not in (200, 403, 422):
                refused[url] = f"{response.status_code} {response.text}"
        assert not refused, refused
