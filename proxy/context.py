"""The per-request state that travels through the pipeline (Oathkeeper's AuthenticationSession,
oauth2-proxy's RequestScope). Plain data: checks read it and add to it; they never see aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.identity import Principal


@dataclass(slots=True)
class RequestContext:
    request_id: str
    method: str
    raw_target: str
    headers: CIMultiDictProxy[str]
    peer_ip: str
    client_ip: str
    scheme: str
    host: str
    started: float
    # Filled in by the ingress check: the path every later check matches and the upstream receives.
    path: str = ""
    query: str = ""
    http_version: tuple[int, int] = (1, 1)
    header_count: int = 0
    header_bytes: int = 0  # names + values + 4 per field (": " and CRLF), as on the wire
    content_length: int | None = None
    chunked: bool = False
    body_limit: int = 0
    body_idle_timeout: float = 30.0
    websocket: bool = False
    # The request body, once a check asked for it (bounded by `body_limit`); the upstream then gets
    # exactly these bytes. `body_reader` is the server's; checks call `read_body()`.
    body: bytes | None = None
    # called as body_reader(ctx, limit): taking the context as an argument (not capturing it) keeps
    # the context out of a reference cycle, so it is freed by refcounting, not by the GC
    body_reader: Callable[[RequestContext, int], Awaitable[bytes]] | None = None
    parsed_body: Any = None  # proxy.body.Parsed, when validation parsed it (detectors reuse it)
    # Set by the rule match (the compiled rule that decides this request) and by authentication.
    rule: Any = None
    principal: Principal | None = None
    # Headers that checks want added to the upstream request (identity, trace); set after stripping.
    upstream_headers: CIMultiDict[str] | None = None
    # W3C trace context (proxy/tracecontext.py), set before any check runs; empty when tracing is off.
    # span_id is Bastion's own; parent_id the caller's, when its traceparent was continued.
    trace_id: str = ""
    span_id: str = ""
    parent_id: str | None = None
    trace_flags: str = "00"
    tracestate: str | None = None
    # Extra fields for the access record (rule id, user, reason ...).
    log: dict[str, Any] = field(default_factory=dict)

    async def read_body(self, cap: int | None = None) -> bytes:
        """The whole body, read once and kept; Denial(413) past `min(cap, body_limit)`.

        Only checks that must see the body call this (login throttling, schemas, detectors):
        every other request streams untouched.
        """
        if self.body is None:
            limit = self.body_limit if cap is None else min(cap, self.body_limit)
            self.body = await self.body_reader(self, limit) if self.body_reader is not None else b""
        return self.body

    def add_upstream_header(self, name: str, value: str) -> None:
        if self.upstream_headers is None:
            self.upstream_headers = CIMultiDict()
        self.upstream_headers[name] = value

    @property
    def target(self) -> str:
        """The canonical request target that is forwarded."""
        return f"{self.path}?{self.query}" if self.query else self.path
