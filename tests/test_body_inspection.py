"""A check may read the body (bounded); the upstream then receives exactly the bytes inspected."""

from __future__ import annotations

import asyncio

import pytest

from proxy.checks.ingress import Ingress
from proxy.context import RequestContext
from proxy.pipeline import Pipeline
from tests.conftest import EchoUpstream, Running, StartBastion, make_config, parse_head, raw_request


class Peek:
    name = "peek"

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: list[bytes] = []

    async def __call__(self, ctx: RequestContext) -> None:
        self.seen.append(await ctx.read_body(self.cap))


@pytest.fixture
async def peeking(upstream: EchoUpstream, start_bastion: StartBastion) -> tuple[Running, Peek]:
    proxy = await start_bastion(make_config(upstream.url, limits={"max_body": 1000}))
    peek = Peek(cap=100)
    proxy.bastion.handler.pipeline = Pipeline([Ingress(proxy.bastion.cfg.limits), peek])
    return proxy, peek


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(b"Content-Length: 11\r\n\r\nhello world", id="content-length"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", id="chunked"),
    ],
)
async def test_inspected_body_is_forwarded_intact(
    peeking: tuple[Running, Peek], upstream: EchoUpstream, framing: bytes
) -> None:
    proxy, peek = peeking
    raw = await raw_request(proxy.port, b"POST /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + framing)
    assert parse_head(raw)[0] == 200
    assert peek.seen == [b"hello world"]
    assert upstream.seen[0].body_len == 11 and upstream.seen[0].complete


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(b"Content-Length: 150\r\n\r\n" + b"x" * 150, id="content-length"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\n96\r\n" + b"x" * 150 + b"\r\n0\r\n\r\n", id="chunked"),
    ],
)
async def test_body_over_the_inspection_cap_is_413_and_never_forwarded(
    peeking: tuple[Running, Peek], upstream: EchoUpstream, framing: bytes
) -> None:
    proxy, _ = peeking
    raw = await raw_request(proxy.port, b"POST /p HTTP/1.1\r\nHost: a\r\n" + framing)
    assert parse_head(raw)[0] == 413
    assert upstream.seen == []


async def test_expect_continue_is_sent_before_a_check_reads_the_body(
    peeking: tuple[Running, Peek], upstream: EchoUpstream
) -> None:
    proxy, peek = peeking
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"data")
    await writer.drain()
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert final.startswith(b"HTTP/1.1 200") and peek.seen == [b"data"]
    assert upstream.seen[0].body_len == 4
