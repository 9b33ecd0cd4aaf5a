"""The only aiohttp-server glue: web request → RequestContext → Pipeline → Forwarder → response.

We use aiohttp's low-level `web.Server` rather than an `Application` with a catch-all route: a
reverse proxy needs no router or middleware chain, and the low-level server lets us replace
`handle_error`, so the 400s that aiohttp's HTTP parser produces before any handler runs get the
same problem+json body and headers as everything else (and no `Server` header, no echoed input).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from proxy.config import Config
from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.forwarded import SPOOFABLE, ForwardedPolicy
from proxy.forwarder import Forwarder
from proxy.headers import HOP_BY_HOP, copy_end_to_end
from proxy.logs import LogOutput, access_record, cap
from proxy.pipeline import Pipeline
from proxy.responses import ProxyResponse, problem_response
from proxy.websocket import relay

log = logging.getLogger("bastion.server")

# SECURITY: a request id is echoed into logs and headers, so only short, plain tokens are kept.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")


_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def c_parser_active() -> bool:
    """aiohttp uses llhttp (C) unless its extensions are missing or AIOHTTP_NO_EXTENSIONS is set;
    the pure-Python fallback has had request-smuggling bugs, so Bastion refuses it by default."""
    from aiohttp import http_parser

    return http_parser.HttpRequestParser.__module__.endswith("_http_parser")


def new_request_id() -> str:
    """Unique and unguessable without a syscall per request: a random per-process prefix and a counter."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def request_id_from(value: str | None) -> str:
    if value and _SAFE_ID.fullmatch(value):
        return value
    return new_request_id()


_COALESCE_BYTES = 16 * 1024


class _BodyOverflow(Exception):
    """The chunked request body grew past its cap while streaming."""


