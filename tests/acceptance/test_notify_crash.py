"""A server SIGKILLed mid-delivery loses no notification (issue 19, point 1): a real
`sluice server` delivers a webhook to a receiver that holds the request; the server is
killed while it waits, started again, and delivers the same event under the same
webhook-id; the other tasks' events follow, each task's in order."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import sluice
from tests.acceptance.test_processes import Cluster
from tests.harness import wait_for_sync

pytestmark = pytest.mark.acceptance
NOTIFY_ENV = {
    "SLUICE_WEBHOOKS_ALLOW_LOOPBACK": "true",
    "SLUICE_NOTIFY_INTERVAL_S": "0.05",
    "SLUICE_WEBHOOK_RETRY_S": "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
}


class Receiver(BaseHTTPRequestHandler):
    """Records each delivery; holds the first one's request open until `release`."""

    got: list[tuple[str, dict[str, Any]]] = []
    held = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.got.append((self.headers["webhook-id"], json.loads(body)))
        if not self.held.is_set():
            self.held.set()
            self.release.wait(30)  # the server is killed while this waits
            return
        try:
            self.send_response(200)
            self.end_headers()
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    Receiver.held = threading.Event()
    Receiver.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        Receiver.release.set()
        server.shutdown()
        server.server_close()


def test_a_server_killed_mid_delivery_delivers_again_under_the_same_id(
    tmp_path: Path, receiver: str
) -> None:
    cluster = Cluster(tmp_path)
    cluster.env.update(NOTIFY_ENV)
    try:
        server = cluster.server()
        cluster.worker(concurrency=2)
        with sluice.Client(cluster.url, cluster.api_key) as client:
            client.functions.set(
                "multiply", {"webhooks": [{"url": receiver, "events": ["succeeded", "failed"]}]}
            )
            first = client.submit({"function": "multiply", "args": [6, 7]})
            wait_for_sync(Receiver.held.is_set, timeout=20)  # in flight, unanswered
            more = [client.submit({"function": "multiply", "args": [i, 2]}) for i in range(5)]
            wait_for_sync(lambda: all(client.get(t.id).state == "succeeded" for t in more))
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
            Receiver.release.set()

            cluster.server()  # the same database; it takes the timers lease once free
            ids = {t.id for t in [first, *more]}
            wait_for_sync(lambda: _delivered(client, ids), timeout=40)
    finally:
        cluster.stop()
    sent = [(msg_id, body["data"]["task_id"]) for msg_id, body in Receiver.got]
    first_id = sent[0][0]
    assert sent[0][1] == first.id
    # The event in flight at the kill came again, under the same webhook-id.
    assert [m for m, task in sent if task == first.id] == [first_id, first_id]
    # Every task's event arrived; none was lost with the process.
    assert {task for _, task in sent} == ids


def _delivered(client: sluice.Client, ids: set[str]) -> bool:
    for task_id in ids:
        found = client.tasks.notifications(task_id)
        if not found or any(d.state != "delivered" for d in found):
            return False
    return True
