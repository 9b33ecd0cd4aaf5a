"""A circuit breaker in front of the shared store, so a dead Redis costs requests no time.

Closed: calls go to Redis, each bounded by `store.redis.timeout`. After `breaker.failures`
consecutive failed calls it opens: every call fails at once (and `store.on_failure` applies) while
a background task probes Redis every `breaker.retry_every`. The first successful probe closes it
again; no request is ever the probe, so none waits on a Redis that is still down (the usual
half-open state, where one unlucky request pays the timeout, is replaced by the background probe).
Each transition is logged (`event.action` ratelimit_store_down / ratelimit_store_recovered) and
counted in `stats()`, which `/status` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxy.config import Breaker as BreakerConfig

log = logging.getLogger("bastion.store")


class Breaker:
    def __init__(self, cfg: BreakerConfig, probe: Callable[[], Awaitable[None]], target: str = "redis") -> None:
        self.threshold = cfg.failures
        self.retry_every = cfg.retry_every
        self.probe = probe
        self.target = target
        self.closed = True
        self.consecutive = 0
        self.opened = 0  # transitions to open
        self.recovered = 0  # transitions back to closed
        self.since = time.time()
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None
        # told of every transition (True: open), for a gauge that must not depend on a log record
        self.on_change: Callable[[bool], None] | None = None

    def success(self) -> None:
        self.consecutive = 0

    def failure(self, exc: BaseException) -> None:
        self.consecutive += 1
        self.last_error = type(exc).__name__
        if self.closed and self.consecutive >= self.threshold:
            self.trip(self.last_error)

    def trip(self, why: str) -> None:
        """Open now (also at start-up when Redis does not answer): fail fast, probe in the background."""
        if not self.closed:
            return
        self.closed = False
        self.opened += 1
        self.since = time.time()
        if self.on_change is not None:
            self.on_change(True)
        log.warning(
            "shared store unavailable: circuit open",
            extra={"event.action": "ratelimit_store_down", "store": self.target, "error": why},
        )
        if self._task is None or self._task.done():
            # an empty context: the probe outlives the request that tripped the breaker, and its log
            # lines must not carry that request's id (proxy/logs.py REQUEST_SCOPE)
            self._task = asyncio.get_running_loop().create_task(
                self._probe_until_up(), name="store-probe", context=contextvars.Context()
            )

    def _close(self) -> None:
        self.closed = True
        self.consecutive = 0
        self.recovered += 1
        if self.on_change is not None:
            self.on_change(False)
        down_for = time.time() - self.since
        self.since = time.time()
        log.info(
            "shared store recovered: circuit closed",
            extra={"event.action": "ratelimit_store_recovered", "store": self.target, "down_s": round(down_for, 3)},
        )

    async def _probe_until_up(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.retry_every)
            try:
                await self.probe()
            except Exception as exc:  # any failure: stay open, try again later
                self.last_error = type(exc).__name__
                continue
            self._close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def stats(self) -> dict[str, Any]:
        return {
            "circuit": "closed" if self.closed else "open",
            "since": round(self.since, 3),
            "opened": self.opened,
            "recovered": self.recovered,
            "last_error": self.last_error or None,
        }
