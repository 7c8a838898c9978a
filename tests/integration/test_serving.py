"""How a node writes HTTP answers (api/serving.py), against a live server, read by a
client in another thread as a real client reads them."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import sluice
from tests.harness import running_server

app = sluice.App("serving")


@app.task
def echo(x: object = None) -> object:
    return x


def _answers_in_one_read(port: int, key: str, count: int) -> list[bytes]:
    """`count` submits on one kept-alive connection; each answer's first read."""
    body = json.dumps({"function": "echo", "args": [1]}).encode()
    request = (
        b"POST /v1/tasks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s"
    ) % (key.encode(), len(body), body)
    firsts = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            sock.sendall(request)
            first = sock.recv(65536)
            firsts.append(first)
            head, _, got = first.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )  # fmt: skip
            while len(got) < length:  # what a split answer needs before the next request
                got += sock.recv(65536)
    return firsts


async def test_an_answer_leaves_in_one_write_head_and_body_together(tmp_path: Path) -> None:
    """uvicorn writes a head and a body apart: two segments, two wake-ups of the client.
    The node joins them, so a client's first read holds the whole answer."""
    async with running_server(tmp_path, app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        firsts = await asyncio.to_thread(_answers_in_one_read, port, server.api_key, 100)
    split = [f for f in firsts if not f.rstrip().endswith(b"}")]
    assert all(f.startswith(b"HTTP/1.1 201 ") for f in firsts), firsts[0]
    assert not split, f"{len(split)} of 100 answers came in two reads: {split[0]!r}"
