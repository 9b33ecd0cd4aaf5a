"""Token revocation: a deny-list of `jti`s that expire with their tokens, and per-subject cut-offs
("every token of `sub` issued before T"). An interface with a memory implementation; the Redis
store (rate-limit issue) implements the same methods so replicas share the list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from proxy.identity import Principal


class RevocationStore(Protocol):
    async def revoke_token(self, jti: str, expires_at: float) -> None: ...

    async def revoke_subject(self, subject: str, before: float, keep_for: float) -> None: ...

    async def is_revoked(self, principal: Principal) -> bool: ...


class MemoryRevocations:
    """Per process. Expired entries are swept as new ones arrive, so memory stays bounded by the
    number of live revoked tokens."""

    def __init__(self, clock: Callable[[], float] = time.time, grace: float = 0.0) -> None:
        self.clock = clock
        # a token is accepted until exp + leeway, so its deny-list entry must live that long too
        self.grace = grace
        self._tokens: dict[str, float] = {}
        self._subjects: dict[str, tuple[float, float]] = {}  # sub -> (cut-off, forget after)

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        self._sweep()
        self._tokens[jti] = expires_at

    async def revoke_subject(self, subject: str, before: float, keep_for: float) -> None:
        self._sweep()
        old = self._subjects.get(subject)
        cutoff = max(before, old[0]) if old else before
        self._subjects[subject] = (cutoff, self.clock() + keep_for)

    async def is_revoked(self, principal: Principal) -> bool:
        if principal.token_id is not None and principal.token_id in self._tokens:
            return True
        cut = self._subjects.get(principal.subject)
        if cut is None:
            return False
        # a token without iat cannot prove it was issued after the cut-off
        return principal.issued_at is None or principal.issued_at < cut[0]

    def _sweep(self) -> None:
        now = self.clock()
        for jti in [j for j, exp in self._tokens.items() if exp + self.grace < now]:
            del self._tokens[jti]
        for sub in [s for s, (_, until) in self._subjects.items() if until < now]:
            del self._subjects[sub]