class _LimitedBody:
    """Streams a chunked request body upstream, counting bytes; past the cap it raises so the
    client connection to the upstream is closed without the terminating chunk, and the upstream
    never receives a truncated body that looks complete."""

    __slots__ = ("stream", "limit", "count", "overflowed")

    def __init__(self, stream: aiohttp.StreamReader, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.count = 0
        self.overflowed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream.iter_any():
            self.count += len(chunk)
            if self.count > self.limit:
                self.overflowed = True
                raise _BodyOverflow
            yield chunk


class ProxyHandler:
    """The request handler given to `web.Server`."""

    def __init__(self, cfg: Config, pipeline: Pipeline, forwarder: Forwarder, output: LogOutput) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.forwarder = forwarder
        self.output = output
        self.access_log = cfg.logging.access_log
        self.rid_header = cfg.request_id.header
        self.policy = ForwardedPolicy(cfg.trusted_proxies, cfg.client_ip_header)
        self.scheme = "https" if cfg.listen.tls else "http"
        self.ws_enabled = cfg.websocket.enabled
        self.ws_max = cfg.websocket.max_message
        # Client-sent headers that Bastion re-sets or that must never reach the upstream: resolved once.
        drop = {h.lower() for h in SPOOFABLE} | {self.rid_header.lower(), "expect"} | pipeline.strips
        if cfg.upstream.host_header == "rewrite":
            drop.add("host")
        self.drop = frozenset(drop) | HOP_BY_HOP
        self.inflight = 0

    async def __call__(self, request: BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        headers = request.headers
        peer = request.remote or ""
        origin = self.policy.origin(peer, self.scheme, headers)
        ctx = RequestContext(
            request_id=request_id_from(headers.get(self.rid_header)),
            method=request.method,
            raw_target=request.raw_path,
            headers=headers,
            peer_ip=peer,
            client_ip=origin.client_ip,
            scheme=origin.scheme,
            host=origin.host,
            started=started,
        )
        raw = request.raw_headers
        ctx.http_version = request.version[:2]
        ctx.header_count = len(raw)
        ctx.header_bytes = sum(map(len, itertools.chain.from_iterable(raw))) + 4 * len(raw)
        ctx.content_length = request.content_length
        state = _Outcome()
        ctx.body_reader = self._reader(request, ctx, state)
        ctx.chunked = (
            request.version >= aiohttp.HttpVersion11 and "chunked" in headers.get(hdrs.TRANSFER_ENCODING, "").lower()
        )
        self.inflight += 1
        try:
            try:
                ctx.websocket = self.ws_enabled and headers.get(hdrs.UPGRADE, "").lower() == "websocket"
                await self.pipeline.run(ctx)
                upstream_headers = self._upstream_headers(request, ctx, origin, peer)
                if ctx.websocket:
                    return await relay(
                        request, ctx, self.forwarder, upstream_headers, self.ws_max, state, self.rid_header
                    )
                return await self._forward(request, ctx, upstream_headers, state)
            except Denial as denial:
                resp = self._deny(ctx, denial, state)
                if ctx.content_length or ctx.chunked:
                    # an unread request body: close rather than drain an attacker's upload
                    resp.force_close()
                return resp
            except (ConnectionError, asyncio.CancelledError):
                state.status = state.status or 499  # client went away (nginx's code)
                raise
            except Exception:
                log.exception("unhandled error", extra={"http.request.id": ctx.request_id})
                return self._deny(ctx, Denial(500, Reason.INTERNAL), state)
        finally:
            self.inflight -= 1
            if self.access_log:
                self.output.emit(
                    access_record(
                        request_id=ctx.request_id,
                        client_ip=ctx.client_ip,
                        method=ctx.method,
                        path=ctx.path or ctx.raw_target.partition("?")[0],
                        status=state.status,
                        bytes_in=state.bytes_in,
                        bytes_out=state.bytes_out,
                        started=started,
                        upstream_ms=state.upstream_ms,
                        user_agent=headers.get(hdrs.USER_AGENT),
                        extra=ctx.log,
                    )
                )

    def _deny(self, ctx: RequestContext, denial: Denial, state: _Outcome) -> web.StreamResponse:
        state.status = denial.status
        ctx.log["bastion.reason"] = denial.reason.value
        if denial.detail:
            ctx.log["bastion.detail"] = cap(denial.detail, 512)
        resp = problem_response(denial, ctx.request_id, self.rid_header)
        self.pipeline.on_response(ctx, denial.status, resp.headers)  # type: ignore[arg-type]
        return resp

    def _reader(
        self, request: BaseRequest, ctx: RequestContext, state: _Outcome
    ) -> Callable[[int], Awaitable[bytes]]:
        async def read(limit: int) -> bytes:
            if not (ctx.content_length or ctx.chunked):
                return b""
            if ctx.content_length is not None and ctx.content_length > limit:
                raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"content-length {ctx.content_length} > {limit}")
            await self._continue(request, state)
            data = await request.content.read(limit + 1)
            while len(data) <= limit and not request.content.at_eof():
                more = await request.content.read(limit + 1 - len(data))
                if not more:
                    break
                data += more
            if len(data) > limit:
                raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"body > {limit} (read for inspection)")
            return data

        return read

    @staticmethod
    async def _continue(request: BaseRequest, state: _Outcome) -> None:
        """Answer `Expect: 100-continue` once, and only when the body is really wanted: after the
        checks passed, so a denied upload is never sent. Other expectations get 417."""
        expect = request.headers.get(hdrs.EXPECT)
        if expect is None or state.continue_sent:
            return
        if expect.lower() != "100-continue":
            raise Denial(417, Reason.BAD_REQUEST, detail="unsupported expectation")
        state.continue_sent = True
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _upstream_headers(self, request: BaseRequest, ctx: RequestContext, origin: Any, peer: str) -> CIMultiDict[str]:
        out = copy_end_to_end(request.headers, self.drop)
        self.policy.upstream_headers(peer, origin, request.headers, out)
        out[self.rid_header] = ctx.request_id
        if ctx.upstream_headers:
            out.update(ctx.upstream_headers)
        return out

    async def _forward(
        self, request: BaseRequest, ctx: RequestContext, up_headers: CIMultiDict[str], state: _Outcome
    ) -> web.StreamResponse:
        body: Any = None
        limited: _LimitedBody | None = None
        if ctx.body is not None:  # a check read it: the upstream gets exactly what was inspected
            body = ctx.body
            state.bytes_in = len(body)
            up_headers.popall(hdrs.CONTENT_LENGTH, None)  # aiohttp sets it from the bytes
        elif ctx.chunked:
            body = limited = _LimitedBody(request.content, ctx.body_limit)
        elif ctx.content_length:
            body = request.content
            state.bytes_in = ctx.content_length
        if body is not None:
            await self._continue(request, state)
        elif request.headers.get(hdrs.EXPECT, "100-continue").lower() != "100-continue":
            raise Denial(417, Reason.BAD_REQUEST, detail="unsupported expectation")
        t0 = time.monotonic()
        try:
            up = await self.forwarder.send(ctx.method, ctx.target, up_headers, body)
        except Denial:
            if limited is not None and limited.overflowed:
                raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"chunked body > {ctx.body_limit}") from None
            raise
        finally:
            if limited is not None:
                state.bytes_in = limited.count
        try:
            state.upstream_ms = (time.monotonic() - t0) * 1000
            resp_headers = copy_end_to_end(up.headers)
            resp_headers[self.rid_header] = ctx.request_id
            self.pipeline.on_response(ctx, up.status, resp_headers)
            resp = ProxyResponse(status=up.status, headers=resp_headers)
            state.status = up.status
            length = up.content_length
            # A small body of known length is read (bounded) and sent with the headers in one write;
            # anything else streams, headers first, so slow or endless bodies are never held.
            small = length is not None and length <= _COALESCE_BYTES
            try:
                if small:
                    body_bytes = await up.read()  # before anything is sent: a failure here is a clean 502
                    resp._send_headers_immediately = False
                    await resp.prepare(request)
                    state.bytes_out = len(body_bytes)
                    await resp.write_eof(body_bytes)
                    return resp
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                    state.bytes_out += len(chunk)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not resp.prepared:
                    raise Denial(502, Reason.UPSTREAM_UNAVAILABLE, detail=f"body: {type(exc).__name__}") from None
                # The upstream broke mid-body after the headers went out: abort the client connection,
                # so a truncated body never looks complete (no terminating chunk is sent).
                ctx.log["bastion.reason"] = "upstream_broken"
                ctx.log["bastion.detail"] = type(exc).__name__
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("upstream failed mid-response") from None
            await resp.write_eof()
            return resp
        finally:
            up.release()


