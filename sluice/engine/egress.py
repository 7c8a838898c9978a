"""Egress: which addresses the server may call out to (DESIGN §9), for HTTP targets and
webhooks alike.

Loopback, private, link-local and every other non-global address is refused unless the
operator allows it. The rule is judged on the address actually connected to, so it is
checked in three places that all read hosts as the HTTP library (aiohttp on yarl) will:

- `check_url`, when a URL is configured and again before each call: yarl's host (IDNA
  and UTS #46: full-width digits and dots, ideographic full stops and circled digits
  spell `127.0.0.1` too), IPv4 in every spelling the C library accepts (`127.1`,
  `2130706433`, `0x7f.1`, `0177.0.0.1`), a trailing dot, IPv6 zone ids, and the
  `localhost` names (RFC 6761);
- the resolver, which refuses such names and filters what a name resolves to;
- the socket factory, called with each address right before its connect: the last word,
  whatever aiohttp did in between (IP literals never reach a resolver).

IPv4 embedded in IPv6 (mapped, compatible, translated, NAT64 64:ff9b::/96, 6to4) is
judged as the IPv4 address, where the packets end up.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from ..errors import SluiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK = "loopback"
PRIVATE = "private"
LINK_LOCAL = "link-local"
MULTICAST = "multicast"
RESERVED = "reserved"
UNSPECIFIED = "unspecified"

_V4_RANGES = [
    ("127.0.0.0/8", LOOPBACK),
    ("0.0.0.0/8", UNSPECIFIED),  # "this network": 0.0.0.0 reaches this very host on Linux
    ("10.0.0.0/8", PRIVATE),
    ("172.16.0.0/12", PRIVATE),
    ("192.168.0.0/16", PRIVATE),
    ("100.64.0.0/10", PRIVATE),  # shared address space (carrier-grade NAT)
    ("169.254.0.0/16", LINK_LOCAL),  # cloud metadata services live here
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),  # with 255.255.255.255, the broadcast
    ("192.0.0.0/24", RESERVED),
    ("192.0.2.0/24", RESERVED),
    ("198.18.0.0/15", RESERVED),
    ("198.51.100.0/24", RESERVED),
    ("203.0.113.0/24", RESERVED),
    ("192.88.99.0/24", RESERVED),  # 6to4 relays
]
_V6_RANGES = [
    ("::1/128", LOOPBACK),
    ("::/128", UNSPECIFIED),
    ("fe80::/10", LINK_LOCAL),
    ("fc00::/7", PRIVATE),  # unique local
    ("fec0::/10", PRIVATE),  # site-local, deprecated but still routed by some
    ("64:ff9b:1::/48", PRIVATE),  # local-use NAT64 (RFC 8215)
    ("ff00::/8", MULTICAST),
    ("2001::/23", RESERVED),  # protocol assignments, Teredo among them
    ("2001:db8::/32", RESERVED),
    ("100::/64", RESERVED),
]
_V4 = [(ipaddress.IPv4Network(net), kind) for net, kind in _V4_RANGES]
_V6 = [(ipaddress.IPv6Network(net), kind) for net, kind in _V6_RANGES]
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class EgressPolicy:
    """What the operator allows: `allow_private` allows every internal address,
    loopback included; `settings` names the settings, for error messages."""

    allow_loopback: bool = False
    allow_private: bool = False
    settings: str = "targets_allow_loopback, targets_allow_private"

    def allows(self, kind: str) -> bool:
        return self.allow_private or (self.allow_loopback and kind == LOOPBACK)


class EgressRefused(SluiceError, OSError):
    """The policy refuses this host or address. An OSError, so that aiohttp takes a
    refusal in its resolver or socket factory for a failed connect, before any packet.
    `address` is the canonical address refused (the normalised name for a localhost
    name), `kind` what it is (loopback, private, ...)."""

    def __init__(self, message: str, *, host: str, address: str, kind: str) -> None:
        super().__init__(message)
        self.strerror = message  # what aiohttp shows of the OSError behind its own
        self.host, self.address, self.kind = host, address, kind


def _refused(
    host: str, address: str, kind: str, policy: EgressPolicy, *, judged: str | None = None
) -> EgressRefused:
    noun = "name" if literal(address) is None else "address"
    clauses = [] if host == address else [f"is {address}"]
    if judged is not None:  # IPv4 embedded in IPv6
        clauses.append(f"embeds {judged}")
    said = f"{host} {', which '.join(clauses)}," if clauses else f"{host} is"
    article = "an" if kind[0] in "aeiou" else "a"
    return EgressRefused(
        f"{said} {article} {kind} {noun}: the server does not allow connections there "
        f"({policy.settings})",
        host=host, address=address, kind=kind,
    )  # fmt: skip


def literal(host: str) -> IPAddress | None:
    """The IP address `host` spells, read as the connector and the C library read it;
    None for a name. IPv4 takes every `inet_aton` form; trailing dots are dropped."""
    if ":" in host:
        try:  # a zone id is %25-escaped in a URL's host
            return ipaddress.IPv6Address(unquote(host))
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        return None


def classify(ip: IPAddress) -> tuple[str, IPAddress] | None:
    """(kind, address judged) of an internal address; None for a global one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_loopback or ip.is_unspecified:
            return (LOOPBACK if ip.is_loopback else UNSPECIFIED), ip
        embedded = _embedded(ip)
        if embedded is not None:
            verdict = classify(embedded)
            return None if verdict is None else (verdict[0], embedded)
        kind = next((kind for net, kind in _V6 if ip in net), None)
        if kind is None and ip not in _GLOBAL_UNICAST:
            kind = RESERVED
    else:
        kind = next((kind for net, kind in _V4 if ip in net), None)
    if kind is None and not ip.is_global:
        kind = RESERVED  # what the tables miss, by the standard library's registry
    return None if kind is None else (kind, ip)


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _COMPATIBLE or ip in _TRANSLATED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def check_address(address: str, policy: EgressPolicy, host: str | None = None) -> None:
    """Raise EgressRefused unless `address` is an IP address the policy allows."""
    ip = literal(address)
    if ip is None:  # the connector resolves names first; a name here was not checked
        raise EgressRefused(
            f"{address} is not an IP address: connections go to checked addresses only",
            host=host or address, address=address, kind="unresolved",
        )  # fmt: skip
    verdict = classify(ip)
    if verdict is not None and not policy.allows(verdict[0]):
        kind, judged = verdict
        raise _refused(host or address, str(ip), kind, policy,
                       judged=None if judged == ip else str(judged))  # fmt: skip


