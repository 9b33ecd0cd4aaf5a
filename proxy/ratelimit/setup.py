"""Builds the shared state from `store:` and `rate_limits:`: the limiter the checks use, the
revocation store authentication uses, their lifetime, and what readiness and `/status` report.

`store.backend: memory` keeps everything per process. `redis` puts rate-limit buckets, login
lockouts and revocations in one Redis, with `store.on_failure` applied while it is down:
`fail_open` keeps `/readyz` at 200 and reports `degraded`, `fail_closed` turns it 503 (the replica
can enforce nothing, so the load balancer should prefer one that can).
"""

from __future__ import annotations

from typing import Any

from proxy.config import Config, Store
from proxy.ratelimit.base import Policy, compile_limits
from proxy.ratelimit.keys import KeyValues
from proxy.ratelimit.limiter import Limiter
from proxy.ratelimit.memory import MemoryStore
from proxy.ratelimit.redis_store import RedisStore
from proxy.ratelimit.revocations import RedisRevocations
from proxy.revocation import MemoryRevocations, RevocationStore


def redacted(url: str) -> str:
    """The URL without its password, for logs, `check` and `/status`."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user + ':' if user else ''}***@{host}"


def describe(store: Store) -> str:
    """The `state` line of `bastion check`: what is shared, and with whom."""
    if store.backend == "memory":
        return "in memory, per process: with --workers > 1 or replicas, limits, lockouts, revocations are not shared"
    down = "per-process limits" if store.on_failure == "fail_open" else "503"
    return f"redis {redacted(store.redis.url)}: rate limits, lockouts, revocations shared; redis down → {down}"


class SharedState:
    def __init__(self, cfg: Config, revocation_grace: float = 0.0) -> None:
        store = cfg.store
        self.backend = store.backend
        self.fail_closed = store.on_failure == "fail_closed"
        self.defaults: tuple[Policy, ...] = compile_limits(cfg.rate_limits.default)
        self.values = KeyValues(cfg.rate_limits.ipv6_prefix)
        local = MemoryRevocations(grace=revocation_grace)
        self.redis: RedisStore | None = None
        self.revocations: RevocationStore = local
        if store.backend == "redis":
            self.redis = RedisStore(store, cfg.rate_limits.login)
            fallback = None if self.fail_closed else MemoryStore(cfg.rate_limits.login)
            self.limiter = Limiter(self.redis, fallback=fallback)
            self.revocations = RedisRevocations(self.redis, local, fail_closed=self.fail_closed)
        else:
            self.limiter = Limiter(MemoryStore(cfg.rate_limits.login))
        self.url = redacted(store.redis.url)

    async def start(self) -> None:
        if self.redis is not None:
            await self.redis.start()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()

    def ready(self) -> bool | str:
        """A readiness condition: True, False, or (fail_open, Redis down) a truthy `degraded: …` text.

        The text keeps `/readyz` at 200 while saying why this replica counts alone."""
        if self.redis is None or self.redis.breaker.closed:
            return True
        if self.fail_closed:
            return False
        return "degraded: redis unavailable, per-process limits (fail_open)"

    def stats(self) -> dict[str, Any]:
        on_failure = "fail_closed" if self.fail_closed else "fail_open"
        out: dict[str, Any] = {"backend": self.backend, "on_failure": on_failure}
        if self.redis is not None:
            out.update(url=self.url, **self.redis.stats(), fallback_decisions=self.limiter.fallbacks)
        return out
