"""deploy/ holds what runs Sluice on Kubernetes and in Compose (issue 18, point 4). Every
Kubernetes manifest is valid for its Kubernetes version (kubernetes-validate, strict:
unknown fields fail); the KEDA resources, which it has no schemas for, are valid for
tests/deploy/keda_schema.py's. And the fields that must agree between files, and with
the code, do: ports, probe paths (real routes anyone may call), the grace periods
against the worker's drain, the scaling URL and the answer's field names, the worker's
command lines (parsed by the real CLI), the names one resource gives another."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import kubernetes_validate
import msgspec
import pytest
import typer
import yaml

from sluice.api.route import Access
from sluice.api.table import ROUTES
from sluice.cli.main import cli
from sluice.config import Settings
from sluice.contract import Scaling
from tests.deploy.keda_schema import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are written for
DRAIN_MARGIN_S = 10  # OBSERVABILITY.md §5.3: grace period >= drain timeout + 10 s


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(KUBE.glob("*.yaml")):
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def parse_cli(args: list[str]) -> dict[str, Any]:
    """The real `sluice` command line parser's reading of a container's args."""
    group = typer.main.get_command(cli)
    command = group.commands[args[0]]  # type: ignore[attr-defined]
    return dict(command.make_context(args[0], list(args[1:])).params)


def public_get_paths() -> set[str]:
    return {r.path for r in ROUTES if r.method == "GET" and r.access is Access.ANYONE}


@pytest.mark.parametrize(
    ("name", "doc"),
    documents(),
    ids=lambda v: v if isinstance(v, str) else v.get("kind", "") + "/" + v["metadata"]["name"],
)
def test_every_manifest_is_valid_for_its_schema(name: str, doc: dict[str, Any]) -> None:
    if doc["kind"] in SCHEMAS:
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        if doc["kind"] == "ScaledJob":  # its job is a batch/v1 Job's spec
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": doc["spec"]["jobTargetRef"]}  # fmt: skip
            kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_misspelt_field_fails_validation() -> None:
    """The validation has teeth: both kinds of schema refuse an unknown field."""
    deployment = named("Deployment", "sluice-worker")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    scaled = named("ScaledObject", "sluice-worker")
    broken = {**scaled, "spec": {**scaled["spec"], "cooldown": 1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMAS["ScaledObject"])


def test_ports_and_probes_match_the_server() -> None:
    server = named("Deployment", "sluice-server")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    args = parse_cli(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == args["port"] == Settings().port
    service = named("Service", "sluice")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] in public_get_paths(), f"{probe}: no such route"
        assert check["port"] in ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"


def test_grace_periods_cover_the_workers_drain() -> None:
    worker = named("Deployment", "sluice-worker")
    job = named("ScaledJob", "sluice-long-worker")
    for spec in (
        worker["spec"]["template"]["spec"],
        job["spec"]["jobTargetRef"]["template"]["spec"],
    ):
        (container,) = spec["containers"]
        args = parse_cli(container["args"])
        assert args["grace"] is not None, "an unbounded drain needs a grace Kubernetes can wait for"
        assert spec["terminationGracePeriodSeconds"] >= args["grace"] + DRAIN_MARGIN_S
    server = named("Deployment", "sluice-server")
    env = {
        e["name"]: e.get("value")
        for e in server["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    delay = float(env["SLUICE_SHUTDOWN_DELAY_S"])
    assert (
        server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        >= delay + DRAIN_MARGIN_S
    )


def test_scalers_read_the_real_endpoint_and_its_fields() -> None:
    fields = set(Scaling.__struct_fields__)
    route = re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", next(
        r.path for r in ROUTES if r.operation == "getScaling")) + "$")  # fmt: skip
    service = named("Service", "sluice")
    port = service["spec"]["ports"][0]["port"]
    worker = parse_cli(named("Deployment", "sluice-worker")["spec"]["template"]["spec"]
                       ["containers"][0]["args"])  # fmt: skip
    triggers = [*named("ScaledObject", "sluice-worker")["spec"]["triggers"],
                *named("ScaledJob", "sluice-long-worker")["spec"]["triggers"]]  # fmt: skip
    for trigger in triggers:
        meta = trigger["metadata"]
        url = urlparse(meta["url"])
        assert route.match(url.path), url.path
        assert url.hostname == "sluice.sluice.svc" and url.port == port
        assert meta["valueLocation"] in fields
        auth = named("TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["spec"]["secretTargetRef"][0]["parameter"] == "token"  # bearer
        assert meta["authMode"] == "bearer"
    throughput = named("ScaledObject", "sluice-worker")["spec"]["triggers"][0]
    assert throughput["metadata"]["valueLocation"] == "load"
    assert float(throughput["metadata"]["targetValue"]) == worker["concurrency"]
    job_trigger = named("ScaledJob", "sluice-long-worker")["spec"]["triggers"][0]
    assert job_trigger["metadata"]["valueLocation"] == "ready_dispatchable"


def test_names_one_resource_gives_another_exist() -> None:
    scaled = named("ScaledObject", "sluice-worker")
    named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    secret = named("Secret", "sluice")
    keys = set(secret["stringData"])
    for _, doc in documents():
        text = yaml.safe_dump(doc)
        for ref in re.findall(r"secretKeyRef:\s*\{?\s*key: ([\w-]+)", text):
            assert ref in keys
    for auth in of_kind("TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "sluice" and ref["key"] in keys
    for pdb in of_kind("PodDisruptionBudget"):
        labels = pdb["spec"]["selector"]["matchLabels"]
        assert any(d["spec"]["selector"]["matchLabels"] == labels for d in of_kind("Deployment"))
    for job in of_kind("ScaledJob"):
        args = parse_cli(job["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["args"])
        assert args["exit_when_idle"]  # a Job's worker ends


def test_compose_and_dockerfile_agree_with_the_server() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "server-a", "server-b", "workers"} <= set(services)
    port = Settings().port
    for name in ("server-a", "server-b"):
        server = services[name]
        assert parse_cli(server["command"])["port"] == port
        assert server["ports"][0].endswith(f":{port}")
        assert "/v1/ready" in " ".join(server["healthcheck"]["test"])
    workers = parse_cli(services["workers"]["command"])
    assert workers["autoscale"] == "0:8"
    assert (
        int(services["workers"]["stop_grace_period"].rstrip("s"))
        >= workers["grace"] + DRAIN_MARGIN_S
    )
    assert "/v1/ready" in public_get_paths()
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile
    assert (
        msgspec.json.decode(
            re.search(r"^CMD (.*)$", dockerfile, re.M)[1]  # type: ignore[index]
        )[0]
        == "server"
    )
