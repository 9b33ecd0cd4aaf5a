"""The upstream exchange keeps aiohttp's client behaviour where Bastion bypasses `ClientSession`
(proxy/forwarder.py `_exchange`): a stale pooled connection is retried once for idempotent
requests only, an answer delimited by the connection's close is read whole, a dead upstream is 502.
The upstream here is a raw asyncio server, so each case is exactly the bytes on the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson
import pytest

from tests.conftest import StartBastion, make_config

Serve = Callable[[int, bytes], bytes | None]  # (request number on this connection, head) -> answer, None: drop


class RawUpstream:
    """Reads one request head (and a Content-Length body) at a time; `answer` decides what goes back.
    Counts every request head it saw, so a retried request shows up twice."""

    def __init__(self, answer: Serve) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                self.heads.append(head)
                out = self.answer(n, head)
                n += 1
                if out is None:  # the upstream's keep-alive ran out just as this request came in
                    writer.transport.abort()
                    return
                writer.write(out)
                await writer.drain()
                if b"connection: close" in out.lower():
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[[Serve], RawUpstream]]:
    made: list[RawUpstream] = []

    def make(answer: Serve) -> RawUpstream:
        up = RawUpstream(answer)
        made.append(up)
        return up

    yield make
    for up in made:
        if up.server is not None:
            up.server.close()
            await up.server.wait_closed()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def second_request_dropped(n: int, head: bytes) -> bytes | None:
    return OK if n == 0 else None


@pytest.mark.parametrize(
    "method, body, status, heads",
    [
        ("GET", None, 200, 3),  # second GET: dropped on the pooled connection, sent again on a fresh one
        ("DELETE", None, 200, 3),
        ("POST", b"x" * 10, 502, 2),  # not idempotent: never sent twice
        ("PATCH", b"x" * 10, 502, 2),
    ],
)
async def test_a_stale_pooled_connection_is_retried_once_for_idempotent_requests_only(
    raw_upstream: Callable[[Serve], RawUpstream],
    start_bastion: StartBastion,
    method: str,
    body: bytes | None,
    status: int,
    heads: int,
) -> None:
    up = raw_upstream(second_request_dropped)
    proxy = await start_bastion(make_config(await up.start(), protocol={"methods": ["GET", "POST", "PATCH", "DELETE"]}))
    async with aiohttp.ClientSession() as s:
        async with s.request(method, proxy.url + "/a", data=body) as r:
            assert r.status == 200
        async with s.request(method, proxy.url + "/b", data=body) as r:
            assert r.status == status
            if status == 502:
                assert r.content_type == "application/problem+json"
    assert len(up.heads) == heads


async def test_a_request_dropped_twice_is_a_502_not_a_loop(
    raw_upstream: Callable[[Serve], RawUpstream], start_bastion: StartBastion
) -> None:
    up = raw_upstream(lambda n, head: None)  # every request dropped
    proxy = await start_bastion(make_config(await up.start()))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x") as r:
        assert r.status == 502
    assert len(up.heads) == 2  # the first try and one retry


async def test_an_answer_delimited_by_close_is_read_whole(
    raw_upstream: Callable[[Serve], RawUpstream], start_bastion: StartBastion
) -> None:
    body = b"y" * 100_000
    up = raw_upstream(lambda n, head: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
    proxy = await start_bastion(make_config(await up.start()))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/big") as r:
        assert r.status == 200
        assert await r.read() == body


async def test_head_answers_are_not_read_for_a_body(
    raw_upstream: Callable[[Serve], RawUpstream], start_bastion: StartBastion
) -> None:
    up = raw_upstream(lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")  # no body follows
    proxy = await start_bastion(make_config(await up.start()))
    async with aiohttp.ClientSession() as s:
        async with s.head(proxy.url + "/h") as r:
            assert r.status == 200 and r.headers["Content-Length"] == "5000"
        async with s.head(proxy.url + "/h") as r:  # the pooled connection is still in step
            assert r.status == 200
    assert len(up.heads) == 2


async def test_an_upstream_that_refuses_is_502_with_no_internals(start_bastion: StartBastion) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    proxy = await start_bastion(make_config(f"http://127.0.0.1:{port}"))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/") as r:
        assert r.status == 502
        doc = orjson.loads(await r.read())
    assert str(port) not in orjson.dumps(doc).decode()


async def test_a_connect_that_hangs_is_a_504_named_as_a_connect_timeout(start_bastion: StartBastion) -> None:
    import socket

    # a listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    await asyncio.sleep(0.1)
    try:
        cfg = make_config(
            f"http://127.0.0.1:{port}", upstream={"url": f"http://127.0.0.1:{port}", "connect_timeout": "0.3s"}
        )
        proxy = await start_bastion(cfg)
        async with aiohttp.ClientSession() as s, s.get(proxy.url + "/") as r:
            assert r.status == 504
        [rec] = await proxy.access(1)
        assert rec["bastion.detail"] == "ConnectionTimeoutError"  # not a total or read timeout
    finally:
        for s in fillers:
            s.close()
        listener.close()
