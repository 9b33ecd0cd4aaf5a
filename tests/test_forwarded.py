"""The client address and X-Forwarded-* / Forwarded headers under the trusted-proxy rule."""

from __future__ import annotations

import ipaddress

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.forwarded import ForwardedPolicy
from tests.conftest import EchoUpstream, StartBastion, make_config, parse_head, raw_request

SPOOF = (
    b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"
    b"Forwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\n"
)


def _h(**kw: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()}))


TRUST_10 = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    "peer, headers, header_kind, client",
    [
        pytest.param(
            "203.0.113.5", {"X_Forwarded_For": "6.6.6.6"}, "x-forwarded-for", "203.0.113.5", id="untrusted-peer"
        ),
        pytest.param(
            "10.0.0.1",
            {"X_Forwarded_For": "6.6.6.6, 198.51.100.7"},
            "x-forwarded-for",
            "198.51.100.7",
            id="rightmost-untrusted",
        ),
        pytest.param(
            "10.0.0.1",
            {"X_Forwarded_For": "198.51.100.7, 10.0.0.9"},
            "x-forwarded-for",
            "198.51.100.7",
            id="skip-trusted-hops",
        ),
        pytest.param("10.0.0.1", {}, "x-forwarded-for", "10.0.0.1", id="trusted-no-header"),
        pytest.param(
            "10.0.0.1",
            {"X_Forwarded_For": "10.0.0.7, 10.0.0.8"},
            "x-forwarded-for",
            "10.0.0.7",
            id="all-trusted-leftmost",
        ),
        pytest.param(
            "10.0.0.1",
            {"Forwarded": 'for=6.6.6.6, for="[2001:db8::1]:4711"'},
            "forwarded",
            "2001:db8::1",
            id="rfc7239-ipv6",
        ),
        pytest.param(
            "10.0.0.1",
            {"X_Forwarded_For": "6.6.6.6"},
            "forwarded",
            "10.0.0.1",
            id="xff-ignored-when-forwarded-configured",
        ),
        pytest.param(
            "::ffff:10.0.0.1",
            {"X_Forwarded_For": "198.51.100.7"},
            "x-forwarded-for",
            "198.51.100.7",
            id="ipv4-mapped-peer",
        ),
    ],
)
def test_client_address(peer: str, headers: dict[str, str], header_kind: str, client: str) -> None:
    policy = ForwardedPolicy(TRUST_10, header_kind)
    assert policy.origin(peer, "http", _h(**headers)).client_ip == client


async def test_untrusted_peer_cannot_spoof(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url))
    req = b"GET /x HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n" + SPOOF + b"\r\n"
    assert parse_head(await raw_request(proxy.port, req))[0] == 200
    [seen] = upstream.seen
    assert seen.all("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.all("X-Forwarded-Proto") == ["http"]
    assert seen.all("X-Forwarded-Host") == ["public.example"]
    assert seen.all("X-Real-IP") == ["127.0.0.1"]
    assert seen.all("Forwarded") == ["for=127.0.0.1;proto=http;host=public.example"]
    [rec] = await proxy.access(1)
    assert rec["client.ip"] == "127.0.0.1"


async def test_trusted_peer_chain_is_appended(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url, trusted_proxies=["127.0.0.0/8"]))
    req = b"GET /x HTTP/1.1\r\nHost: internal:8080\r\nConnection: close\r\n" + SPOOF + b"\r\n"
    assert parse_head(await raw_request(proxy.port, req))[0] == 200
    [seen] = upstream.seen
    assert seen.all("X-Forwarded-For") == ["6.6.6.6, 127.0.0.1"]
    assert seen.all("X-Forwarded-Proto") == ["https"]
    assert seen.all("X-Forwarded-Host") == ["evil.example"]
    assert seen.all("Forwarded") == ["for=6.6.6.6;proto=https, for=127.0.0.1;proto=https;host=evil.example"]
    assert seen.all("X-Real-IP") == ["6.6.6.6"]
    [rec] = await proxy.access(1)
    assert rec["client.ip"] == "6.6.6.6"