class _Outcome:
    """What happened to one request, for its access record."""

    __slots__ = ("status", "bytes_in", "bytes_out", "upstream_ms", "continue_sent")

    def __init__(self) -> None:
        self.continue_sent = False
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.upstream_ms: float | None = None


class BastionRequestHandler(RequestHandler):
    """aiohttp's connection handler with Bastion's rendering of errors the parser finds."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        manager: BastionServer = self._manager  # type: ignore[assignment]
        denial = _denial_for(status, exc, manager.line_limit)
        if denial.status >= 500:
            self.log_exception("error handling request", exc_info=exc)
        rid = new_request_id()
        manager.on_parser_error(rid, request, denial)
        resp = problem_response(denial, rid, manager.rid_header)
        resp.force_close()
        return resp


def _denial_for(status: int, exc: BaseException | None, line_limit: int) -> Denial:
    if isinstance(exc, LineTooLong):
        # aiohttp's limits sit above ours, so this is a grossly oversized line; the limit it names
        # tells the request line (414) from a header line (431)
        if len(exc.args) > 1 and exc.args[1] == line_limit:
            return Denial(414, Reason.URI_TOO_LONG, detail="parser: request line too long")
        return Denial(431, Reason.HEADERS_TOO_LARGE, detail="parser: header line too long")
    if isinstance(exc, BadHttpMethod):  # a method token llhttp does not know: RFC 9110 §15.6.2
        return Denial(501, Reason.METHOD_NOT_ALLOWED, detail="parser: unknown method")
    if isinstance(exc, BadHttpMessage):
        text = str(exc).lower()
        if "too many headers" in text:
            return Denial(431, Reason.HEADERS_TOO_LARGE, detail="parser: too many headers")
        return Denial(400, Reason.BAD_REQUEST, detail=f"parser: {type(exc).__name__}")
    if status == 504:
        return Denial(504, Reason.UPSTREAM_TIMEOUT)
    if 400 <= status < 500:
        return Denial(status, Reason.BAD_REQUEST, detail=f"parser: {type(exc).__name__ if exc else status}")
    return Denial(500, Reason.INTERNAL, detail=type(exc).__name__ if exc else "")


class BastionServer(web.Server):
    def __init__(self, handler: ProxyHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self.line_limit = int(kwargs.get("max_line_size", 8190))
        self.proxy = handler
        self.rid_header = handler.rid_header

    def __call__(self) -> RequestHandler:
        return BastionRequestHandler(self, loop=self._loop, **self._kwargs)

    def on_parser_error(self, request_id: str, request: BaseRequest, denial: Denial) -> None:
        if not self.proxy.access_log:
            return
        self.proxy.output.emit(
            access_record(
                request_id=request_id,
                client_ip=request.remote or "",
                method="-",
                path="-",
                status=denial.status,
                bytes_in=0,
                bytes_out=0,
                started=time.monotonic(),
                upstream_ms=None,
                user_agent=None,
                extra={"bastion.reason": denial.reason.value, "bastion.detail": denial.detail},
            )
        )
