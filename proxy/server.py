"""The only aiohttp-server glue: web request → RequestContext → Pipeline → Forwarder → response.

We use aiohttp's low-level `web.Server` rather than an `Application` with a catch-all route: a
reverse proxy needs no router or middleware chain, and the low-level server lets us replace
`handle_error`, so the 400s that aiohttp's HTTP parser produces before any handler runs get the
same problem+json body and headers as everything else (and no `Server` header, no echoed input).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from proxy.config import Config
from proxy.context import RequestContext
from proxy.decision import Denial, Reason, Reply
from proxy.forwarded import SPOOFABLE, ForwardedPolicy
from proxy.forwarder import Forwarder
from proxy.headers import HOP_BY_HOP, end_to_end
from proxy.logs import REQUEST_SCOPE, UNLOGGED, LogOutput, access_record, cap
from proxy.pipeline import Pipeline
from proxy.requestid import request_id_from
from proxy.responses import ProxyResponse, problem_response, reply_response
from proxy.security_headers import HeaderPolicy
from proxy.tracecontext import Tracer
from proxy.websocket import relay

log = logging.getLogger("bastion.server")


_COALESCE_BYTES = 16 * 1024


class _BodyStopped(Exception):
    """A streamed request body stopped: over its cap, or paused past the idle timeout."""


class _LimitedBody:
    """Streams a request body upstream, counting bytes and timing pauses; past the cap, or after a
    pause longer than the idle timeout, it raises, so the connection to the upstream is closed
    without the end of the body (no terminating chunk, fewer bytes than Content-Length) and the
    upstream never receives a truncated body that looks complete."""

    __slots__ = ("stream", "limit", "idle", "count", "overflowed", "timed_out")

    def __init__(self, stream: aiohttp.StreamReader, limit: int, idle: float) -> None:
        self.stream = stream
        self.limit = limit
        self.idle = idle
        self.count = 0
        self.overflowed = False
        self.timed_out = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self.stream
        while True:
            try:
                async with asyncio.timeout(self.idle):
                    chunk = await stream.readany()
            except TimeoutError:
                self.timed_out = True
                raise _BodyStopped from None
            if not chunk:
                return
            self.count += len(chunk)
            if self.count > self.limit:
                self.overflowed = True
                raise _BodyStopped
            yield chunk


class ProxyHandler:
    """The request handler given to `web.Server`."""

    def __init__(self, cfg: Config, pipeline: Pipeline, forwarder: Forwarder, output: LogOutput) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.forwarder = forwarder
        self.output = output
        self.access_log = cfg.logging.access_log
        self.log_query = cfg.logging.query
        self.log_headers = cfg.logging.headers
        self.rid_header = cfg.request_id.header
        self.policy = ForwardedPolicy(cfg.trusted_proxies, cfg.client_ip_header)
        self.scheme = "https" if cfg.listen.tls else "http"
        self.ws_enabled = cfg.websocket.enabled
        self.ws_max = cfg.websocket.max_message
        self.tracer = Tracer(cfg.tracing)
        # Client-sent headers that Bastion re-sets or that must never reach the upstream: resolved once.
        drop = {h.lower() for h in SPOOFABLE} | {self.rid_header.lower(), "expect"} | pipeline.strips
        drop |= self.tracer.strips
        if cfg.upstream.host_header == "rewrite":
            drop.add("host")
        self.drop = frozenset(drop) | HOP_BY_HOP
        # Upstream response headers that checks own or that leak (the OWASP remove list, the upstream's
        # CORS fields when Bastion owns CORS): dropped in the one copy of the upstream's headers.
        strips = (n for hook in pipeline.response_hooks for n in getattr(hook, "response_strips", ()))
        self.response_drop = HOP_BY_HOP | frozenset(strips)
        # Parser-generated errors have no request context: the global plan for the listener's scheme.
        self.parser_plan = HeaderPolicy(cfg.headers).plan(https=self.scheme == "https", authenticated=False)
        self.mask_errors = cfg.mask_upstream_errors
        self.body_idle = cfg.limits.body_idle_timeout
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
        self.tracer.begin(ctx)  # before any check: denials carry the trace id too
        REQUEST_SCOPE.set((ctx.request_id, ctx.trace_id))  # process logs during the request carry both
        raw = request.raw_headers
        ctx.http_version = request.version[:2]
        ctx.header_count = len(raw)
        ctx.header_bytes = sum(map(len, itertools.chain.from_iterable(raw))) + 4 * len(raw)
        ctx.content_length = request.content_length
        ctx.body_idle_timeout = self.body_idle
        state = _Outcome()
        ctx.body_reader = functools.partial(self._read_body, request, state)
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
            except Reply as reply:
                resp = self._reply(ctx, reply, state)
                if ctx.content_length or ctx.chunked:
                    resp.force_close()
                return resp
            except (ConnectionError, asyncio.CancelledError):
                state.status = state.status or 499  # client went away (nginx's code)
                raise
            except Exception:
                log.exception("unhandled error")
                return self._deny(ctx, Denial(500, Reason.INTERNAL), state)
        finally:
            self.inflight -= 1
            REQUEST_SCOPE.set(None)
            # the access record also feeds the metrics and the security events: with the access log
            # off it is still built, and LogOutput writes no line for it
            if not self.access_log:
                ctx.log[UNLOGGED] = True
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
                    query=ctx.query if self.log_query else "",
                    headers={h: v for h in self.log_headers if (v := headers.get(h)) is not None}
                    if self.log_headers
                    else None,
                )
            )

    def _deny(self, ctx: RequestContext, denial: Denial, state: _Outcome) -> web.StreamResponse:
        state.status = denial.status
        ctx.log["bastion.reason"] = denial.reason.value
        if denial.extra and (violated := denial.extra.get("violated-policies")):
            ctx.log["bastion.policies"] = violated
        if denial.detail:
            ctx.log["bastion.detail"] = cap(denial.detail, 512)
        resp = problem_response(denial, ctx.request_id, self.rid_header)
        self.pipeline.on_response(ctx, denial.status, resp.headers)  # type: ignore[arg-type]
        # a rule's `set: {Cache-Control: public…}` is for the upstream's answers: a shared cache must
        # never keep Bastion's 401/404/429 and serve it to others
        resp.headers[hdrs.CACHE_CONTROL] = "no-store"
        return resp

    def _reply(self, ctx: RequestContext, reply: Reply, state: _Outcome) -> web.StreamResponse:
        """A check's own answer that is no refusal (a CORS preflight): rendered once, hooks run on it."""
        state.status = reply.status
        ctx.log["bastion.decision"] = "reply"
        resp = reply_response(reply, ctx.request_id, self.rid_header)
        self.pipeline.on_response(ctx, reply.status, resp.headers)  # type: ignore[arg-type]
        return resp

    def _masked(self, ctx: RequestContext, up: aiohttp.ClientResponse, state: _Outcome) -> web.StreamResponse:
        """`mask_upstream_errors`: an upstream 5xx body (a stack trace, a framework's debug page) never
        reaches the client. The status does, in a generic problem document; the log says it was masked."""
        status = up.status
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Upstream Error"
        retry = up.headers.get(hdrs.RETRY_AFTER)
        ctx.log["bastion.upstream_status"] = status
        denial = Denial(
            status,
            Reason.UPSTREAM_ERROR,
            title=title,
            detail=f"upstream answered {status}; body masked",
            headers={hdrs.RETRY_AFTER: retry} if retry else None,
        )
        return self._deny(ctx, denial, state)

    async def _read_body(self, request: BaseRequest, state: _Outcome, ctx: RequestContext, limit: int) -> bytes:
        """ctx.read_body()'s reader: the whole body up to `limit`, or a 413/408 Denial."""
        if not (ctx.content_length or ctx.chunked):
            return b""
        if ctx.content_length is not None and ctx.content_length > limit:
            raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"content-length {ctx.content_length} > {limit}")
        await self._continue(request, state)
        data = b""
        try:
            while len(data) <= limit and not request.content.at_eof():
                async with asyncio.timeout(ctx.body_idle_timeout):
                    more = await request.content.read(limit + 1 - len(data))
                if not more:
                    break
                data += more
        except TimeoutError:
            raise Denial(408, Reason.BODY_TIMEOUT, detail="body paused too long (read for inspection)") from None
        if len(data) > limit:
            raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"body > {limit} (read for inspection)")
        return data

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
        """Every field Bastion sets was removed from the client's copy (`self.drop`), so they are
        appended, and the multidict is built once (the forwarder hands it to aiohttp as it is)."""
        fields = end_to_end(request.headers, self.drop)
        fields += self.policy.upstream_fields(peer, origin, request.headers)
        fields.append((self.rid_header, ctx.request_id))
        self.tracer.fields(ctx, fields)
        if ctx.upstream_headers:  # identity headers of the checks: names in `pipeline.strips`, so dropped too
            fields.extend(ctx.upstream_headers.items())
        return CIMultiDict(fields)

    async def _forward(
        self, request: BaseRequest, ctx: RequestContext, up_headers: CIMultiDict[str], state: _Outcome
    ) -> web.StreamResponse:
        body: Any = None
        limited: _LimitedBody | None = None
        if ctx.body is not None:  # a check read it: the upstream gets exactly what was inspected
            body = ctx.body
            state.bytes_in = len(body)
            up_headers.popall(hdrs.CONTENT_LENGTH, None)  # aiohttp sets it from the bytes
        elif ctx.chunked or ctx.content_length:
            # Content-Length bodies go through the same wrapper: the client's Content-Length header
            # is kept, so aiohttp sends them with it (not chunked); the wrapper adds the idle timeout
            body = limited = _LimitedBody(request.content, ctx.body_limit, ctx.body_idle_timeout)
        if body is not None:
            await self._continue(request, state)
        elif request.headers.get(hdrs.EXPECT, "100-continue").lower() != "100-continue":
            raise Denial(417, Reason.BAD_REQUEST, detail="unsupported expectation")
        t0 = time.monotonic()
        try:
            up = await self.forwarder.send(
                ctx.method, ctx.target, up_headers, body, getattr(ctx.rule, "timeout", None)
            )
        except Denial:
            if limited is not None and limited.timed_out:
                raise Denial(408, Reason.BODY_TIMEOUT, detail=f"body paused > {ctx.body_idle_timeout:g}s") from None
            if limited is not None and limited.overflowed:
                raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"chunked body > {ctx.body_limit}") from None
            raise
        finally:
            if limited is not None:
                state.bytes_in = limited.count
        try:
            state.upstream_ms = (time.monotonic() - t0) * 1000
            if self.mask_errors and up.status >= 500:
                return self._masked(ctx, up, state)
            resp = ProxyResponse(status=up.status)
            resp_headers = resp.headers  # filled in place: StreamResponse(headers=...) would copy them again
            resp_headers.extend(end_to_end(up.headers, self.response_drop))
            resp_headers[self.rid_header] = ctx.request_id
            self.pipeline.on_response(ctx, up.status, resp_headers)  # type: ignore[arg-type]
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
