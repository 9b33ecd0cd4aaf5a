"""WebSocket pass-through: the upgrade has already passed the whole pipeline when we get here.

The upstream handshake happens first, so the subprotocol the client gets is the one the upstream
chose (and an upstream refusal is a 502 before the client's upgrade is answered). Messages relay
both ways with `autoclose=False`, so each side's close code reaches the other intact; codes that
must never be sent on the wire (RFC 6455 §7.4.1: 1005, 1006, 1015) become 1011.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from proxy.context import RequestContext
from proxy.forwarder import Forwarder
from proxy.responses import ProxyWebSocketResponse

if TYPE_CHECKING:
    from proxy.server import _Outcome

_NOT_ON_WIRE = frozenset({1005, 1006, 1015})
# The handshake headers aiohttp's client generates itself; the client's own must not be copied.
_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "sec-websocket-accept",
    }
)


def wire_code(code: int | None) -> int:
    if code is None or code in _NOT_ON_WIRE or not (1000 <= code <= 4999):
        return 1011
    return code


async def relay(
    request: BaseRequest,
    ctx: RequestContext,
    forwarder: Forwarder,
    headers: CIMultiDict[str],
    max_msg: int,
    state: _Outcome,
    rid_header: str,
) -> web.StreamResponse:
    protocols = tuple(
        p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", ()) for p in v.split(",") if p.strip()
    )
    up_headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HANDSHAKE)
    upstream = await forwarder.ws_connect(ctx.target, up_headers, protocols, max_msg)
    client = ProxyWebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoclose=False,
        autoping=True,
        max_msg_size=max_msg,
    )
    client.headers[rid_header] = ctx.request_id
    try:
        await client.prepare(request)
    except Exception:
        await upstream.close(code=1011)
        raise
    state.status = 101
    try:
        await _pump_both(client, upstream, state)
    finally:
        if not upstream.closed:
            await upstream.close(code=1011)
        if not client.closed:
            await client.close(code=1011)
    return client


async def _pump_both(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, state: Any) -> None:
    to_up = asyncio.create_task(_pump(client, upstream, state, inbound=True))
    to_client = asyncio.create_task(_pump(upstream, client, state, inbound=False))
    done, pending = await asyncio.wait({to_up, to_client}, return_when=asyncio.FIRST_COMPLETED)
    # The first pump to see a close has already closed the other side (which ends the other pump
    # through aiohttp's CLOSING message); give it a moment to finish, then stop it.
    if pending:
        _, still = await asyncio.wait(pending, timeout=5)
        for task in still:
            task.cancel()
    for task in done:
        task.result()


async def _pump(src: Any, dst: Any, state: Any, *, inbound: bool) -> None:
    while True:
        msg = await src.receive()
        kind = msg.type
        if kind is WSMsgType.TEXT:
            await dst.send_str(msg.data)
            _count(state, len(msg.data), inbound)
        elif kind is WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
            _count(state, len(msg.data), inbound)
        elif kind is WSMsgType.CLOSE:
            # src sent a close frame: pass its code on, wait for dst's answer, and echo that back
            await dst.close(code=wire_code(msg.data), message=(msg.extra or "").encode()[:123])
            await src.close(code=wire_code(dst.close_code))
            return
        elif kind is WSMsgType.CLOSING:  # the other pump is closing us
            return
        elif kind in (WSMsgType.CLOSED, WSMsgType.ERROR):
            # src vanished without a close frame (1006 on its side): tell dst 1011
            if not dst.closed:
                await dst.close(code=1011)
            return


def _count(state: Any, n: int, inbound: bool) -> None:
    if inbound:
        state.bytes_in += n
    else:
        state.bytes_out += n
