"""Egress (issue 14 point 1): every address check works on the address actually connected
to. Each spelling of an internal address is refused by the config check, naming the
canonical address; loopback spellings are shown, end to end on both backends, never to
reach a listener on this machine, whether set through the API or stored while loopback
was allowed. Private ranges are shown by refusal only (the guards raise before any
connect): no test sends traffic beyond loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohappyeyeballs import AddrInfoType

import sluice
from sluice.client import AsyncClient
from sluice.contract import FunctionConfig, HttpTarget, RetryPolicy
from sluice.engine import egress
from sluice.engine.egress import EgressPolicy, EgressRefused, GuardedResolver
from sluice.engine.targets import new_secret
from tests.harness import _running_server, database_for, running_server, wait_for

app = sluice.App("egress")  # no worker functions: every function is an HTTP target
SETTINGS = ("targets_allow_loopback", "targets_allow_private")

# host as written in the URL -> the canonical address (or localhost name) refused
LOOPBACK = {
    "１２７．０．０．１": "127.0.0.1",  # noqa: RUF001 (the point: full-width digits)
    "127。0。0。1": "127.0.0.1",
    "①②⑦.0.0.1": "127.0.0.1",
    "127.0.0.1": "127.0.0.1",
    "127.1": "127.0.0.1",
    "2130706433": "127.0.0.1",
    "0x7f.0.0.1": "127.0.0.1",
    "0177.0.0.1": "127.0.0.1",
    "127.0.0.1.": "127.0.0.1",
    "[::1]": "::1",
    "[::ffff:127.0.0.1]": "::ffff:7f00:1",
    "[::ffff:7f00:1]": "::ffff:7f00:1",
    "[0:0:0:0:0:ffff:7f00:1]": "::ffff:7f00:1",
    "localhost": "localhost",
    "LOCALHOST.": "localhost",
    "ｌｏｃａｌｈｏｓｔ": "localhost",  # noqa: RUF001
    "foo.localhost": "foo.localhost",
}
# Not loopback, yet this machine on Linux: refused even when loopback is allowed.
UNSPECIFIED = {"0.0.0.0": "0.0.0.0", "[::]": "::"}
PRIVATE = {
    "１０．０．０．１": "10.0.0.1",  # noqa: RUF001
    "①⑥⑨.②⑤④.①⑥⑨.②⑤④": "169.254.169.254",
    "169.254.169.254": "169.254.169.254",
    "192.168.1.1": "192.168.1.1",
    "172.16.0.1": "172.16.0.1",
    "100.64.0.1": "100.64.0.1",
    "[fc00::1]": "fc00::1",
    "[fe80::1%25eth0]": "fe80::1%eth0",
    "[64:ff9b::a00:1]": "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "[2002:a00:1::]": "2002:a00:1::",  # 6to4 of 10.0.0.1
    "[::ffff:10.0.0.1]": "::ffff:a00:1",
    "[ff02::1]": "ff02::1",
    "224.0.0.1": "224.0.0.1",
    "[2001:db8::1]": "2001:db8::1",
}
ALLOWED = ["93.184.216.34", "example.com", "[2606:4700::1111]", "[64:ff9b::5db8:d822]"]
REFUSED = {**LOOPBACK, **UNSPECIFIED, **PRIVATE}


# -- the config check -----------------------------------------------------------------
@pytest.mark.parametrize(("host", "canonical"), REFUSED.items(), ids=list(REFUSED))
def test_every_spelling_is_refused_by_the_config_check_naming_its_address(
    host: str, canonical: str
) -> None:
    with pytest.raises(EgressRefused) as refused:
        egress.check_url(f"http://{host}:9999/run", EgressPolicy())
    assert refused.value.address == canonical
    message = str(refused.value)
    assert canonical in message and all(name in message for name in SETTINGS), message


@pytest.mark.parametrize("host", list(LOOPBACK), ids=list(LOOPBACK))
def test_loopback_spellings_pass_when_loopback_is_allowed(host: str) -> None:
    egress.check_url(f"http://{host}:9999/run", EgressPolicy(allow_loopback=True))
    egress.check_url(f"http://{host}:9999/run", EgressPolicy(allow_private=True))


@pytest.mark.parametrize("host", [*UNSPECIFIED, *PRIVATE], ids=[*UNSPECIFIED, *PRIVATE])
def test_private_spellings_need_private_allowed(host: str) -> None:
    with pytest.raises(EgressRefused):
        egress.check_url(f"http://{host}:9999/run", EgressPolicy(allow_loopback=True))
    egress.check_url(f"http://{host}:9999/run", EgressPolicy(allow_private=True))


@pytest.mark.parametrize("host", ALLOWED)
def test_global_addresses_and_names_pass_the_config_check(host: str) -> None:
    # Names are checked when they are resolved, at connect time: no lookup here.
    assert egress.check_url(f"https://{host}/run", EgressPolicy())


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://user:pw@example.com/", "http://:pw@example.com/",
            "not a url", "http://[127.0.0.1]/", "http:///path"],
)  # fmt: skip
def test_urls_that_are_not_http_or_carry_credentials_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        egress.check_url(url, EgressPolicy(allow_private=True))


# -- the connect-time guards, called directly: they raise before any connect ---------------
def _addr_info(address: str, port: int = 80) -> AddrInfoType:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


@pytest.mark.parametrize(
    "canonical", sorted(set(REFUSED.values()) - {"localhost", "foo.localhost"})
)
def test_the_socket_factory_refuses_internal_addresses(canonical: str) -> None:
    make = egress.socket_factory(EgressPolicy())
    with pytest.raises(EgressRefused) as refused:
        make(_addr_info(canonical))
    assert refused.value.address == canonical


def test_the_socket_factory_makes_unconnected_sockets_for_allowed_addresses() -> None:
    for address, policy in [("93.184.216.34", EgressPolicy()),
                            ("2606:4700::1111", EgressPolicy()),
                            ("127.0.0.1", EgressPolicy(allow_loopback=True)),
                            ("10.0.0.1", EgressPolicy(allow_private=True))]:  # fmt: skip
        with egress.socket_factory(policy)(_addr_info(address)) as sock, pytest.raises(OSError):
            sock.getpeername()  # made, never connected
    with pytest.raises(EgressRefused):  # only addresses: a name here was never checked
        egress.socket_factory(EgressPolicy(allow_private=True))(_addr_info("example.com"))


def _loopback_name() -> str | None:
    """A name /etc/hosts maps to loopback that is not a localhost name (here, the
    machine's own names), so that resolving it asks no DNS server."""
    with contextlib.suppress(OSError), open("/etc/hosts") as hosts:
        for line in hosts:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(fields[0]).is_loopback:
                    names = [n for n in fields[1:] if not egress.is_localhost(n)]
                    if names:
                        return names[0]
    return None


async def test_the_resolver_refuses_names_and_filters_their_addresses() -> None:
    resolver = GuardedResolver(EgressPolicy())
    try:
        for host in ("localhost", "foo.localhost", "10.0.0.1", "0x7f.1", "169.254.169.254"):
            with pytest.raises(EgressRefused):  # refused by name: nothing is looked up
                await resolver.resolve(host, 80)
        name = _loopback_name()
        if name is not None:
            with pytest.raises(EgressRefused) as refused:
                await resolver.resolve(name, 80)
            assert refused.value.host == name and refused.value.kind == "loopback"
            allowed = GuardedResolver(EgressPolicy(allow_loopback=True))
            found = await allowed.resolve(name, 80)
            await allowed.close()
            assert found and all(ipaddress.ip_address(f["host"]).is_loopback for f in found)
    finally:
        await resolver.close()


# -- end to end, against a listener on loopback ---------------------------------------------
@dataclass
class Listener:
    """Counts the connections it accepts on 127.0.0.1 and, where there is IPv6, on ::1,
    at one port."""

    port: int = 0
    accepted: int = 0
    ipv6: bool = False


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    seen = Listener()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.accepted += 1
        writer.close()

    servers = [await asyncio.start_server(accept, "127.0.0.1", 0)]
    seen.port = servers[0].sockets[0].getsockname()[1]
    with contextlib.suppress(OSError):
        servers.append(await asyncio.start_server(accept, "::1", seen.port))
        seen.ipv6 = True
    try:
        yield seen
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def _spellings() -> dict[str, str]:
    """Every loopback spelling, with the unspecified addresses (which reach this machine
    on Linux) and a name /etc/hosts maps to loopback, if there is one."""
    name = _loopback_name()
    return {**LOOPBACK, **UNSPECIFIED, **({name: "127.0.0.1"} if name else {})}


async def test_the_connector_refuses_loopback_without_the_config_check(
    listener: Listener,
) -> None:
    hosts = ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]", "0x7f.0.0.1"]
    name = _loopback_name()
    async with egress.session(EgressPolicy()) as session:
        for host in [*hosts, *([name] if name else [])]:
            url = f"http://{host}:{listener.port}/"  # straight to aiohttp, unchecked
            with pytest.raises(aiohttp.ClientError) as failed:
                async with session.post(url, allow_redirects=False):
                    pass
            assert egress.refusal_in(failed.value) is not None, (host, failed.value)
    assert listener.accepted == 0
    # The control: allowed, the same session type reaches the listener.
    async with egress.session(EgressPolicy(allow_loopback=True)) as session:
        with contextlib.suppress(aiohttp.ClientError):  # the listener answers nothing
            async with session.post(f"http://127.0.0.1:{listener.port}/"):
                pass
    await wait_for(lambda: listener.accepted == 1)


