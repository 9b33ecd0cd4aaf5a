"""Rate limits, in two pipeline stages, each one store call (one Redis round trip) for all its limits.

`ClientLimits` runs after the rule match and before authentication: limits keyed by client
address, route or header, so an unauthenticated flood is cut off before any signature check
(~80 µs each). `IdentityLimits` runs right after authentication: limits keyed by `sub`, which only
exist once a token is verified (an anonymous request skips them; its address limits still hold).
The limits of a request are the global `rate_limits.default` plus its rule's `rate_limit`, all
checked and consumed together: a request one of them refuses consumes none.

A 429 carries `Retry-After`, `RateLimit-Policy`, `RateLimit` and a `quota-exceeded` problem with
`violated-policies`. With `rate_limits.headers: always` every other answer carries the
fields too: the stages leave them on the access record (`bastion.ratelimit`, useful there as
well) and `ClientLimits.on_response` copies them onto the response.

The fields are those of draft-ietf-httpapi-ratelimit-headers-11: RFC 9651 structured-field lists
of quoted policy names with parameters:

    RateLimit-Policy: "ip";q=200;w=2, "login.ip";q=5;w=60
    RateLimit: "ip";r=0;t=1

`q` is the burst (what may be spent at once) and `w` the seconds a full refill takes (burst / rate,
rounded up): with the default burst (= the rate's count) that is exactly "count per period". `r` is
what is left, `t` the seconds until more quota is available (draft-10 changed `t` to mean exactly
this, which suits a GCRA). On a 429 `RateLimit` lists only the violated policies (the others were
not charged) and `Retry-After` is their largest `t`, so it is never earlier than any of them.
Names only, never keys: no `pk` is sent, so no address, user id or API key appears in a response.
Names are restricted to `[A-Za-z0-9_.:-]` (config and rule ids), so no escaping is ever needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from multidict import CIMultiDict

from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.ratelimit.base import QUOTA_EXCEEDED, Hit, Policy, PolicyState, StoreUnavailable, Verdict
from proxy.ratelimit.keys import KeyValues
from proxy.ratelimit.limiter import Limiter, unavailable

_LOG_KEY = "bastion.ratelimit"


def policy_field(policies: Iterable[Policy]) -> str:
    return ", ".join(p.item for p in policies)


def state_field(states: Iterable[PolicyState]) -> str:
    return ", ".join(f'"{s.policy.name}";r={s.remaining};t={s.reset}' for s in states)


def limited(verdict: Verdict, policies: Sequence[Policy]) -> Denial:
    """The 429 for a denied verdict: Retry-After, both fields, and `violated-policies`."""
    names = [s.policy.name for s in verdict.states]
    headers = {
        "Retry-After": str(max(1, verdict.retry_after)),
        "RateLimit-Policy": policy_field(policies),
        "RateLimit": state_field(verdict.states),
    }
    return Denial(
        429, Reason.RATE_LIMITED, detail="limited by " + ", ".join(names), headers=headers, public=QUOTA_EXCEEDED,
        extra={"violated-policies": names},
    )


class _Stage:
    identity = False

    def __init__(self, limiter: Limiter, defaults: tuple[Policy, ...], values: KeyValues, always: bool) -> None:
        self.limiter = limiter
        self.defaults = tuple(p for p in defaults if p.identity == self.identity)
        self.values = values
        self.always = always

    def applies(self, rule: object) -> bool:
        return bool(self.policies(rule))

    def policies(self, rule: object) -> tuple[Policy, ...]:
        own: tuple[Policy, ...] = getattr(rule, "rate_limits", None) or ()
        if not own:
            return self.defaults
        return self.defaults + tuple(p for p in own if p.identity == self.identity)

    async def check(self, ctx: RequestContext, policies: tuple[Policy, ...]) -> None:
        hits: list[Hit] = []
        for policy in policies:
            values = self.values.values(policy, ctx)
            if values is not None:
                hits.append((policy, values))
        if not hits:
            return
        try:
            verdict = await self.limiter.hit(hits)
        except StoreUnavailable as exc:
            raise unavailable(f"rate limits: {exc}") from None
        if not verdict.allowed:
            raise limited(verdict, [p for p, _ in hits])
        if self.always:
            policy_text, state_text = policy_field(p for p, _ in hits), state_field(verdict.states)
            before = ctx.log.get(_LOG_KEY)
            if before:
                policy_text, state_text = f"{before['policy']}, {policy_text}", f"{before['state']}, {state_text}"
            ctx.log[_LOG_KEY] = {"policy": policy_text, "state": state_text}


class ClientLimits(_Stage):
    """Per client address, route and header: before authentication."""

    name = "client_limits"

    async def __call__(self, ctx: RequestContext) -> None:
        policies = self.policies(ctx.rule)
        if policies:
            await self.check(ctx, policies)

    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None:
        """`headers: always`: both fields on every answer the limits let through (a 429 has its own)."""
        recorded = ctx.log.get(_LOG_KEY) if self.always else None
        if recorded and ctx.log.get("bastion.reason") != "rate_limited":
            headers.add("RateLimit-Policy", recorded["policy"])
            headers.add("RateLimit", recorded["state"])


class IdentityLimits(_Stage):
    """Per verified subject (`sub`, alone or with other parts): right after authentication."""

    name = "identity_limits"
    identity = True

    async def __call__(self, ctx: RequestContext) -> None:
        if ctx.principal is None:
            return
        policies = self.policies(ctx.rule)
        if policies:
            await self.check(ctx, policies)
