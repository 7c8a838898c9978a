"""TLS end to end: a real `sluice server` on HTTPS and WSS with a certificate of a private
CA (made by trustme); clients and workers that verify it, and refuse it without the CA."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import trustme

import sluice
from tests.acceptance.test_processes import SLUICE, Cluster
from tests.harness import wait_for_sync

pytestmark = pytest.mark.acceptance
WORKLOAD = "tests.acceptance.workload:app"


class TlsCluster(Cluster):
    """test_processes' processes, with the server on HTTPS for 127.0.0.1 and localhost."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(tmp / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        (tmp / "cert.pem").write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(tmp / "key.pem"))
        self.url = f"https://127.0.0.1:{self.port}"
        self.env.update(
            SLUICE_URL=self.url,
            SLUICE_TLS_CERT=str(tmp / "cert.pem"),
            SLUICE_TLS_KEY=str(tmp / "key.pem"),
        )
        self.env.pop("SLUICE_CA_FILE", None)

    def health(self) -> dict[str, object]:
        verify = ssl.create_default_context(cafile=self.ca_file)
        return dict(httpx.get(f"{self.url}/v1/health", timeout=2, verify=verify).json())

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"proc-{self.procs.index(proc)}.log").read_text()

    def stop(self) -> None:
        # SIGTERM first: a worker supervisor killed outright would leave its children behind.
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        super().stop()


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsCluster]:
    monkeypatch.delenv("SLUICE_CA_FILE", raising=False)
    running = TlsCluster(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_clients_given_the_ca_submit_and_read_tasks_over_https(
    cluster: TlsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.server()
    with sluice.Client(cluster.url, cluster.api_key, ca_file=cluster.ca_file) as client:
        client.put_function("multiply", {})
        submitted = client.submit({"function": "multiply", "args": [6, 7]})
        assert client.get(submitted.id).state == "ready"

    monkeypatch.setenv("SLUICE_CA_FILE", cluster.ca_file)  # the other way to name the CA

    async def through_aiohttp() -> str:
        async with sluice.AsyncClient(cluster.url, cluster.api_key) as client:
            submitted = await client.submit({"function": "multiply", "args": [1, 2]})
            return (await client.get(submitted.id)).state

    assert asyncio.run(through_aiohttp()) == "ready"


def test_clients_without_the_ca_refuse_the_server_and_send_nothing(cluster: TlsCluster) -> None:
    cluster.server()
    spec = {"function": "multiply", "args": [6, 7]}
    with (
        sluice.Client(cluster.url, cluster.api_key) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.submit(spec)

    async def through_aiohttp() -> None:
        async with sluice.AsyncClient(cluster.url, cluster.api_key) as client:
            await client.submit(spec)

    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(through_aiohttp())
    with sluice.Client(cluster.url, cluster.api_key, ca_file=cluster.ca_file) as client:
        assert list(client.tasks.list()) == []


def test_a_ca_file_is_loaded_once_per_version_and_again_when_rewritten(
    cluster: TlsCluster,
) -> None:
    """Clients share the context of a CA file (loading a trust store costs ~20 ms of CPU
    per client); a file rewritten in place, as a CA rotation does, is read again."""
    cluster.server()
    first = sluice.Client(cluster.url, cluster.api_key, ca_file=cluster.ca_file)
    second = sluice.Client(cluster.url, cluster.api_key, ca_file=cluster.ca_file)
    assert sluice.client.http.tls_context(cluster.ca_file) is sluice.client.http.tls_context(
        cluster.ca_file
    )
    assert list(second.tasks.list()) == []
    trustme.CA().cert_pem.write_to_path(cluster.ca_file)  # another CA, same path
    os.utime(cluster.ca_file, ns=(1, time.time_ns() + 1_000_000_000))  # a new version
    with (
        sluice.Client(cluster.url, cluster.api_key, ca_file=cluster.ca_file) as third,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        list(third.tasks.list())
    assert list(first.tasks.list()) == []  # a client keeps the context it was made with
    first.close()
    second.close()


def test_a_worker_given_the_ca_runs_tasks_over_wss_and_one_without_it_is_refused(
    cluster: TlsCluster,
) -> None:
    cluster.server()
    blind = cluster.start("worker", WORKLOAD)
    wait_for_sync(lambda: "CERTIFICATE_VERIFY_FAILED" in cluster.log(blind), timeout=20)
    assert cluster.health()["workers"] == 0
    blind.send_signal(signal.SIGTERM)
    assert blind.wait(timeout=20) == 0

    # Through the supervisor of --processes 2, which passes --ca-file to its children.
    workers = cluster.start("worker", WORKLOAD, "--processes", "2", "--ca-file", cluster.ca_file)
    wait_for_sync(lambda: cluster.health()["workers"] == 2, timeout=20)
    with sluice.Client(cluster.url, cluster.api_key, ca_file=cluster.ca_file) as client:
        outcomes = client.submit_many([{"function": "multiply", "args": [i, 7]} for i in range(20)])
        tasks = [client.wait(o.id, 20) for o in outcomes]
    assert [(t.state, t.result) for t in tasks] == [("succeeded", i * 7) for i in range(20)]
    assert "wss://127.0.0.1" in cluster.log(workers)
    workers.send_signal(signal.SIGTERM)
    assert workers.wait(timeout=30) == 0


def test_a_server_whose_key_cannot_be_read_stops_with_the_reason(cluster: TlsCluster) -> None:
    missing = cluster.tmp / "missing.pem"
    cluster.env["SLUICE_TLS_KEY"] = str(missing)
    done = subprocess.run(
        [*SLUICE, "server", "--port", str(cluster.port)],
        env=cluster.env, cwd=cluster.tmp, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"sluice: tls_key {missing} cannot be read: No such file or directory\n"
