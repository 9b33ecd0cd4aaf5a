"""The admin listener (its own port, loopback by default): liveness, readiness and status.

Never served on the proxied port. Readiness means: config loaded, not draining, and the upstream
accepts connections (probed at most once a second, so a probe storm never becomes an upstream
storm). `/metrics` is the Prometheus exposition (`proxy/metrics.py`): here only, so a scrape never
competes with traffic on the proxied port and the proxy's clients can never read it.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from proxy.responses import PlainResponse
from proxy.revocation import RevocationStore

Probe = Callable[[], Awaitable[bool]]


class Health:
    """Shared readiness state; `draining` flips first on SIGTERM so load balancers stop sending."""

    def __init__(self, upstream_probe: Probe, cache_for: float = 1.0) -> None:
        self.draining = False
        self.config_loaded = True
        # name -> condition: False fails readiness; a string is a truthy detail ("degraded: ...")
        self.conditions: dict[str, Callable[[], bool | str]] = {}
        self._probe = upstream_probe
        self._cache_for = cache_for
        self._last: tuple[float, bool] = (0.0, False)
        self._lock = asyncio.Lock()
        self.subject_ttl = 86400.0
        self.extra: dict[str, Callable[[], Any]] = {}  # name -> () -> detail, shown on /status

    async def upstream_ok(self) -> bool:
        async with self._lock:
            at, ok = self._last
            now = time.monotonic()
            if now - at >= self._cache_for:
                ok = await self._probe()
                self._last = (now, ok)
            return ok

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {"config": self.config_loaded, "draining": self.draining}
        checks["upstream"] = await self.upstream_ok() if not self.draining else None
        for name, fn in self.conditions.items():
            checks[name] = fn()
        ready = (
            self.config_loaded
            and not self.draining
            and bool(checks["upstream"])
            and all(checks[name] for name in self.conditions)
        )
        return ready, checks


def _json(status: int, body: Any) -> web.Response:
    return PlainResponse(status=status, body=orjson.dumps(body), content_type="application/json")


def _problem(status: int, title: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status}
    return PlainResponse(status=status, body=orjson.dumps(body), content_type="application/problem+json")


def create_admin_app(
    health: Health,
    revocations: RevocationStore | None = None,
    admin_token: str | None = None,
    metrics: Callable[[], bytes] | None = None,
) -> web.Application:
    """`metrics` renders the exposition text (one process's registry, or the sum over the workers)."""

    @web.middleware
    async def problems_only(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # aiohttp's own 404/405 would carry `Server: Python/… aiohttp/…` and a text body
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return _problem(exc.status, exc.reason)

    app = web.Application(middlewares=[problems_only])

    async def healthz(_: web.Request) -> web.Response:
        return _json(200, {"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        ready, checks = await health.readiness()
        return _json(200 if ready else 503, {"status": "ready" if ready else "not_ready", "checks": checks})

    async def status(_: web.Request) -> web.Response:
        body: dict[str, Any] = {"pid": os.getpid()}
        for name, fn in health.extra.items():
            body[name] = fn()
        return _json(200, body)

    async def revoke(request: web.Request) -> web.Response:
        """POST {"jti": ..., "expires_at": ...} or {"sub": ..., "before": ...} (epoch seconds)."""
        given = request.headers.get("Authorization", "")
        if admin_token is None or revocations is None:
            return _problem(404, "Not Found")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {admin_token}".encode()):
            return _problem(401, "Unauthorized")
        try:
            doc = orjson.loads(await request.read())
            if not isinstance(doc, dict):
                raise ValueError
            if isinstance(doc.get("jti"), str) and isinstance(doc.get("expires_at"), int | float):
                await revocations.revoke_token(doc["jti"], float(doc["expires_at"]))
            elif isinstance(doc.get("sub"), str):
                before = doc.get("before", time.time())
                if not isinstance(before, int | float):
                    raise ValueError
                await revocations.revoke_subject(doc["sub"], float(before), health.subject_ttl)
            else:
                raise ValueError
        except ValueError:
            return _problem(400, "Bad Request")
        return PlainResponse(status=204)

    if metrics is not None:
        render = metrics

        async def metrics_page(_: web.Request) -> web.Response:
            # off the loop: the multiprocess sum reads every worker's files
            body = await asyncio.to_thread(render)
            return PlainResponse(status=200, body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/revocations", revoke)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    return app


async def start_admin(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the bound port, for port 0 in tests
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound
