"""CORS owned by Bastion: preflights answered here, origin fields set on every response.

Placed between Ingress and RuleMatch. A preflight (`OPTIONS` with `Origin` and
`Access-Control-Request-Method`) carries no credentials, so it must be answered before rate limits
per identity and authentication; and it asks about another method than its own, so RuleMatch
(which would match `OPTIONS`, and 404 on a rule listing `[GET, POST]`) cannot decide it. This check
matches the rule for the *requested* method itself, takes that rule's `cors:` (or the global one),
and answers with a `Reply(204)` — the upstream never sees the preflight. When no rule matches, or
no policy applies, it steps aside and the pipeline goes on as for any OPTIONS request.

`on_response` runs on every response (proxied, denied, preflight): when a policy applies it drops
the upstream's `Access-Control-*` fields and sets Bastion's, so there are never two, and adds
`Vary: Origin` whenever the answer depends on the origin. A refused origin on an ordinary request
is not an error: the request goes on without CORS fields and the browser keeps the response from
the page (refusing it would also break same-origin form posts, which send `Origin` too).
"""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.context import RequestContext
from proxy.cors import ALLOW_ORIGIN, RESPONSE_FIELDS, RESPONSE_FIELDS_LOWER, CorsPolicy
from proxy.decision import Denial, Reason, Reply
from proxy.policy import PolicyHolder, Probe


class Cors:
    name = "cors"

    def __init__(self, default: CorsPolicy | None, holder: PolicyHolder | None) -> None:
        self.default = default
        self.holder = holder
        # With a global policy every response is Bastion's to decide: the upstream's CORS fields are
        # dropped while its headers are copied, at no extra cost. Per-rule policies drop them below.
        self.response_strips = RESPONSE_FIELDS_LOWER if default is not None else frozenset()

    async def __call__(self, ctx: RequestContext) -> None:
        if ctx.method != "OPTIONS":
            return
        headers = ctx.headers
        origin = headers.get("Origin")
        method = headers.get("Access-Control-Request-Method")
        if origin is None or method is None:
            return
        policy = self.default
        if self.holder is not None:
            m = self.holder.current.match(Probe(method, ctx.path, ctx.host, ctx.client_ip, headers))
            if m.rule is None or m.ambiguous:
                return  # RuleMatch decides, exactly as for any other OPTIONS request
            ctx.rule = m.rule
            ctx.log["bastion.rule"] = m.rule.id
            if m.rule.cors is not None:
                policy = m.rule.cors
        if policy is None:
            return
        ctx.log["bastion.cors"] = "preflight"
        if not policy.allows(origin):
            raise Denial(403, Reason.CORS_REFUSED, detail=f"origin {origin[:128]!r} not allowed")
        if not policy.allows_method(method):
            raise Denial(403, Reason.CORS_REFUSED, detail=f"method {method[:32]!r} not allowed")
        refused = policy.refused_headers(",".join(headers.getall("Access-Control-Request-Headers", ())))
        if refused:
            raise Denial(403, Reason.CORS_REFUSED, detail=f"headers not allowed: {', '.join(refused)[:200]}")
        raise Reply(204, policy.preflight)

    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None:
        rule = ctx.rule
        policy = rule.cors if rule is not None and rule.cors is not None else self.default
        if policy is None:
            return  # not Bastion's: the upstream's own CORS fields pass unchanged
        if self.default is None:
            for name in RESPONSE_FIELDS:
                headers.popall(name, None)
        origin = ctx.headers.get("Origin")
        if origin is not None:
            if policy.allows(origin):
                headers[ALLOW_ORIGIN] = "*" if policy.wildcard else origin
                for name, value in policy.actual:
                    headers[name] = value
            else:
                ctx.log.setdefault("bastion.cors", "origin_refused")
        if policy.vary:
            _vary_origin(headers)


def _vary_origin(headers: CIMultiDict[str]) -> None:
    """Add `Origin` to `Vary` unless it (or `*`) is already there: caches must key on it."""
    values = headers.getall("Vary", ())
    if values:
        for value in values:
            for token in value.split(","):
                if token.strip().lower() in ("origin", "*"):
                    return
        headers.add("Vary", "Origin")
    else:
        headers["Vary"] = "Origin"
