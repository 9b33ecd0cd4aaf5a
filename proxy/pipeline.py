"""The one interface every check implements, and the ordered pipeline that runs them.

A check is an object with a `name` and `async __call__(ctx)` that returns to let the request go
on or raises `Denial` to stop it (Starlette's short-circuit, Oathkeeper's stage interface). Checks
that must see the answer (security headers, RateLimit fields, counting upstream 401s) also define
`on_response(ctx, response)`. The order is fixed by the composition root (`app.py`); the pipeline
itself knows nothing about what the checks do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from multidict import CIMultiDict

from proxy.context import RequestContext


class Check(Protocol):
    name: str

    async def __call__(self, ctx: RequestContext) -> None: ...


@runtime_checkable
class ResponseHook(Protocol):
    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None: ...


class Pipeline:
    __slots__ = ("checks", "request_checks", "response_hooks", "strips")

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

    async def run(self, ctx: RequestContext) -> None:
        for check in self.request_checks:
            await check(ctx)

    def on_response(self, ctx: RequestContext, status: int, headers: CIMultiDict[str]) -> None:
        """Let checks adjust the response headers (also on denials Bastion renders itself)."""
        for hook in self.response_hooks:
            hook.on_response(ctx, status, headers)
