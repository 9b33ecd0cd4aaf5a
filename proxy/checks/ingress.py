"""Cheap, stateless request hygiene that runs before anything else reads the request: protocol
version, method allow-list, framing that aiohttp's parser lets through, URI, header and body size
caps, and the canonical path.

Everything here is O(size of the request head) and allocation-light; the limits are resolved from
config at construction. What llhttp already refuses (CL+TE, duplicate Content-Length, obs-fold,
bare LF, CR/NUL in values, bad chunk sizes, ...) never gets here: README "Framing" has the table.
"""

from __future__ import annotations

from proxy.canonical import PathError, canonical_path
from proxy.config import Limits, Paths, Protocol
from proxy.context import RequestContext
from proxy.decision import Denial, Reason

# Every method registered with IANA that we might see: outside the allow-list these get 405, any
# other token 501 (RFC 9110 §15.6.2), so an allow-list typo is told apart from an unknown method.
_KNOWN_METHODS = frozenset(
    "GET HEAD POST PUT PATCH DELETE OPTIONS TRACE CONNECT PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK "
    "SEARCH REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PURGE LINK UNLINK QUERY".split()
)
# SECURITY: methods whose body has no defined meaning: a body there is how a second request hides
# from a front end that ignores it (CL.0 / GET smuggling).
_NO_BODY = frozenset({"GET", "HEAD", "TRACE"})
# Headers that make some upstream frameworks override the method: never from an untrusted client.
METHOD_OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


class Ingress:
    name = "ingress"

    def __init__(self, limits: Limits, protocol: Protocol | None = None, paths: Paths | None = None) -> None:
        protocol = protocol or Protocol()
        paths = paths or Paths()
        self.keep_encoded_slash = paths.encoded_slash == "keep"
        self.merge_slashes = paths.merge_slashes
        self.methods = frozenset(protocol.methods)
        self.strips = frozenset(h.lower() for h in METHOD_OVERRIDES)
        self.max_uri = limits.max_uri
        self.max_headers = limits.max_headers
        self.max_header_bytes = limits.max_header_bytes
        self.max_body = limits.max_body

    async def __call__(self, ctx: RequestContext) -> None:
        if ctx.http_version not in ((1, 1), (1, 0)):  # llhttp lets HTTP/0.9 and "HTTP/2.0" lines through
            raise Denial(505, Reason.BAD_REQUEST, detail=f"HTTP/{ctx.http_version[0]}.{ctx.http_version[1]}")
        if ctx.method not in self.methods:
            if ctx.method in _KNOWN_METHODS:
                raise Denial(405, Reason.METHOD_NOT_ALLOWED, detail=ctx.method[:16])
            raise Denial(501, Reason.METHOD_NOT_ALLOWED, detail="unknown method")
        self._framing(ctx)
        target = ctx.raw_target
        if len(target) > self.max_uri:
            raise Denial(414, Reason.URI_TOO_LONG, detail=f"uri length {len(target)} > {self.max_uri}")
        if ctx.header_count > self.max_headers:
            raise Denial(431, Reason.HEADERS_TOO_LARGE, detail=f"{ctx.header_count} fields > {self.max_headers}")
        size = ctx.header_bytes
        if size > self.max_header_bytes:
            raise Denial(431, Reason.HEADERS_TOO_LARGE, detail=f"header bytes {size} > {self.max_header_bytes}")
        ctx.body_limit = self.max_body  # a route may change it (checks/validate.py: BodyLimit)
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            path = self._origin_form(path, ctx)
        try:
            ctx.path = canonical_path(
                path, keep_encoded_slash=self.keep_encoded_slash, merge_slashes=self.merge_slashes
            )
        except PathError as exc:
            raise Denial(400, Reason.BAD_PATH, detail=str(exc)) from None
        ctx.query = query

    @staticmethod
    def _framing(ctx: RequestContext) -> None:
        te = ctx.headers.getall("Transfer-Encoding", ())
        if te:
            # SECURITY: RFC 9112 §6.1; only the exact, single coding is accepted: "gzip, chunked",
            # "CHUNKED" and friends are how front and back ends are made to disagree on framing.
            if ctx.http_version != (1, 1):
                raise Denial(400, Reason.BAD_FRAMING, detail="Transfer-Encoding on HTTP/1.0")
            if te != ["chunked"]:
                raise Denial(400, Reason.BAD_FRAMING, detail="Transfer-Encoding other than exactly chunked")
        if ctx.method in _NO_BODY and (ctx.chunked or ctx.content_length):
            raise Denial(400, Reason.BAD_FRAMING, detail=f"{ctx.method} with a body")
        if "#" in ctx.raw_target:  # SECURITY: a real client never sends a fragment; refuse the ambiguity
            raise Denial(400, Reason.BAD_PATH, detail="fragment in request target")

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
