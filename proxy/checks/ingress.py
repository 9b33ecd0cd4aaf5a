"""Cheap, stateless request hygiene that runs before anything else reads the request:
URI, header and body size caps, and the canonical path.

Everything here is O(size of the request head) and allocation-light; the limits are resolved from
config at construction.
"""

from __future__ import annotations

from proxy.canonical import PathError, canonical_path
from proxy.config import Limits
from proxy.context import RequestContext
from proxy.decision import Denial, Reason


class Ingress:
    name = "ingress"

    def __init__(self, limits: Limits) -> None:
        self.max_uri = limits.max_uri
        self.max_headers = limits.max_headers
        self.max_header_bytes = limits.max_header_bytes
        self.max_body = limits.max_body

    async def __call__(self, ctx: RequestContext) -> None:
        target = ctx.raw_target
        if len(target) > self.max_uri:
            raise Denial(414, Reason.URI_TOO_LONG, detail=f"uri length {len(target)} > {self.max_uri}")
        if ctx.header_count > self.max_headers:
            raise Denial(431, Reason.HEADERS_TOO_LARGE, detail=f"{ctx.header_count} fields > {self.max_headers}")
        size = ctx.header_bytes
        if size > self.max_header_bytes:
            raise Denial(431, Reason.HEADERS_TOO_LARGE, detail=f"header bytes {size} > {self.max_header_bytes}")
        ctx.body_limit = self.max_body
        if ctx.content_length is not None and ctx.content_length > self.max_body:
            raise Denial(413, Reason.BODY_TOO_LARGE, detail=f"content-length {ctx.content_length} > {self.max_body}")
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            path = self._origin_form(path, ctx)
        try:
            ctx.path = canonical_path(path)
        except PathError as exc:
            raise Denial(400, Reason.BAD_PATH, detail=str(exc)) from None
        if "#" in query:  # SECURITY: a fragment is never sent by a real client; refuse the ambiguity
            raise Denial(400, Reason.BAD_PATH, detail="fragment in request target")
        ctx.query = query

    @staticmethod
    def _origin_form(path: str, ctx: RequestContext) -> str:
        """Accept an absolute-form target only for our own Host: Bastion is never an open proxy."""
        lowered = path.lower()
        for scheme in ("http://", "https://"):
            if lowered.startswith(scheme):
                authority, slash, rest = path[len(scheme) :].partition("/")
                if authority.lower() != ctx.host.lower():
                    raise Denial(400, Reason.BAD_REQUEST, detail="absolute-form target for another host")
                return slash + rest if slash else "/"
        raise Denial(400, Reason.BAD_REQUEST, detail="request target is not origin-form")
