"""Every response Bastion generates: security headers, problem+json, no `Server`, nothing leaked.

Three sources of such responses, each covered: Denials rendered by the server (every status a check
can raise, 429 included before the rate limiter exists), parser errors that aiohttp produces before
any handler runs (raw sockets), and upstream failures (502, 504, masked 5xx).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from proxy.decision import PROBLEM_BASE, Reason
from tests.conftest import EchoUpstream, StartBastion, free_port, make_config, raw_request
from tests.headers.conftest import API_HEADERS, HSTS, Answer, Crash, Gate, HeaderUpstream, Raise, add_check, head_lines

Fetch = Callable[..., Awaitable[Answer]]

GENERATED = [400, 401, 403, 404, 405, 413, 414, 415, 422, 429, 431, 502, 503, 504]
REASONS = {
    401: Reason.AUTH_REQUIRED,
    403: Reason.FORBIDDEN,
    404: Reason.NO_RULE,
    405: Reason.METHOD_NOT_ALLOWED,
    413: Reason.BODY_TOO_LARGE,
    414: Reason.URI_TOO_LONG,
    415: Reason.UNSUPPORTED_MEDIA_TYPE,
    422: Reason.SCHEMA_INVALID,
    431: Reason.HEADERS_TOO_LARGE,
    502: Reason.UPSTREAM_UNAVAILABLE,
    503: Reason.SHUTTING_DOWN,
    504: Reason.UPSTREAM_TIMEOUT,
}


def assert_hardened(status: int, pairs: list[tuple[str, str]], body: bytes, expected: int) -> dict[str, object]:
    """One header line per security header with the profile's value, no Server, a bare problem document."""
    assert status == expected, body[:200]
    names = [k for k, _ in pairs]
    assert "server" not in names
    for name, value in API_HEADERS.items():
        assert [v for k, v in pairs if k == name] == [value], name
    headers = dict(pairs)
    assert headers["content-type"] == "application/problem+json"
    assert headers["cache-control"] == "no-store"
    doc = orjson.loads(body[: int(headers["content-length"])]) if "content-length" in headers else orjson.loads(body)
    assert set(doc) == {"type", "title", "status", "request_id"}
    assert doc["status"] == expected and doc["request_id"] == headers["x-request-id"]
    assert str(doc["type"]).startswith(PROBLEM_BASE)
    return doc


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in GENERATED])
async def test_every_generated_status_is_hardened(gate: Gate, status: int, hup: HeaderUpstream) -> None:
    proxy = await gate(trusted_proxies=["127.0.0.0/8"])
    # the rate-limit reason arrives with the rate limiter; any reason renders the same way
    add_check(proxy, Raise(status, REASONS.get(status, Reason.BAD_REQUEST), headers={"Retry-After": "7"}))
    raw = await raw_request(
        proxy.port, b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    )
    got, pairs, body = head_lines(raw)
    assert_hardened(got, pairs, body, status)
    assert dict(pairs)["strict-transport-security"] == HSTS
    assert dict(pairs)["retry-after"] == "7"  # a Denial's own headers survive
    assert hup.seen == []


# What aiohttp's own HTTP parser refuses before any handler runs, straight from the socket.
PARSER = [
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, id="cl-te"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header<script>: x\r\n\r\n", 400, id="space-in-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, id="nul-in-value"),
    pytest.param(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 40000 + b"\r\n\r\n", 431, id="header-line"),
    pytest.param(b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", 400, id="version"),
]


@pytest.mark.parametrize("request_bytes, status", PARSER)
@pytest.mark.parametrize("hsts", [pytest.param("https", id="hsts-https"), pytest.param("always", id="hsts-always")])
async def test_parser_errors_get_the_same_headers(
    gate: Gate, hup: HeaderUpstream, request_bytes: bytes, status: int, hsts: str
) -> None:
    proxy = await gate(headers={"hsts": hsts})
    raw = await raw_request(proxy.port, request_bytes)
    got, pairs, body = head_lines(raw)
    assert_hardened(got, pairs, body, status)
    assert (dict(pairs).get("strict-transport-security") == HSTS) is (hsts == "always")  # plain-http listener
    assert b"script" not in raw and b"aiohttp" not in raw.lower()
    assert hup.seen == []


