"""Security headers on every response that has a request context: proxied, denied, preflight.

A response hook only (its request stage does nothing). The plan is picked by two facts of the
request — was the original scheme https (directly, or `X-Forwarded-Proto` from a trusted proxy, as
resolved into `ctx.scheme`), and is there a verified principal (then the API profile adds
`Cache-Control: no-store` unless the upstream set its own) — and the matched rule's `headers:`
overrides, compiled at rule load, are applied on top (`Plan.apply_under`).

The upstream's leaking headers (the OWASP remove list, `Server` among them) are not removed here:
`response_strips` hands them to the server, which drops them while copying the upstream's headers,
so a removal costs one set lookup per upstream header. Parser-generated errors have no context;
the server gives them the global plan for its listener's scheme (`HeaderPolicy.plan`).

Cost per response: one tuple index and, for the API profile, five `in` tests and assignments on a
CIMultiDict: about 0.7 µs a response (CORS, when configured, another 0.5 µs).
"""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.context import RequestContext
from proxy.security_headers import HeaderPolicy


class ResponseHeaders:
    name = "response_headers"
    request_stage = False  # a response hook only: the pipeline does not await __call__

    def __init__(self, policy: HeaderPolicy) -> None:
        self.plans = policy.plans
        self.response_strips = policy.leaky

    async def __call__(self, ctx: RequestContext) -> None:
        return None

    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None:
        plan = self.plans[(ctx.scheme == "https") | (ctx.principal is not None) << 1]
        rule = ctx.rule
        overrides = rule.headers if rule is not None else None
        if overrides is None:
            plan.apply(headers)
        else:
            plan.apply_under(overrides, headers)
