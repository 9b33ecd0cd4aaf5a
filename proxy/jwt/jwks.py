"""An async JWKS cache: the keys of one issuer, fetched over the network and kept fresh.

PyJWT's `PyJWKClient` is synchronous (urllib under a thread lock) and would block the event loop
for a whole fetch, so this is our own, with the semantics of Oathkeeper's fetcher and Envoy's
`jwks_async_fetcher`:
- the TTL honours `Cache-Control: max-age`, clamped to `[min_ttl, max_ttl]`;
- a background task refreshes before expiry (at 80% of the TTL) and retries failures with backoff;
- stale keys are kept when a refresh fails (stale-if-error), so an IdP outage does not lock users out;
- an unknown `kid` triggers at most one refetch per `refetch_unknown_kid_after` (attackers can send
  random kids), and concurrent callers share one fetch in flight;
- rotation: the set is replaced by what the IdP publishes, so old and new kids are both valid for as
  long as the IdP lists both.
`fetch` is injected (an aiohttp call in production), so this module never imports aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from proxy.config import JwksCache as JwksCacheCfg
from proxy.jwt.keys import VerifyKey, make_key

log = logging.getLogger("bastion.jwks")

Fetch = Callable[[str], Awaitable[tuple[int, Mapping[str, str], bytes]]]
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


class JwksUnavailable(Exception):
    pass


class JwksKeys:
    def __init__(
        self,
        url: str,
        cfg: JwksCacheCfg,
        algorithms: frozenset[str],
        fetch: Fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cfg = cfg
        self.algorithms = algorithms
        self._fetch = fetch
        self._clock = clock
        self.keys: dict[str | None, VerifyKey] = {}
        self.fetched_at: float | None = None
        self.expires_at = 0.0
        self.last_attempt = -1e18
        self.last_error: str | None = None
        self.fetch_count = 0
        self.failures = 0
        # set by the composition root: the issuer names this key set in logs and metrics (the URL
        # when unset), and `on_fetched(issuer, key_count)` is told of every successful fetch
        self.issuer: str | None = None
        self.on_fetched: Callable[[str, int], None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return bool(self.keys)

    async def start(self) -> None:
        """Prefetch (failure is logged, not raised: readiness reports it) and start refreshing."""
        with contextlib.suppress(JwksUnavailable):
            await self.refresh()
        self._task = asyncio.create_task(self._refresher(), name=f"jwks-refresh {self.url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def get(self, kid: str | None, alg: str) -> VerifyKey | None:
        """The key for (kid, alg); None when there is none; JwksUnavailable when no key set was
        ever loaded (an IdP outage at start, logged as such rather than as an unknown kid)."""
        key = self._lookup(kid, alg)
        if key is not None:
            return key
        if not self.keys:
            if self._clock() - self.last_attempt >= self.cfg.refetch_unknown_kid_after:
                with contextlib.suppress(JwksUnavailable):
                    await self.refresh()
            if not self.keys:
                raise JwksUnavailable(self.last_error or "no keys yet")
            return self._lookup(kid, alg)
        # unknown kid: one refetch, at most once per window, shared by all callers
        if self._clock() - self.last_attempt >= self.cfg.refetch_unknown_kid_after:
            with contextlib.suppress(JwksUnavailable):
                await self.refresh()
            return self._lookup(kid, alg)
        if self._inflight is not None:  # a fetch is already under way: wait for it
            with contextlib.suppress(JwksUnavailable):
                await asyncio.shield(self._inflight)
            return self._lookup(kid, alg)
        return None

    def _lookup(self, kid: str | None, alg: str) -> VerifyKey | None:
        if kid is None:
            # no kid: only unambiguous when exactly one key can serve this alg
            usable = [k for k in self.keys.values() if alg in k.algorithms]
            return usable[0] if len(usable) == 1 else None
        key = self.keys.get(kid)
        return key if key is not None and alg in key.algorithms else None

    async def refresh(self) -> None:
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        loop = asyncio.get_running_loop()
        inflight = self._inflight = loop.create_future()
        try:
            await self._do_refresh()
            inflight.set_result(None)
        except BaseException as exc:
            # always resolve the shared future, whatever happened (waiters must never hang)
            failure = exc if isinstance(exc, JwksUnavailable) else JwksUnavailable(type(exc).__name__)
            inflight.set_exception(failure)
            inflight.exception()  # mark retrieved: waiters get it through shield
            raise
        finally:
            self._inflight = None

    async def _do_refresh(self) -> None:
        self.last_attempt = self._clock()
        self.fetch_count += 1
        try:
            async with asyncio.timeout(self.cfg.fetch_timeout):
                status, headers, body = await self._fetch(self.url)
            if status != 200:
                raise ValueError(f"HTTP {status}")
            keys = self._parse(body)
        except Exception as exc:  # any fetch or parse failure (aiohttp errors included) is "unavailable"
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning(
                "JWKS fetch failed; keeping %d cached keys",
                len(self.keys),
                extra={
                    "event.action": "jwks_fetch_failed",
                    "jwks_url": self.url,
                    "issuer": self.issuer or self.url,
                    "error": self.last_error,
                },
            )
            raise JwksUnavailable(self.last_error) from None
        self.keys = keys
        self.fetched_at = self._clock()
        self.expires_at = self.fetched_at + self._ttl(headers)
        self.last_error = None
        if self.on_fetched is not None:
            with contextlib.suppress(Exception):  # a metrics hook never fails a key refresh
                self.on_fetched(self.issuer or self.url, len(keys))

    def _ttl(self, headers: Mapping[str, str]) -> float:
        ttl = self.cfg.min_ttl
        cc = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
        if m := _MAX_AGE.search(cc):
            ttl = float(m.group(1))
        return min(max(ttl, self.cfg.min_ttl), self.cfg.max_ttl)

    def _parse(self, body: bytes) -> dict[str | None, VerifyKey]:
        doc: Any = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError("not a JWK set")
        out: dict[str | None, VerifyKey] = {}
        for jwk in doc["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct":
                continue  # SECURITY: never take a symmetric key from a JWKS (key confusion)
            try:
                parsed = PyJWK(jwk)
            except (PyJWTError, ValueError, TypeError, KeyError):  # one bad key never spoils the set
                continue
            jwk_alg = jwk.get("alg")
            allowed = self.algorithms & {jwk_alg} if isinstance(jwk_alg, str) else self.algorithms
            key = make_key(parsed.key, frozenset(allowed))
            if key is not None:
                out[jwk.get("kid") if isinstance(jwk.get("kid"), str) else None] = key
        if not out:
            raise ValueError("no usable keys")
        return out

    async def _refresher(self) -> None:
        backoff = 1.0
        while True:
            if self.keys:
                delay = max(1.0, (self.expires_at - self._clock()) - 0.2 * (self.expires_at - (self.fetched_at or 0)))
            else:
                delay = backoff
            await asyncio.sleep(delay)
            try:
                await self.refresh()
                backoff = 1.0
            except JwksUnavailable:
                backoff = min(backoff * 2, 30.0)
                if self.keys:  # stale-if-error: retry sooner than a full TTL
                    self.expires_at = self._clock() + backoff / 0.8
