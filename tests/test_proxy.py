"""Proxying: methods, headers both ways, request ids, upstream failures, host handling."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.conftest import EchoUpstream, Running, StartBastion, free_port, make_config, parse_head, raw_request

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PURGE"]


@pytest.mark.parametrize(
    "method, status",
    [("PROPFIND", 405), ("TRACE", 405), ("PURGE", 405), ("BREW", 501), ("X-ANYTHING", 501)],
)
async def test_methods_outside_the_allow_list(proxy: Running, upstream: EchoUpstream, method: str, status: int) -> None:
    raw = await raw_request(proxy.port, f"{method} / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    assert parse_head(raw)[0] == status
    assert upstream.seen == []


@pytest.mark.parametrize("method", METHODS)
async def test_every_allowed_method_is_forwarded(
    upstream: EchoUpstream, start_bastion: StartBastion, method: str
) -> None:
    proxy = await start_bastion(make_config(upstream.url, protocol={"methods": METHODS}))
    data = b"payload" if method in ("POST", "PUT", "PATCH") else None
    async with aiohttp.ClientSession() as s, s.request(method, proxy.url + "/things/1?q=2", data=data) as r:
        assert r.status == 200
        body = await r.read()
    [seen] = upstream.seen
    assert (seen.method, seen.path) == (method, "/things/1?q=2")
    assert seen.body_len == (7 if data else 0)
    if method == "HEAD":
        assert body == b""
        assert int(r.headers["Content-Length"]) > 0  # the upstream's length passes through
    else:
        assert orjson.loads(body)["method"] == method


async def test_hop_by_hop_request_headers_are_stripped(proxy: Running, upstream: EchoUpstream) -> None:
    req = (
        b"GET /x HTTP/1.1\r\nHost: svc.example\r\nConnection: keep-alive, X-Secret-Hop, close\r\n"
        b"X-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9v\r\n"
        b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTrailer: X-T\r\nX-End-To-End: kept\r\n\r\n"
    )
    status, _, _ = parse_head(await raw_request(proxy.port, req))
    assert status == 200
    [seen] = upstream.seen
    names = {k.lower() for k, _ in seen.headers}
    for gone in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection", "upgrade", "trailer"):
        assert gone not in names, gone
    assert seen.header("Connection") in (None, "keep-alive")  # only what aiohttp's pool itself sends
    assert seen.header("X-End-To-End") == "kept"


async def test_hop_by_hop_response_headers_are_stripped_and_server_removed(proxy: Running) -> None:
    raw = await raw_request(proxy.port, b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    status, headers, body = parse_head(raw)
    assert status == 200 and body == b"ok"
    assert "x-internal" not in headers and "keep-alive" not in headers and "proxy-authenticate" not in headers
    assert headers["x-kept"] == "yes"
    assert "server" not in headers  # neither the upstream's nor aiohttp's


async def test_request_id_is_kept_when_safe(proxy: Running, upstream: EchoUpstream) -> None:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/", headers={"X-Request-ID": "abc-123.x:y"}) as r:
        assert r.headers["X-Request-ID"] == "abc-123.x:y"
    assert upstream.seen[0].all("X-Request-ID") == ["abc-123.x:y"]
    [rec] = await proxy.access(1)
    assert rec["http.request.id"] == "abc-123.x:y"


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("a" * 200, id="too-long"),
        pytest.param("id with spaces", id="spaces"),
        pytest.param("<script>", id="markup"),
        pytest.param("-starts-with-dash", id="leading-dash"),
        pytest.param("", id="empty"),
    ],
)
async def test_unsafe_request_id_is_replaced(proxy: Running, upstream: EchoUpstream, incoming: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/", headers={"X-Request-ID": incoming}) as r:
        rid = r.headers["X-Request-ID"]
    assert rid != incoming and len(rid) == 32
    assert upstream.seen[0].all("X-Request-ID") == [rid]


async def test_request_id_is_generated_and_unique(proxy: Running, upstream: EchoUpstream) -> None:
    ids = set()
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.get(proxy.url + "/") as r:
                ids.add(r.headers["X-Request-ID"])
    assert len(ids) == 5
    assert {s.header("X-Request-ID") for s in upstream.seen} == ids


async def test_upstream_down_is_502_problem(start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(f"http://127.0.0.1:{free_port()}"))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x") as r:
        assert r.status == 502
        assert r.headers["Content-Type"] == "application/problem+json"
        body = await r.json(content_type=None)
    assert body == {
        "type": "https://bastion.dev/problems/upstream-unavailable",
        "title": "Bad Gateway",
        "status": 502,
        "request_id": r.headers["X-Request-ID"],
    }
    [rec] = await proxy.access(1)
    assert rec["bastion.reason"] == "upstream_unavailable" and rec["http.response.status_code"] == 502


async def test_upstream_timeout_is_504_problem(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url, upstream={"url": upstream.url, "read_timeout": "200ms"}))
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/slow?s=2") as r:
        assert r.status == 504
        body = await r.json(content_type=None)
    assert body["type"].endswith("/upstream-timeout") and body["request_id"] == r.headers["X-Request-ID"]
    text = orjson.dumps(body).decode()
    assert "127.0.0.1" not in text and "TimeoutError" not in text and "aiohttp" not in text  # no internals


async def test_upstream_breaking_mid_body_truncates_the_client_connection(proxy: Running) -> None:
    raw = await raw_request(proxy.port, b"GET /broken?n=1000000 HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, body = parse_head(raw)
    assert status == 200  # a large body streams: the headers were already sent
    assert int(headers["content-length"]) == 1000000
    assert len(body) < 1000000  # the connection was cut: the client can tell the body is incomplete
    [rec] = await proxy.access(1)
    assert rec["bastion.reason"] == "upstream_broken"


async def test_upstream_breaking_in_a_small_body_is_a_clean_502(proxy: Running) -> None:
    raw = await raw_request(proxy.port, b"GET /broken?n=1000 HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, _ = parse_head(raw)
    assert status == 502 and headers["content-type"] == "application/problem+json"


async def test_upstream_status_and_body_pass_through(proxy: Running) -> None:
    async with aiohttp.ClientSession() as s:
        for code in (201, 204, 301, 404, 418, 500, 503):
            async with s.get(proxy.url + f"/status/{code}", allow_redirects=False) as r:
                assert r.status == code
                assert "Server" not in r.headers


@pytest.mark.parametrize("mode, expected", [("preserve", "public.example:8443"), ("rewrite", None)])
async def test_host_header(
    upstream: EchoUpstream, start_bastion: StartBastion, mode: str, expected: str | None
) -> None:
    proxy = await start_bastion(make_config(upstream.url, upstream={"url": upstream.url, "host_header": mode}))
    status, _, _ = parse_head(
        await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: public.example:8443\r\nConnection: close\r\n\r\n")
    )
    assert status == 200
    [seen] = upstream.seen
    up_host = upstream.url.removeprefix("http://")
    assert seen.header("Host") == (expected or up_host)
    assert seen.header("X-Forwarded-Host") == "public.example:8443"


@pytest.mark.parametrize("mode", ["preserve", "rewrite"])
async def test_the_upstream_gets_exactly_the_clients_fields(
    upstream: EchoUpstream, start_bastion: StartBastion, mode: str
) -> None:
    """Nothing added that the client did not send (aiohttp's client would add Accept, Accept-Encoding
    and User-Agent), repeated fields kept in order, Host first in both host modes."""
    proxy = await start_bastion(make_config(upstream.url, upstream={"url": upstream.url, "host_header": mode}))
    req = (
        b"GET /f HTTP/1.1\r\nHost: public.example\r\nX-B: 1\r\nX-A: one\r\nX-B: 2\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n"
    )
    assert parse_head(await raw_request(proxy.port, req))[0] == 200
    [seen] = upstream.seen
    names = [k.lower() for k, _ in seen.headers]
    assert names[0] == "host"
    for added in ("accept", "accept-encoding", "user-agent", "content-type", "content-length"):
        assert added not in names, added
    assert seen.all("X-B") == ["1", "2"] and seen.all("Cookie") == ["a=1", "b=2"]
    own = [n for n in names if n in ("x-b", "x-a", "cookie")]
    assert own == ["x-b", "x-a", "x-b", "cookie", "cookie"]
    bastion = {"x-forwarded-for", "forwarded", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "x-request-id"}
    assert set(names) - {"host", "x-b", "x-a", "cookie", "traceparent", "connection"} == bastion


async def test_unix_socket_upstream(tmp_path, start_bastion: StartBastion) -> None:  # type: ignore[no-untyped-def]
    sock = str(tmp_path / "up.sock")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"unix {request.path}")

    app = web.Application()
    app.router.add_get("/{t:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, sock).start()
    try:
        proxy = await start_bastion(make_config(f"unix:{sock}"))
        async with aiohttp.ClientSession() as s, s.get(proxy.url + "/over/unix") as r:
            assert r.status == 200 and await r.text() == "unix /over/unix"
    finally:
        await runner.cleanup()


async def test_keep_alive_pool_reuses_upstream_connections(
    aiohttp_server: AiohttpServer, start_bastion: StartBastion
) -> None:
    peers: set[tuple[str, int]] = set()

    async def h(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", h)
    srv = await aiohttp_server(app)
    proxy = await start_bastion(make_config(str(srv.make_url("")).rstrip("/"), upstream={"pool_size": 2}))
    async with aiohttp.ClientSession() as s:
        for _ in range(20):
            async with s.get(proxy.url + "/") as r:
                assert r.status == 200
        results = await asyncio.gather(*(s.get(proxy.url + "/") for _ in range(10)))
        for r in results:
            r.release()
    assert 1 <= len(peers) <= 2  # pool_size bounds the upstream connections


async def test_expect_100_continue_is_answered_after_the_checks(proxy: Running, upstream: EchoUpstream) -> None:
    req = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(req)
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"hello")
    await writer.drain()
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert final.startswith(b"HTTP/1.1 200")
    assert upstream.seen[0].body_len == 5 and upstream.seen[0].header("Expect") is None


async def test_a_route_can_have_its_own_upstream_timeout(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path
) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "  - id: impatient\n    match: {path: /slow, methods: [GET]}\n    allow: anonymous\n"
        "    upstream: {read_timeout: 200ms}\n"
        "  - id: patient\n    match: {path: /slowok, methods: [GET]}\n    allow: anonymous\n"
    )
    proxy = await start_bastion(make_config(upstream.url, rules=[str(tmp_path / "*.yaml")]))  # global read: 5 s
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/slow?s=0.6") as r:
            assert r.status == 504
        async with s.get(proxy.url + "/slowok?s=0.6") as r:
            assert r.status == 200