def check_host(host: str, policy: EgressPolicy) -> None:
    """Refuse a host that is an internal address or a localhost name; other names are
    checked when they are resolved."""
    if literal(host) is not None:
        check_address(host, policy, host)
    elif is_localhost(host) and not policy.allows(LOOPBACK):
        raise _refused(host, host.rstrip(".").lower(), LOOPBACK, policy)


def _parse(url: str) -> URL:
    try:
        return URL(url)
    except (TypeError, ValueError):
        return URL()  # no scheme, no host: refused as no URL


def host_of(url: str) -> str | None:
    """The host of `url` as aiohttp resolves and connects to it (yarl's, IDNA-encoded);
    None when there is none."""
    return _parse(url).raw_host


def check_url(url: str, policy: EgressPolicy) -> str:
    """The host an http(s) URL connects to, checked; ValueError for a URL that is not
    one, EgressRefused for a host the policy refuses."""
    parsed = _parse(url)
    host = parsed.raw_host
    if parsed.scheme not in ("http", "https") or not host:
        raise ValueError("is an http:// or https:// URL with a host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise ValueError("carries no credentials")
    check_host(host, policy)
    return host


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then keeps only the addresses the policy allows: a name that
    resolves to internal addresses only fails with EgressRefused."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._inner = DefaultResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        check_host(host, self._policy)  # a clear error for names refused as such
        allowed: list[ResolveResult] = []
        refusal: EgressRefused | None = None
        for found in await self._inner.resolve(host, port, family):
            try:
                check_address(found["host"], self._policy, host)
            except EgressRefused as exc:
                refusal = refusal or exc
            else:
                allowed.append(found)
        if not allowed and refusal is not None:
            raise refusal
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def socket_factory(policy: EgressPolicy) -> SocketFactoryType:
    """Sockets for the addresses the policy allows; refuses the others before any
    connect. aiohappyeyeballs calls it with each address it is about to connect to."""

    def guarded(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        check_address(str(sockaddr[0]), policy)
        return socket.socket(family, type_, proto)

    return guarded


def session(policy: EgressPolicy, **connector: Any) -> aiohttp.ClientSession:
    """A client session whose every connection is checked. No proxy from the
    environment; callers also pass `allow_redirects=False`, as a redirect would be a
    second URL checked by nobody."""
    guarded = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy), socket_factory=socket_factory(policy), **connector
    )
    return aiohttp.ClientSession(connector=guarded, trust_env=False)


def refusal_in(exc: BaseException) -> EgressRefused | None:
    """The EgressRefused behind an aiohttp error, if it is one (aiohttp wraps it).

    aiohappyeyeballs folds the failures of several addresses into one plain OSError;
    refused addresses never come several to the socket factory, though: names reach it
    filtered by the resolver, and an IP literal is one address."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        if isinstance(cause, EgressRefused):
            return cause
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return None