async def test_upstream_unreachable_is_a_hardened_502(gate: Gate, client: Fetch) -> None:
    port = free_port()
    proxy = await gate(upstream_url=f"http://127.0.0.1:{port}")
    raw = await raw_request(proxy.port, b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got, pairs, body = head_lines(raw)
    assert_hardened(got, pairs, body, 502)
    assert str(port).encode() not in body


async def test_upstream_timeout_is_a_hardened_504(gate: Gate, hup: HeaderUpstream) -> None:
    proxy = await gate(upstream={"url": hup.url, "read_timeout": "200ms"})
    raw = await raw_request(proxy.port, b"GET /public/x?sleep=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got, pairs, body = head_lines(raw)
    assert_hardened(got, pairs, body, 504)


async def test_internal_error_is_a_hardened_500_without_the_exception(gate: Gate) -> None:
    proxy = await gate()
    add_check(proxy, Crash())
    raw = await raw_request(proxy.port, b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got, pairs, body = head_lines(raw)
    assert_hardened(got, pairs, body, 500)
    for word in (b"boom", b"secret_module", b"RuntimeError", b"3.14", b"Python"):
        assert word not in raw


@pytest.mark.parametrize(
    "status, upstream_headers, retry_after",
    [
        pytest.param(500, [], None, id="500"),
        pytest.param(503, ["Retry-After:30"], "30", id="503-retry-after-kept"),
        pytest.param(599, [], None, id="non-standard"),
    ],
)
async def test_masked_upstream_errors(
    gate: Gate, client: Fetch, status: int, upstream_headers: list[str], retry_after: str | None
) -> None:
    proxy = await gate(mask_upstream_errors=True)
    trace = 'Traceback (most recent call last):\n  File "/srv/app/views.py", line 9\nKeyError: db-primary:5432'
    params = [("status", str(status)), ("body", trace), ("h", "X-Debug-Token:abc")]
    params += [("h", h) for h in upstream_headers]
    got = await client(proxy.url + "/public/x", params=params)
    doc = orjson.loads(got.body)
    assert got.status == status and doc["status"] == status
    assert doc["type"] == PROBLEM_BASE + "upstream-error"
    assert got.headers["Content-Type"] == "application/problem+json"
    assert "x-debug-token" not in got.headers and b"Traceback" not in got.body
    assert got.headers.get("Retry-After") == retry_after
    [rec] = await proxy.access(1)
    assert rec["bastion.upstream_status"] == status and rec["bastion.reason"] == "upstream_error"


@pytest.mark.parametrize(
    "mask, status",
    [pytest.param(False, 500, id="mask-off"), pytest.param(True, 404, id="4xx-never-masked")],
)
async def test_unmasked_upstream_answers_pass_with_headers(gate: Gate, client: Fetch, mask: bool, status: int) -> None:
    proxy = await gate(mask_upstream_errors=mask)
    got = await client(proxy.url + "/public/x", params={"status": str(status), "body": "upstream says"})
    assert got.status == status and got.body == b"upstream says"
    assert {k: got.headers.get(k) for k in API_HEADERS} == API_HEADERS


async def test_a_real_429_from_a_rate_limit_carries_the_security_headers(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path
) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: once\n    match: {path: /once, methods: [GET]}\n    allow: anonymous\n"
        "    rate_limit: [{key: ip, rate: 1/minute, burst: 1}]\n"
    )
    proxy = await start_bastion(make_config(upstream.url, rules=[str(tmp_path / "*.yaml")]))
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/once") as r:
            assert r.status == 200
        async with s.get(proxy.url + "/once") as r:
            assert r.status == 429
            assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
            assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
            assert r.headers["Cache-Control"] == "no-store" and "Retry-After" in r.headers
            assert "Server" not in r.headers
    assert len(upstream.seen) == 1
