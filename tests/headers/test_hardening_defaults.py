"""Profile defaults on proxied responses: OWASP values, if_absent against the upstream, HSTS by
scheme, and Cache-Control on authenticated responses."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import pytest

from proxy.security_headers import API, HTML, OWASP_ADD, OWASP_REMOVE
from tests.conftest import make_config
from tests.headers.conftest import API_HEADERS, HSTS, Answer, Gate, HeaderUpstream, token
from tests.pki import Pki

Fetch = Callable[..., Awaitable[Answer]]


async def test_api_profile_on_a_proxied_200(gate: Gate, client: Fetch) -> None:
    proxy = await gate()
    got = await client(proxy.url + "/public/x")
    assert got.status == 200
    assert {k: got.headers.get(k) for k in API_HEADERS} == API_HEADERS
    assert "strict-transport-security" not in got.headers  # plain http, no trusted proxy
    assert "cache-control" not in got.headers  # anonymous: the upstream decides
    assert "server" not in got.headers


async def test_html_profile_sends_the_owasp_page_values(gate: Gate, client: Fetch) -> None:
    proxy = await gate(headers={"profile": "html"})
    got = await client(proxy.url + "/public/x")
    expected = {k: v for k, v in OWASP_ADD.items() if k not in ("Strict-Transport-Security", "Clear-Site-Data")}
    assert {k: got.headers.get(k) for k in expected} == expected
    assert "clear-site-data" not in got.headers  # logout responses only, never every response


@pytest.mark.parametrize(
    "upstream_sends, header, expected",
    [
        pytest.param("X-Frame-Options:SAMEORIGIN", "X-Frame-Options", "SAMEORIGIN", id="xfo-kept"),
        pytest.param(
            "Content-Security-Policy:script-src 'nonce-abc'", "Content-Security-Policy", "script-src 'nonce-abc'",
            id="csp-kept",
        ),
        pytest.param("Referrer-Policy:strict-origin", "Referrer-Policy", "strict-origin", id="referrer-kept"),
        pytest.param("X-Other:1", "X-Frame-Options", "DENY", id="absent-gets-default"),
    ],
)
async def test_defaults_keep_the_upstreams_own_value(
    gate: Gate, client: Fetch, upstream_sends: str, header: str, expected: str
) -> None:
    proxy = await gate()
    got = await client(proxy.url + "/public/x", params={"h": upstream_sends})
    assert got.headers.getall(header) == [expected]


@pytest.mark.parametrize(
    "cfg, forwarded_proto, hsts",
    [
        pytest.param({}, None, None, id="http"),
        pytest.param({"headers": {"hsts": "always"}}, None, HSTS, id="always"),
        pytest.param({"trusted_proxies": ["127.0.0.0/8"]}, "https", HSTS, id="trusted-proxy-https"),
        pytest.param({"trusted_proxies": ["127.0.0.0/8"]}, "http", None, id="trusted-proxy-http"),
        pytest.param({}, "https", None, id="untrusted-peer-claims-https"),
        pytest.param({"trusted_proxies": ["127.0.0.0/8"], "headers": {"hsts": "off"}}, "https", None, id="off"),
        pytest.param(
            {"trusted_proxies": ["127.0.0.0/8"], "headers": {"hsts_value": "max-age=300"}},
            "https",
            "max-age=300",
            id="custom-value",
        ),
    ],
)
async def test_hsts_follows_the_original_scheme(
    gate: Gate, client: Fetch, cfg: dict[str, object], forwarded_proto: str | None, hsts: str | None
) -> None:
    proxy = await gate(**cfg)
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    for path in ("/public/x", "/nowhere"):  # a proxied 200 and Bastion's own 404
        got = await client(proxy.url + path, headers=headers)
        assert got.headers.getall("Strict-Transport-Security", []) == ([hsts] if hsts else []), path


async def test_hsts_on_a_tls_listener(
    hup: HeaderUpstream, start_bastion: Callable[..., Awaitable[object]], client: Fetch, pki: Pki
) -> None:
    cfg = make_config(hup.url, listen={"tls": {"cert_file": str(pki.cert), "key_file": str(pki.key)}})
    proxy = await start_bastion(cfg)
    tls = ssl.create_default_context(cafile=str(pki.ca))
    for path in ("/x", "/x?h=Strict-Transport-Security:max-age=0"):  # HSTS is Bastion's: the upstream's is replaced
        got = await client(proxy.url + path, ssl=tls)
        assert got.status == 200
        assert got.headers.getall("Strict-Transport-Security") == [HSTS]


@pytest.mark.parametrize(
    "path, authenticated, upstream_cache, expected",
    [
        pytest.param("/private/x", True, None, ["no-store"], id="authenticated"),
        pytest.param("/private/x", True, "max-age=60, private", ["max-age=60, private"], id="upstream-own-kept"),
        pytest.param("/public/x", True, None, ["no-store"], id="token-on-anonymous-rule"),
        pytest.param("/public/x", False, None, [], id="anonymous"),
        pytest.param("/public/x", False, "public, max-age=60", ["public, max-age=60"], id="anonymous-upstream"),
    ],
)
async def test_cache_control_on_authenticated_responses(
    gate: Gate, client: Fetch, path: str, authenticated: bool, upstream_cache: str | None, expected: list[str]
) -> None:
    proxy = await gate()
    headers = {"Authorization": f"Bearer {token()}"} if authenticated else {}
    params = {"h": f"Cache-Control:{upstream_cache}"} if upstream_cache else {}
    got = await client(proxy.url + path, headers=headers, params=params)
    assert got.status == 200
    assert got.headers.getall("Cache-Control", []) == expected


def test_shipped_owasp_lists_match_the_anchors() -> None:
    """proxy/data holds OSHP ci/headers_add.json and ci/headers_remove.json (2026-07-19, ANCHORS.md §2.5)."""
    assert OWASP_ADD["Strict-Transport-Security"] == HSTS
    assert OWASP_ADD["X-Frame-Options"] == "deny"
    assert OWASP_ADD["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert "X-XSS-Protection" not in OWASP_ADD  # deprecated; never sent
    assert len(OWASP_REMOVE) == 87 and len(set(OWASP_REMOVE)) == 87
    assert {"Server", "X-Powered-By", "X-AspNet-Version", "X-Envoy-Upstream-Service-Time", "SourceMap"} <= set(
        OWASP_REMOVE
    )
    assert "Strict-Transport-Security" not in HTML and "Clear-Site-Data" not in HTML
    assert {k.lower(): v for k, v in API.items()} == API_HEADERS
