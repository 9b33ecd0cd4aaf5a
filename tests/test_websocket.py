"""WebSocket upgrades pass through: subprotocol from the upstream, messages both ways, close codes."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import WSMsgType

from proxy.websocket import wire_code
from tests.conftest import EchoUpstream, Running, StartBastion, make_config


async def test_echo_both_ways_with_upstream_subprotocol(proxy: Running, upstream: EchoUpstream) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url + "/ws", protocols=("chat.v1", "chat.v2")) as ws:
        assert ws.protocol == "chat.v2"  # the upstream supports only v2: its choice, not the first offered
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive()).data == b"\x00\x01"
    ws_seen = [s for s in upstream.seen if s.method == "WS"]
    assert ws_seen[0].header("X-Request-ID") and ws_seen[0].header("X-Forwarded-For") == "127.0.0.1"


async def test_client_close_code_reaches_upstream(proxy: Running, upstream: EchoUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(proxy.url + "/ws")
        await ws.send_str("x")
        await ws.receive()
        await ws.close(code=4001, message=b"done")
    assert upstream.ws_closes == [4001]


async def test_upstream_close_code_reaches_client(proxy: Running) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url + "/ws", autoclose=False) as ws:
        await ws.send_str("close:4002")
        msg = await ws.receive()
        assert msg.type == WSMsgType.CLOSE and msg.data == 4002


async def test_message_over_the_cap_closes_with_1009(upstream: EchoUpstream, start_bastion: StartBastion) -> None:
    proxy = await start_bastion(make_config(upstream.url, websocket={"max_message": 1024}))
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url + "/ws") as ws:
        await ws.send_bytes(b"x" * 4096)
        msg = await ws.receive()
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        assert ws.close_code == 1009


async def test_path_is_canonicalised_for_websockets_too(proxy: Running, upstream: EchoUpstream) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url + "/a/../ws") as ws:
        await ws.send_str("p")
        assert (await ws.receive()).data == "echo:p"
    assert [s.path for s in upstream.seen if s.method == "WS"] == ["/ws"]


@pytest.mark.parametrize(
    "code, sent",
    [(1000, 1000), (4000, 4000), (1005, 1011), (1006, 1011), (1015, 1011), (None, 1011), (999, 1011), (5000, 1011)],
)
def test_codes_that_cannot_go_on_the_wire_become_1011(code: int | None, sent: int) -> None:
    assert wire_code(code) == sent
