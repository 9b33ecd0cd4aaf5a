"""Connection-level aiohttp glue: errors found by the HTTP parser, before any handler runs.

aiohttp answers a malformed request (CL with TE, a bad header line, an oversized line) from its
`RequestHandler.handle_error` with a plain-text 400 that carries `Server: Python/… aiohttp/…`
and echoes the input. We subclass the handler (through a `web.Server` subclass, the only way in;
a private hook, so aiohttp is pinned to 3.14.x and raw-socket tests cover it) to render those as
Bastion's problem documents with the global security headers, and to log them.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from proxy.decision import Denial, Reason
from proxy.logs import UNLOGGED, access_record
from proxy.requestid import new_request_id
from proxy.responses import problem_response

if TYPE_CHECKING:
    from proxy.server import ProxyHandler


def c_parser_active() -> bool:
    """aiohttp uses llhttp (C) unless its extensions are missing or AIOHTTP_NO_EXTENSIONS is set;
    the pure-Python fallback has had request-smuggling bugs, so Bastion refuses it by default."""
    from aiohttp import http_parser

    return http_parser.HttpRequestParser.__module__.endswith("_http_parser")


class BastionRequestHandler(RequestHandler):
    """aiohttp's connection handler with Bastion's rendering of errors the parser finds, and a
    header timeout: aiohttp waits for a request head for as long as the client trickles it
    (slowloris). The timer starts at the first byte of a head and stops when the head is parsed;
    a body that follows is timed by the body idle timeout instead (proxy/server.py)."""

    _head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages or self._request_in_progress:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        elif self._head_timer is None and not self._force_close:
            manager: BastionServer = self._manager  # type: ignore[assignment]
            self._head_timer = self._loop.call_later(manager.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if self._messages or self._request_in_progress or transport is None or transport.is_closing():
            return
        manager: BastionServer = self._manager  # type: ignore[assignment]
        rid = new_request_id()
        denial = Denial(408, Reason.HEADER_TIMEOUT, detail=f"request head not complete in {manager.header_timeout:g}s")
        manager.on_parser_error(rid, None, denial, peer=transport.get_extra_info("peername"))
        # No request, so no response object: the head is written here, with the same headers
        # (problem type, request id, the listener's security-header plan) as every other answer.
        body = orjson.dumps(denial.problem(rid))
        headers: CIMultiDict[str] = CIMultiDict(
            {"Content-Type": "application/problem+json", manager.rid_header: rid, "Cache-Control": "no-store"}
        )
        manager.proxy.parser_plan.apply(headers)
        headers["Content-Length"] = str(len(body))
        headers["Connection"] = "close"
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        transport.write(f"HTTP/1.1 408 Request Timeout\r\n{lines}\r\n".encode("latin-1") + body)
        self.force_close()
        transport.close()

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
        resp = problem_response(denial, rid, manager.rid_header, manager.proxy.parser_plan)
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
        self.header_timeout = handler.cfg.limits.header_timeout
        self.proxy = handler
        self.rid_header = handler.rid_header

    def __call__(self) -> RequestHandler:
        return BastionRequestHandler(self, loop=self._loop, **self._kwargs)

    def on_parser_error(self, request_id: str, request: BaseRequest | None, denial: Denial, peer: Any = None) -> None:
        extra: dict[str, Any] = {"bastion.reason": denial.reason.value, "bastion.detail": denial.detail}
        if not self.proxy.access_log:
            extra[UNLOGGED] = True  # still counted by the metrics, and a security event if it is one
        self.proxy.output.emit(
            access_record(
                request_id=request_id,
                client_ip=(request.remote or "") if request is not None else (peer[0] if peer else ""),
                method="-",
                path="-",
                status=denial.status,
                bytes_in=0,
                bytes_out=0,
                started=time.monotonic(),
                upstream_ms=None,
                user_agent=None,
                extra=extra,
            )
        )
