"""Slow clients (slowloris, R.U.D.Y.) are cut off: a head that trickles gets 408 after
`limits.header_timeout`, a body that pauses gets 408 after `limits.body_idle_timeout`."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import EchoUpstream, Running, StartBastion, make_config, parse_head, raw_request


@pytest.fixture
async def strict(upstream: EchoUpstream, start_bastion: StartBastion) -> Running:
    return await start_bastion(
        make_config(upstream.url, limits={"header_timeout": "400ms", "body_idle_timeout": "400ms"})
    )


async def _read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    out = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            out += chunk
    return out


async def test_trickled_head_gets_408_and_is_closed(strict: Running, upstream: EchoUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    t0 = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    for _ in range(3):  # keep trickling: every byte arrives, the head never completes
        await asyncio.sleep(0.2)
        if writer.is_closing():
            break
        writer.write(b"X-A: b\r\n")
    raw = await _read_all(reader)
    elapsed = time.monotonic() - t0
    writer.close()
    status, headers, body = parse_head(raw)
    assert status == 408 and headers["content-type"] == "application/problem+json"
    assert b'"request_id"' in body and headers["connection"] == "close"
    assert headers["x-frame-options"] == "DENY" and "content-security-policy" in headers and "server" not in headers
    assert 0.3 < elapsed < 2.5
    assert upstream.seen == []
    [rec] = await strict.access(1)
    assert rec["bastion.reason"] == "header_timeout"


async def test_paused_body_gets_408_and_never_completes_upstream(strict: Running, upstream: EchoUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    await writer.drain()
    raw = await _read_all(reader)
    writer.close()
    assert parse_head(raw)[0] == 408
    for _ in range(50):
        if upstream.seen and upstream.seen[0].complete is not None:
            break
        await asyncio.sleep(0.02)
    assert all(s.complete is False for s in upstream.seen)  # started maybe, never complete


async def test_an_idle_keep_alive_connection_is_not_a_slow_head(strict: Running, upstream: EchoUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    writer.write(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert first.startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(reader.readexactly(int(parse_head(first + b"")[1]["content-length"])), 2)
    await asyncio.sleep(0.8)  # idle longer than the header timeout, with no byte of a new head
    writer.write(b"GET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    second = await _read_all(reader)
    writer.close()
    assert second.startswith(b"HTTP/1.1 200")
    assert [s.path for s in upstream.seen] == ["/one", "/two"]


async def test_content_length_bodies_stay_content_length_upstream(strict: Running, upstream: EchoUpstream) -> None:
    raw = await raw_request(
        strict.port, b"POST /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert parse_head(raw)[0] == 200
    [seen] = upstream.seen
    assert seen.header("Content-Length") == "5" and seen.header("Transfer-Encoding") is None
