"""aiohttp response classes that never announce a product or version.

aiohttp adds `Server: Python/3.x aiohttp/3.x` to every response in `_prepare_headers`; setting it
to "" still sends an empty header line. The only clean way out is to drop the header just before
the status line is written, in `_write_headers` (a private hook: aiohttp is pinned to 3.14.x and
raw-socket tests cover it).
"""

from __future__ import annotations

import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

from proxy.decision import Denial, Reply
from proxy.security_headers import Plan


class ProxyResponse(web.StreamResponse):
    async def _write_headers(self) -> None:
        self._headers.popall(hdrs.SERVER, None)
        await super()._write_headers()


class PlainResponse(web.Response):
    async def _write_headers(self) -> None:
        self._headers.popall(hdrs.SERVER, None)
        await super()._write_headers()


class ProxyWebSocketResponse(web.WebSocketResponse):
    async def _write_headers(self) -> None:
        self._headers.popall(hdrs.SERVER, None)
        await super()._write_headers()


PROBLEM_JSON = "application/problem+json"


def problem_response(
    denial: Denial, request_id: str, request_id_header: str, security: Plan | None = None
) -> PlainResponse:
    """The one rendering of a denial to HTTP (RFC 9457).

    `security` is given where no response hook will run (errors aiohttp's parser finds before any
    handler): the global security-header plan. Elsewhere the `response_headers` hook applies the
    plan of the request (its scheme, principal and rule), with the same `Plan.apply`. Errors are
    never cached, whatever the profile says.
    """
    headers: CIMultiDict[str] = CIMultiDict(denial.headers)
    headers[hdrs.CONTENT_TYPE] = PROBLEM_JSON
    headers[request_id_header] = request_id
    headers[hdrs.CACHE_CONTROL] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    if security is not None:
        security.apply(headers)
    return PlainResponse(status=denial.status, body=orjson.dumps(denial.problem(request_id)), headers=headers)


def reply_response(reply: Reply, request_id: str, request_id_header: str) -> PlainResponse:
    """A check's bodiless answer (a CORS preflight); the response hooks add the rest."""
    headers: CIMultiDict[str] = CIMultiDict(reply.headers)
    headers[request_id_header] = request_id
    return PlainResponse(status=reply.status, headers=headers)