async def test_loopback_targets_are_refused_when_set(
    tmp_path: Path, backend: str, listener: Listener
) -> None:
    async with running_server(tmp_path, app, backend) as srv, httpx.AsyncClient() as http:
        for i, (host, canonical) in enumerate({**LOOPBACK, **UNSPECIFIED}.items()):
            put = await http.put(
                f"{srv.url}/v1/functions/loop{i}",
                json={"target": {"url": f"http://{host}:{listener.port}/run"}},
                headers={"authorization": f"Bearer {srv.api_key}"},
            )
            assert put.status_code == 403, (host, put.text)
            error = put.json()["error"]
            assert error["code"] == "target_not_allowed", (host, error)
            assert canonical in error["message"], (host, error)
        assert await srv.node.functions.of(srv.tenant_id) == {}
    assert listener.accepted == 0


async def test_stored_loopback_targets_go_dead_unreached_once_loopback_is_withdrawn(
    tmp_path: Path, backend: str, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    spellings = _spellings()
    retry = RetryPolicy(max_attempts=5, base_s=0.01, min_backoff_s=0.01)
    configs = [
        FunctionConfig(
            name=f"loop{i}", retry=retry,
            target=HttpTarget(f"http://{host}:{listener.port}/run", 2.0, new_secret()),
        )
        for i, host in enumerate(spellings)
    ]  # fmt: skip
    control = FunctionConfig(
        name="control", retry=RetryPolicy(max_attempts=1),
        target=HttpTarget(f"http://127.0.0.1:{listener.port}/run", 2.0, new_secret()),
    )  # fmt: skip
    async with database_for(backend, tmp_path) as database:
        # Stored while loopback was allowed (straight into the store: 0.0.0.0 and [::]
        # would not pass even then); the control shows the listener was reachable.
        async with _running_server(database, app, targets_allow_loopback=True) as srv:
            await srv.node.functions.register(srv.tenant_id, [*configs, control])
            async with AsyncClient(srv.url, srv.api_key) as c:
                task = await c.submit({"function": "control", "args": []})
                assert (await c.wait(task.id, timeout=10)).state == "dead"
        await wait_for(lambda: listener.accepted >= 1)
        listener.accepted = 0

        with caplog.at_level(logging.WARNING, logger="sluice.targets"):
            async with (
                _running_server(database, app) as srv,
                AsyncClient(srv.url, srv.api_key) as c,
            ):
                sent = await c.submit_many(
                    [{"function": config.name, "args": []} for config in configs]
                )
                done = [await c.wait(task.id, timeout=15) for task in sent]

    assert listener.accepted == 0
    for host, dead in zip(spellings, done, strict=True):
        assert dead.state == "dead" and dead.attempt == 1, (host, dead.state, dead.attempt)
        (attempt,) = dead.attempts
        assert attempt.error_type == "EgressRefused", (host, attempt)
        message = attempt.error_message or ""
        assert spellings[host] in message and all(s in message for s in SETTINGS), message
    warned = [r.getMessage() for r in caplog.records if r.name == "sluice.targets"]
    # A warning at start for every target the config check refuses (the control too);
    # a name is only refused once resolved, when it is called.
    named = {f"loop{i}" for i, host in enumerate(spellings) if host not in REFUSED}
    for config in [*configs, control]:
        lines = [w for w in warned if f"function {config.name} of " in w]
        assert len(lines) == (config.name not in named), (config.name, warned)
        assert all("current settings refuse" in w and "\n" not in w for w in lines)
