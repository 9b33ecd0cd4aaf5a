"""Size limits answered by Bastion before any work, over raw sockets; the upstream sees nothing.

Each case sends bytes as an attacker would, checks the status and the problem document, and checks
that the upstream received no request (or, for a body cut off mid-stream, no complete one).
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.conftest import EchoUpstream, Running, StartBastion, make_config, parse_head, raw_request

LIMITS = {"max_body": 1000, "max_uri": 200, "max_headers": 20, "max_header_bytes": 1500}


@pytest.fixture
async def tight(upstream: EchoUpstream, start_bastion: StartBastion) -> Running:
    return await start_bastion(make_config(upstream.url, limits=LIMITS))


def _problem(raw: bytes, status: int) -> dict[str, object]:
    got, headers, body = parse_head(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/problem+json"
    assert "server" not in headers
    doc = orjson.loads(body[: int(headers["content-length"])])
    assert doc["status"] == status and doc["request_id"] == headers["x-request-id"]
    # RFC 9110's names on every Python (3.11's own phrases are "Request Entity Too Large", "Request-URI Too Long")
    assert doc["title"] == {413: "Content Too Large", 414: "URI Too Long"}.get(status, doc["title"])
    return doc


def _headers(n: int, size: int = 10) -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(n))


CASES = [
    pytest.param(b"GET /" + b"a" * 250 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="uri-over-cap"),
    pytest.param(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="uri-over-parser-limit"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n" + _headers(25) + b"\r\n", 431, id="too-many-headers"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n" + _headers(400) + b"\r\n", 431, id="headers-over-parser-count"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 1600 + b"\r\n\r\n", 431, id="header-bytes"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, id="header-over-parser-size"
    ),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001, 413, id="content-length"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413, id="huge-content-length"),
    pytest.param(b"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="path-above-root"),
    pytest.param(b"GET http://evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="absolute-form-other-host"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        id="parser-cl-and-te",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400, id="parser-space-in-name"),
]


@pytest.mark.parametrize("request_bytes, status", CASES)
async def test_rejected_before_the_upstream(
    tight: Running, upstream: EchoUpstream, request_bytes: bytes, status: int
) -> None:
    raw = await raw_request(tight.port, request_bytes)
    doc = _problem(raw, status)
    assert set(doc) == {"type", "title", "status", "request_id"}
    assert b"aiohttp" not in raw.lower() and b"python" not in raw.lower()
    assert upstream.seen == []


async def test_parser_errors_do_not_echo_input(tight: Running, upstream: EchoUpstream) -> None:
    raw = await raw_request(tight.port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Evil<script>: 1\r\n\r\n")
    _problem(raw, 400)
    assert b"script" not in raw
    assert upstream.seen == []


async def test_body_at_the_cap_passes(tight: Running, upstream: EchoUpstream) -> None:
    raw = await raw_request(
        tight.port, b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    )
    assert parse_head(raw)[0] == 200
    assert upstream.seen[0].body_len == 1000 and upstream.seen[0].complete


async def test_chunked_body_growing_past_the_cap_is_413_and_never_complete_upstream(
    tight: Running, upstream: EchoUpstream
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tight.port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(5):  # 5 x 300 bytes: over the 1000-byte cap at the fourth chunk
        writer.write(b"12c\r\n" + b"y" * 300 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    _problem(raw, 413)
    # the upstream started receiving the stream; its connection is cut, never a complete body
    for _ in range(100):
        if upstream.seen and upstream.seen[0].complete is not None:
            break
        await asyncio.sleep(0.02)
    [seen] = upstream.seen
    assert seen.complete is False and seen.body_len <= 1000
    [rec] = await tight.access(1)
    assert rec["bastion.reason"] == "body_too_large"


async def test_chunked_body_under_the_cap_passes_complete(tight: Running, upstream: EchoUpstream) -> None:
    raw = await raw_request(
        tight.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1f4\r\n" + b"z" * 500 + b"\r\n0\r\n\r\n",
    )
    assert parse_head(raw)[0] == 200
    assert upstream.seen[0].body_len == 500 and upstream.seen[0].complete
