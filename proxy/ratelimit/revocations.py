"""The revocation deny-list in Redis: what one replica revokes, every replica refuses.

Implements `proxy.revocation.RevocationStore` on the same store (and round trips) as the rate
limits: `is_revoked` is one op of the tick's batched EVALSHA. A `jti` entry expires with its token
(plus the issuers' leeway); a subject's cut-off only ever moves later and is kept `subject_ttl`.

Every revocation is also written to a per-process memory copy, which is consulted first: it keeps
this process's own revocations across a Redis flush or restart (Redis is run without persistence
in many deployments), and it is all that is left while Redis is down under `fail_open`. Under
`fail_closed` an unanswerable revocation check is a 503, never an accepted token.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from proxy.identity import Principal
from proxy.ratelimit.base import StoreUnavailable
from proxy.ratelimit.limiter import unavailable
from proxy.ratelimit.redis_store import RedisStore
from proxy.revocation import MemoryRevocations


class RedisRevocations:
    def __init__(
        self, store: RedisStore, local: MemoryRevocations, *, fail_closed: bool, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.local = local
        self.fail_closed = fail_closed
        self.clock = clock

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        """Raises StoreUnavailable when Redis did not take it (the admin endpoint then answers 500)."""
        await self.local.revoke_token(jti, expires_at)
        until_ms = int((expires_at + self.local.grace) * 1000) + 1
        if until_ms > self.clock() * 1000:
            await self.store.revoke_token(jti, until_ms)

    async def revoke_subject(self, subject: str, before: float, keep_for: float) -> None:
        await self.local.revoke_subject(subject, before, keep_for)
        await self.store.revoke_subject(subject, before, max(1, int(keep_for * 1000)))

    async def is_revoked(self, principal: Principal) -> bool:
        if await self.local.is_revoked(principal):
            return True
        try:
            return await self.store.revoked(principal.subject, principal.token_id, principal.issued_at)
        except StoreUnavailable as exc:
            if self.fail_closed:
                raise unavailable(f"revocation check: {exc}") from None
            return False
