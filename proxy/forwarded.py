"""Who the client is, and the `X-Forwarded-*` / `Forwarded` headers the upstream receives.

Hand-written (aiohttp-remotes never checks the TCP peer before trusting forwarded headers, see
LIBS.md). One trust model for all of them: forwarded headers are read only when the direct peer
is inside `trusted_proxies`; the chain is then walked from the right, skipping trusted hops, and
the first untrusted address is the client. From an untrusted peer every client-sent copy is
replaced, never appended to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from multidict import CIMultiDictProxy

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Headers some upstream frameworks read as the client address or original URL: a client must not
# be able to set them unless a trusted proxy did.
# Headers that rewrite the route for some upstreams (IIS/Symfony X-Original-URL, Traefik's
# X-Forwarded-Prefix: CVE-2026-35051, oauth2-proxy X-Forwarded-Uri): passed on only from a trusted proxy.
ROUTE_REWRITE = (
    "X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri", "X-Forwarded-Prefix",
    "X-Forwarded-Path", "X-Forwarded-Server",
)
SPOOFABLE = (
    "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded", "X-Real-IP",
    *ROUTE_REWRITE,
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FOR = re.compile(r'(?:^|;)\s*for=("?)([^";,]*)\1', re.IGNORECASE)


class Origin(NamedTuple):
    """Where a request really comes from. A NamedTuple: a frozen dataclass costs ~1 µs to build,
    and this is built for every request."""

    client_ip: str
    scheme: str
    host: str
    trusted_peer: bool


class ForwardedPolicy:
    """Applies `trusted_proxies` to one request.

    >>> p = ForwardedPolicy([ipaddress.ip_network("10.0.0.0/8")])
    >>> p.origin("10.1.2.3", "http", CIMultiDictProxy(CIMultiDict({"X-Forwarded-For": "6.6.6.6, 1.2.3.4"})))
    Origin(client_ip='1.2.3.4', scheme='http', host='', trusted_peer=True)
    """

    def __init__(self, trusted: Sequence[IPNetwork], header: str = "x-forwarded-for") -> None:
        self._trusted = tuple(trusted)
        self._use_forwarded = header == "forwarded"
        self.is_trusted = lru_cache(maxsize=4096)(self._is_trusted)

    def _is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._trusted)

    def origin(self, peer: str, scheme: str, headers: CIMultiDictProxy[str]) -> Origin:
        host = headers.get("Host", "")
        if not self._trusted or not self.is_trusted(peer):
            return Origin(peer, scheme, host, False)
        chain = self._chain(headers)
        client = peer
        for hop in reversed(chain):
            client = hop
            if not self.is_trusted(hop):
                break
        proto = headers.get("X-Forwarded-Proto", "").strip().lower()
        if proto not in ("http", "https"):
            proto = scheme
        fwd_host = headers.get("X-Forwarded-Host", "").strip()
        return Origin(client, proto, fwd_host or host, True)

    def _chain(self, headers: CIMultiDictProxy[str]) -> list[str]:
        hops: list[str] = []
        if self._use_forwarded:
            for value in headers.getall("Forwarded", ()):
                for element in value.split(","):
                    m = _FOR.search(element)
                    hops.append(_strip_port(m.group(2)) if m else "unknown")
        else:
            for value in headers.getall("X-Forwarded-For", ()):
                hops.extend(_strip_port(h.strip()) for h in value.split(",") if h.strip())
        return hops

    def upstream_fields(self, peer: str, origin: Origin, incoming: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
        """The forwarded fields for the upstream request, whose client copies were all removed already:
        appended as pairs, so the request's header multidict is built in one call."""
        if origin.trusted_peer:
            out = [(name, value) for name in ROUTE_REWRITE for value in incoming.getall(name, ())]
            xff = ", ".join(incoming.getall("X-Forwarded-For", ()))
            fwd = ", ".join(incoming.getall("Forwarded", ()))
            element = _forwarded_element(peer, origin)
            out.append(("X-Forwarded-For", f"{xff}, {peer}" if xff else peer))
            out.append(("Forwarded", f"{fwd}, {element}" if fwd else element))
        else:
            out = [("X-Forwarded-For", peer), ("Forwarded", _forwarded_element(peer, origin))]
        out.append(("X-Forwarded-Proto", origin.scheme))
        if origin.host:
            out.append(("X-Forwarded-Host", origin.host))
        out.append(("X-Real-IP", origin.client_ip))
        return out


def _strip_port(hop: str) -> str:
    if hop.startswith("["):  # "[2001:db8::1]:4711"
        return hop[1:].split("]", 1)[0]
    if hop.count(":") == 1:  # "192.0.2.1:8080"
        return hop.split(":", 1)[0]
    return hop


def _forwarded_element(peer: str, origin: Origin) -> str:
    return _element(peer, origin.scheme, origin.host)


@lru_cache(maxsize=1024)  # few distinct (peer, scheme, host) triples in front of one service
def _element(peer: str, scheme: str, host: str) -> str:
    node = f'"[{peer}]"' if ":" in peer else peer
    parts = [f"for={node}", f"proto={scheme}"]
    if host:
        parts.append(f"host={host}" if _TOKEN.match(host) else f'host="{_quote(host)}"')
    return ";".join(parts)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
