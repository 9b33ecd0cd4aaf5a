"""Authentication: exactly one bearer token → verified Principal on the context, or a 401.

Order of work, cheapest first: extract (exactly one token from the configured sources), size cap,
the verified-token cache, then full verification; revocation is checked on every request, cached
or not. On a rule that allows anonymous access, a missing or bad token is ignored and the request
goes on as anonymous (so `/auth/login` and `/auth/refresh` keep working with a stale token); the
identity headers are stripped from every request either way (see `strips`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from proxy.config import Auth
from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.identity import Principal
from proxy.jwt.cache import Entry, TokenCache
from proxy.jwt.errors import TokenError
from proxy.jwt.verifier import Verifier
from proxy.revocation import RevocationStore

# RFC 9110 §9.2.1: everything else (POST, PUT, PATCH, DELETE, PROPFIND, PURGE ...) can change state
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token
_MISSING = {"WWW-Authenticate": "Bearer"}
# RFC 6750 §3.1; the description stays generic: the reason code goes to the log only
_INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is invalid"'}


class Authenticate:
    name = "authn"

    def __init__(self, cfg: Auth, verifier: Verifier, cache: TokenCache, revocations: RevocationStore | None) -> None:
        self.cfg = cfg
        self.verifier = verifier
        self.cache = cache
        self.revocations = revocations
        self.max_bytes = cfg.max_token_bytes
        self.headers = tuple((s.header, (s.scheme or "").lower()) for s in cfg.token_sources if s.header)
        self.cookies = tuple(s.cookie for s in cfg.token_sources if s.cookie)
        self.origins = frozenset(o.rstrip("/").lower() for o in cfg.cookie_origins)
        self.forward = tuple(cfg.forward_claims.items())
        # Identity headers the upstream trusts: never from the client (oauth2-proxy CVE-2025-64484).
        self.strips = frozenset(h.lower() for h in cfg.forward_claims.values())

    async def __call__(self, ctx: RequestContext) -> None:
        anonymous_ok = bool(getattr(ctx.rule, "allows_anonymous", False))
        try:
            token, from_cookie = self._extract(ctx)
            if token is None:
                if anonymous_ok:
                    return
                raise Denial(401, Reason.JWT_MISSING, headers=_MISSING, public="missing-token")
            if from_cookie and ctx.method not in _SAFE and not self._same_origin(ctx):
                raise TokenError(Reason.CSRF, "cookie token on an unsafe method without a matching Origin")
            principal, identity = await self._verify(token)
        except TokenError as exc:
            if anonymous_ok:
                ctx.log["bastion.auth_ignored"] = exc.reason.value
                return
            if exc.reason is Reason.CSRF:
                raise Denial(403, exc.reason, detail=exc.detail) from None
            # one public problem type for every token failure: which check failed is for the log only
            raise Denial(401, exc.reason, detail=exc.detail, headers=_INVALID, public="invalid-token") from None
        ctx.principal = principal
        ctx.log["user.id"] = principal.subject
        for header, value in identity:
            ctx.add_upstream_header(header, value)

    async def _verify(self, token: str) -> Entry:
        key = self.cache.key(token)
        entry = self.cache.get(key)
        if entry is None:
            if not _TOKEN68.fullmatch(token):
                raise TokenError(Reason.JWT_MALFORMED, "not a token68 value")
            principal = await self.verifier.verify(token)
            entry = (principal, self._identity(principal))
            self.cache.put(key, entry)
        if self.revocations is not None and await self.revocations.is_revoked(entry[0]):
            raise TokenError(Reason.REVOKED)
        return entry

    def _extract(self, ctx: RequestContext) -> tuple[str | None, bool]:
        found: list[tuple[str, bool]] = []
        for name, scheme in self.headers:
            values = ctx.headers.getall(name, ())
            if len(values) > 1:
                raise TokenError(Reason.JWT_MULTIPLE, f"{len(values)} {name} headers")
            if values:
                found.append((self._from_header(values[0], scheme), False))
        if self.cookies:
            for cookie_header in ctx.headers.getall("Cookie", ()):
                for part in cookie_header.split(";"):
                    name, _, value = part.strip().partition("=")
                    if name in self.cookies and value:
                        found.append((self._check(value), True))
        if len(found) > 1:
            raise TokenError(Reason.JWT_MULTIPLE, "a token in more than one place")
        return found[0] if found else (None, False)

    def _from_header(self, value: str, scheme: str) -> str:
        if scheme:
            got, _, token = value.partition(" ")
            if got.lower() != scheme:
                raise TokenError(Reason.JWT_WRONG_SCHEME)
        else:
            token = value
        return self._check(token)

    def _check(self, token: str) -> str:
        """The same size check for every source, before any hashing; the alphabet is checked on a
        cache miss only (a cached token is byte for byte one that passed every check before)."""
        if len(token) > self.max_bytes:
            raise TokenError(Reason.JWT_TOO_LARGE, f"{len(token)} bytes")
        if not token or not token.isascii():
            raise TokenError(Reason.JWT_MALFORMED, "not a token68 value")
        return token

    def _same_origin(self, ctx: RequestContext) -> bool:
        origin = ctx.headers.get("Origin")
        if origin is not None:
            origin = origin.rstrip("/").lower()
            return origin in self.origins or origin == f"{ctx.scheme}://{ctx.host}".lower()
        return ctx.headers.get("Sec-Fetch-Site") == "same-origin"

    def _identity(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        """The `forward_claims` headers of a verified token, computed once and cached with it."""
        out: list[tuple[str, str]] = []
        for claim, header in self.forward:
            value = _claim(principal.claims, claim)
            if value is None:
                continue
            text = _header_value(value)
            if text is None:
                raise TokenError(Reason.BAD_CLAIMS, f"claim {claim} cannot be a header")
            out.append((header, text))
        return tuple(out)


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by its literal name, else by a dotted path into nested objects (`realm_access.roles`)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _header_value(value: Any) -> str | None:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        items = [str(v) for v in value]
        if any("," in i for i in items):
            return None  # "user,admin" must never read as two values upstream
        text = ",".join(items)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=True)
    if any(c < " " or c == "\x7f" for c in text) or len(text) > 4096:
        return None
    return text
