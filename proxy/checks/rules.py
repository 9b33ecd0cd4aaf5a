"""The two pipeline checks of the access rules: find the rule (before rate limits and
authentication), then apply its `allow` (after authentication).

Split in two because authentication sits between them and needs the rule (`allows_anonymous`
decides whether a missing token is a 401 or "go on as anonymous"). The rule id and the reason of a
denial go to the access log only; the client sees a bare 401/403/404 problem document.

Shadow mode (per rule `mode: shadow`, or globally with `Authorize(shadow=True)` from config
`rules_mode: shadow`) computes the decision, logs `would_deny`, and lets the request pass: the way
to roll new rules out against real traffic before enforcing them.
"""

from __future__ import annotations

from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.policy import PolicyHolder

# RFC 6750 §3: a 401 for a protected resource names the scheme the client should use.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class RuleMatch:
    """Set `ctx.rule` to the rule that decides this request; 404 when none does.

    The PolicySet is read from the holder once, here: everything later uses `ctx.rule`, so a hot
    reload during the request never mixes two rule sets. With `shadow=True` (global shadow mode) a
    request no rule matches goes on under `PolicySet.no_rule`, which Authorize reports as would_deny.
    """

    name = "rule_match"
    decides_rule = True  # the pipeline plans the checks after this one per rule (pipeline.py)

    def __init__(self, holder: PolicyHolder, *, shadow: bool = False) -> None:
        self.holder = holder
        self.shadow = shadow

    async def __call__(self, ctx: RequestContext) -> None:
        policy = self.holder.current
        m = policy.match(ctx)
        if m.rule is None:
            if self.shadow:
                ctx.rule = policy.no_rule
                return
            ctx.log["bastion.decision"] = "deny"
            raise Denial(404, Reason.NO_RULE, detail=f"no rule matches {ctx.method} {ctx.path}")
        if m.ambiguous:  # only regex rules can get here: glob ties are refused at load
            ids = ", ".join(r.id for r in (m.rule, *m.ambiguous))
            ctx.log["bastion.decision"] = "deny"
            raise Denial(500, Reason.AMBIGUOUS_RULE, detail=f"rules {ids} tie for {ctx.method} {ctx.path}")
        ctx.rule = m.rule
        ctx.log["bastion.rule"] = m.rule.id


class Authorize:
    """Apply `ctx.rule`'s conditions to `ctx.principal` (None when anonymous)."""

    name = "authorize"

    def __init__(self, *, shadow: bool = False) -> None:
        self.shadow = shadow

    async def __call__(self, ctx: RequestContext) -> None:
        rule = ctx.rule
        if rule is None:  # fail closed if the pipeline is ever built without RuleMatch
            raise Denial(404, Reason.NO_RULE, detail="no rule on the request context")
        decision = rule.decide(ctx.principal, ctx.headers)
        ctx.log["bastion.rule"] = rule.id
        if decision.allowed:
            ctx.log["bastion.decision"] = "allow"
            return
        reason = {401: Reason.AUTH_REQUIRED, 404: Reason.NO_RULE}.get(decision.status, Reason.FORBIDDEN)
        if self.shadow or rule.mode == "shadow":
            ctx.log["bastion.decision"] = "would_deny"
            ctx.log["bastion.reason"] = reason.value
            ctx.log["bastion.detail"] = f"{decision.status} {decision.reason}"
            return
        ctx.log["bastion.decision"] = "deny"
        if decision.status == 401:
            raise Denial(401, reason, detail=decision.reason, headers=_CHALLENGE)
        raise Denial(decision.status, reason, detail=decision.reason)
