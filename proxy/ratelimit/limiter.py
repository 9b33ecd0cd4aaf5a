"""What the checks call: the configured store, with `store.on_failure` applied when it fails.

`fail_open` (the default, as in Envoy and Kong) falls back to per-process memory limits: the same
policies, counted by each replica alone, so a limit of N admits up to N per replica while Redis is
down, rather than nothing (fail_closed) or everything (a plain fail-open). `fail_closed` answers
503 `temporary-reduced-capacity` instead. With the breaker open neither waits on Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from proxy.decision import Denial, Reason
from proxy.ratelimit.base import (
    REDUCED_CAPACITY,
    Hit,
    LoginVerdict,
    RateStore,
    Settle,
    StoreUnavailable,
    Subject,
    Verdict,
)
from proxy.ratelimit.memory import MemoryStore

log = logging.getLogger("bastion.store")


def unavailable(detail: str = "") -> Denial:
    """The answer under `fail_closed` while the store is down."""
    return Denial(
        503, Reason.STORE_UNAVAILABLE, detail=detail or "shared store unavailable", headers={"Retry-After": "1"},
        public=REDUCED_CAPACITY,
    )


class Limiter:
    """>>> limiter = Limiter(MemoryStore())  # the default: memory, nothing that can fail"""

    def __init__(self, primary: RateStore, *, fallback: MemoryStore | None = None) -> None:
        self.primary = primary
        self.fallback = fallback  # None with fail_closed (or when the primary is memory)
        self.fallbacks = 0  # decisions taken by the fallback, for /status

    async def hit(self, hits: Sequence[Hit]) -> Verdict:
        """Raises StoreUnavailable only under fail_closed."""
        try:
            return await self.primary.hit(hits)
        except StoreUnavailable:
            if self.fallback is None:
                raise
            self.fallbacks += 1
            return await self.fallback.hit(hits)

    async def attempt(self, subjects: Sequence[Subject]) -> tuple[LoginVerdict, bool]:
        """(verdict, counted locally): `settle` must go to the store that charged the attempt."""
        try:
            return await self.primary.attempt(subjects), False
        except StoreUnavailable:
            if self.fallback is None:
                raise
            self.fallbacks += 1
            return await self.fallback.attempt(subjects), True

    async def settle(self, subjects: Sequence[Subject], outcome: Settle, local: bool) -> None:
        """Never raises: an unsettled attempt stays counted as a failure, the safe side."""
        store = self.fallback if local and self.fallback is not None else self.primary
        try:
            await store.settle(subjects, outcome)
        except StoreUnavailable as exc:
            log.debug("login attempt not settled", extra={"error": str(exc)})
