"""The one interface every check implements, and the ordered pipeline that runs them.

A check is an object with a `name` and `async __call__(ctx)` that returns to let the request go
on or raises `Denial` to stop it (Starlette's short-circuit, Oathkeeper's stage interface). Checks
that must see the answer (security headers, RateLimit fields, counting upstream 401s) also define
`on_response(ctx, response)`. The order is fixed by the composition root (`app.py`); the pipeline
itself knows nothing about what the checks do.

A check after the rule match may also define `applies(rule) -> bool`: whether it can do anything for
requests under that rule (a rule without a body schema needs no validation). The pipeline asks once
per rule and caches the answer as a per-rule plan (Envoy's per-route filter config, Kong's plugin
iterator per route), so a request pays only for the checks its rule needs: each skipped no-op costs
a coroutine otherwise.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from multidict import CIMultiDict

from proxy.context import RequestContext


class Check(Protocol):
    name: str

    async def __call__(self, ctx: RequestContext) -> None: ...


@runtime_checkable
class ResponseHook(Protocol):
    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None: ...


# per-rule plans kept at most (rules of all loaded rule sets): past it the cache starts over
_MAX_PLANS = 4096


class Pipeline:
    __slots__ = ("checks", "request_checks", "response_hooks", "strips", "head", "tail", "_plans", "_no_rule_plan")

    def __init__(self, checks: Iterable[Check]) -> None:
        self.checks = tuple(checks)
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate check names in pipeline: {names}")
        # resolved once: the per-request path only iterates. A check with `request_stage = False` is
        # a response hook only: awaiting its no-op would cost a coroutine per request.
        self.request_checks = tuple(c for c in self.checks if getattr(c, "request_stage", True))
        self.response_hooks = tuple(c for c in self.checks if isinstance(c, ResponseHook))
        # request headers that checks own (identity headers): removed from every client request
        self.strips = frozenset(h for c in self.checks for h in getattr(c, "strips", ()))
        # `head` runs for every request, up to and including the check that sets `ctx.rule`; `tail`
        # is filtered per rule. Without a rule-deciding check every request's plan is that of None.
        split = max((i + 1 for i, c in enumerate(self.request_checks) if getattr(c, "decides_rule", False)), default=0)
        self.head = self.request_checks[:split]
        self.tail = self.request_checks[split:]
        # id(rule) -> (weak reference to the rule, plan): a reload's old rules are freed, and the weak
        # reference tells a reused id from the rule it was cached for
        self._plans: dict[int, tuple[Callable[[], Any], tuple[Check, ...]]] = {}
        self._no_rule_plan = self._compute(None)

    def _compute(self, rule: Any) -> tuple[Check, ...]:
        return tuple(c for c in self.tail if (applies := getattr(c, "applies", None)) is None or applies(rule))

    def plan(self, rule: Any) -> tuple[Check, ...]:
        """The tail checks that apply under `rule` (None: no rule set, or no rule decided)."""
        if rule is None:
            return self._no_rule_plan
        found = self._plans.get(id(rule))
        if found is not None and found[0]() is rule:
            return found[1]
        plan = self._compute(rule)
        if len(self._plans) >= _MAX_PLANS:  # entries of freed rules linger until then
            self._plans.clear()
        self._plans[id(rule)] = (weakref.ref(rule), plan)
        return plan

    async def run(self, ctx: RequestContext) -> None:
        for check in self.head:
            await check(ctx)
        for check in self.plan(ctx.rule):
            await check(ctx)

    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None:
        """Let checks adjust the response headers (also on denials Bastion renders itself)."""
        for hook in self.response_hooks:
            hook.on_response(ctx, status, headers)
