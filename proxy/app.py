"""The composition root: the one place that builds the pipeline, forwarder, listeners and logs.

`Bastion` owns the lifetimes (forwarder pool, proxy listener, admin listener) and the shutdown
order: readiness off → drain delay → stop accepting → finish in-flight up to the grace period.
Only this module imports the concrete checks; only `cli.py` imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from proxy.admin import Health, create_admin_app, start_admin
from proxy.checks.authn import Authenticate
from proxy.checks.cors import Cors
from proxy.checks.detect import Detect
from proxy.checks.ingress import Ingress
from proxy.checks.login import LoginGuard
from proxy.checks.ratelimit import ClientLimits, IdentityLimits
from proxy.checks.response_headers import ResponseHeaders
from proxy.checks.rules import Authorize, RuleMatch
from proxy.checks.validate import BodyLimit, Validate
from proxy.config import Config, ConfigError, load_config
from proxy.connection import BastionServer
from proxy.cors import compile_cors
from proxy.detect import parse_detect
from proxy.forwarder import Forwarder
from proxy.jwt.cache import TokenCache
from proxy.jwt.jwks import JwksKeys
from proxy.jwt.setup import KeyConfigError, build_verifier
from proxy.logs import LogOutput
from proxy.metrics import Metrics
from proxy.pipeline import Check, Pipeline
from proxy.policy import PolicyHolder
from proxy.policy.reload import RuleReloader, load_policy
from proxy.ratelimit.setup import SharedState
from proxy.revocation import RevocationStore
from proxy.security_headers import HeaderPolicy
from proxy.server import ProxyHandler

log = logging.getLogger("bastion")

# aiohttp's own parser limits sit above Bastion's caps, so that Bastion, not aiohttp, answers an
# over-limit request (414/431 with a problem document rather than aiohttp's plain-text 400).
_PARSER_HEADROOM = 1024


_JWKS_MAX_BYTES = 1024 * 1024


def build_pipeline(
    cfg: Config, holder: PolicyHolder | None, authn: Authenticate | None, state: SharedState | None = None
) -> Pipeline:
    """The check order (see README "What happens to a request"); later stages slot in here:
    rate limits per client between the rule match and authentication, per identity after it,
    input validation after authorisation."""
    shadow = cfg.rules_mode == "shadow"
    # Security headers first: a hook only, and running first lets the CORS and rate-limit fields of
    # later hooks sit on top of its defaults. CORS before RuleMatch: it answers preflights by
    # matching the rule of the method they ask about (see proxy/checks/cors.py).
    checks: list[Check] = [ResponseHeaders(HeaderPolicy(cfg.headers)), Ingress(cfg.limits, cfg.protocol, cfg.paths)]
    if cfg.cors is not None or holder is not None:
        checks.append(Cors(compile_cors(cfg.cors), holder))
    if holder is not None:
        checks.append(RuleMatch(holder, shadow=shadow))
    checks.append(BodyLimit())
    # Rate limits per client before authentication (a flood is cut off before any signature check),
    # login brute-force protection, then per identity right after it (proxy/checks/ratelimit.py).
    limits = state if state is not None and (holder is not None or state.defaults) else None
    always = cfg.rate_limits.headers == "always"
    if limits is not None:
        checks.append(ClientLimits(limits.limiter, limits.defaults, limits.values, always))
        if holder is not None:
            checks.append(LoginGuard(limits.limiter, cfg.rate_limits.login, limits.values))
    if authn is not None:
        checks.append(authn)
        if limits is not None:
            checks.append(IdentityLimits(limits.limiter, limits.defaults, limits.values, always))
    if holder is not None:
        checks.append(Authorize(shadow=shadow))
        checks.append(Validate())
    default_detect = parse_detect(cfg.detect) if cfg.detect is not None else None
    if holder is not None or default_detect is not None:
        checks.append(Detect(default_detect, cfg.limits.max_body))
    return Pipeline(checks)


def _readiness(keys: JwksKeys) -> Callable[[], bool]:
    """`/readyz`'s condition for one JWKS issuer: its keys were fetched (read at each probe)."""
    return lambda: keys.ready


class JwksFetcher:
    """The pooled client that fetches key sets (never the upstream's pool: other hosts, other limits)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str) -> tuple[int, Mapping[str, str], bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8),
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
        async with self._session.get(url, allow_redirects=False) as resp:
            body = await resp.content.read(_JWKS_MAX_BYTES + 1)
            if len(body) > _JWKS_MAX_BYTES:
                raise ValueError("JWKS document too large")
            return resp.status, dict(resp.headers), body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Bastion:
    """One serving process. `base` is the config file's directory: rule globs are relative to it.
    Raises PolicyError when the configured rule files do not compile (the process must not start)."""

    def __init__(
        self, cfg: Config, output: LogOutput, *, admin: bool = True, reuse_port: bool = False, base: Path | None = None
    ) -> None:
        self.cfg = cfg
        self.base = base or Path.cwd()
        self.holder: PolicyHolder | None = None
        self.reloader: RuleReloader | None = None
        if cfg.rules:
            self.holder = PolicyHolder(load_policy(cfg.rules, self.base))
            self.reloader = RuleReloader(cfg.rules, self.base, self.holder)
        self._watch_stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self.output = output
        self.with_admin = admin
        self.reuse_port = reuse_port
        self.forwarder = Forwarder(cfg.upstream)
        self.fetcher = JwksFetcher()
        grace = max((i.leeway for i in cfg.auth.issuers), default=0.0) + 1.0
        # rate-limit buckets, login lockouts and revocations: in memory, or shared in Redis (`store:`)
        self.state = SharedState(cfg, revocation_grace=grace)
        self.revocations: RevocationStore | None = self.state.revocations if cfg.auth.revocation.enabled else None
        # this process's metrics, fed from its log records by the log writer (proxy/metrics.py)
        self.metrics = Metrics()
        output.observer = self.metrics.observe_many
        output.sink_observer = lambda name, st: self.metrics.observe_sink(name, st.queued, st.spooled, st.dropped)
        self.jwks: list[JwksKeys] = []
        authn = None
        if cfg.auth.issuers:
            verifier, self.jwks = build_verifier(cfg.auth, self.fetcher)
            self.token_cache = TokenCache(cfg.auth.cache.size, cfg.auth.cache.ttl)
            authn = Authenticate(cfg.auth, verifier, self.token_cache, self.revocations)
        self.authn = authn
        self.pipeline = build_pipeline(cfg, self.holder, authn, self.state)
        self.handler = ProxyHandler(cfg, self.pipeline, self.forwarder, output)
        self.health = Health(self.forwarder.reachable)
        self.health.subject_ttl = cfg.auth.revocation.subject_ttl
        jwks_issuers = {i.jwks_url: i.issuer for i in reversed(cfg.auth.issuers) if i.jwks_url is not None}
        for keys in self.jwks:
            self.health.conditions[f"jwks {keys.url}"] = _readiness(keys)
            keys.issuer = jwks_issuers.get(keys.url)
            keys.on_fetched = self.metrics.jwks_fetched
        if self.reloader is not None:
            self.health.extra["rules"] = self.reloader.status
        if self.state.redis is not None:
            self.state.redis.breaker.on_change = self.metrics.breaker_changed
            # fail_open: 200 with a `degraded` detail; fail_closed: 503
            self.health.conditions["store"] = self.state.ready
        self.health.extra["store"] = self.state.stats
        self._runner: web.ServerRunner | None = None
        self._admin_runner: web.AppRunner | None = None
        self.port = 0
        self.admin_port = 0

    async def start(self) -> None:
        cfg = self.cfg
        await self.forwarder.start()
        await self.state.start()  # Redis down at start: the circuit starts open, on_failure applies
        for keys in self.jwks:  # prefetch; a failure leaves /readyz not ready until a retry succeeds
            await keys.start()
        limits = cfg.limits
        server = BastionServer(
            self.handler,
            max_line_size=limits.max_uri + _PARSER_HEADROOM,
            # +1 keeps the two limits distinct, which is how a LineTooLong is told apart (414 vs 431)
            max_field_size=limits.max_header_bytes + _PARSER_HEADROOM + (limits.max_header_bytes == limits.max_uri),
            max_headers=limits.max_headers + 32,
            access_log=None,
            keepalive_timeout=75.0,
            # after refusing a request whose body was not read, aiohttp drains it before closing (so the
            # client reads the answer, not a reset); 10 s by default is a gift to slow-body attackers
            lingering_time=2.0,
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=cfg.shutdown.grace_period)
        await self._runner.setup()
        ssl_ctx = None
        if cfg.listen.tls:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(str(cfg.listen.tls.cert_file), str(cfg.listen.tls.key_file))
        site = web.TCPSite(
            self._runner,
            cfg.listen.host,
            cfg.listen.port,
            ssl_context=ssl_ctx,
            backlog=cfg.listen.backlog,
            reuse_port=self.reuse_port or None,
        )
        await site.start()
        self.port = _bound_port(site, cfg.listen.port)
        if self.reloader is not None and cfg.rules_watch:
            self._watch_task = asyncio.create_task(self.reloader.watch(self._watch_stop), name="rules-watch")
        if self.with_admin:
            self.health.extra["inflight"] = lambda: self.handler.inflight
            admin_app = create_admin_app(
                self.health, self.revocations, cfg.admin.token_value(), metrics=self.metrics.render
            )
            self._admin_runner, self.admin_port = await start_admin(admin_app, cfg.admin.host, cfg.admin.port)

    async def shutdown(self, *, drain: bool = True) -> None:
        """Graceful stop: readiness off, wait `drain_delay`, stop accepting, finish in-flight."""
        self.health.draining = True
        if self._watch_task is not None:
            self._watch_stop.set()
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        if drain and self.cfg.shutdown.drain_delay > 0:
            log.info("draining", extra={"drain_delay_s": self.cfg.shutdown.drain_delay})
            await asyncio.sleep(self.cfg.shutdown.drain_delay)
        if self._runner is not None:
            # stops the listener, closes idle keep-alive connections, waits for in-flight handlers
            await self._runner.cleanup()
            self._runner = None
        await self.forwarder.close()
        await self.state.close()
        for keys in self.jwks:
            await keys.stop()
        await self.fetcher.close()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None

    async def reload(self, why: str, config_path: Path | None = None) -> None:
        """SIGHUP: recompile the rules, re-read key material; say what else would need a restart."""
        if self.reloader is not None:
            await self.reloader.reload(why)
        if config_path is None:
            return
        try:
            new = load_config(config_path)
        except ConfigError as exc:
            log.error(
                "config reload failed; keeping the running config",
                extra={"errors": exc.messages, "event.action": "config-reload-failed"},
            )
            return
        if self.authn is not None and new.auth.issuers == self.cfg.auth.issuers:
            try:  # same issuers: secret and key *files* may have new content
                verifier, _ = build_verifier(self.cfg.auth, self.fetcher, jwks=self.jwks)
            except (KeyConfigError, ValueError) as exc:
                log.error("key reload failed; keeping the old keys", extra={"error": str(exc)})
            else:
                self.authn.verifier = verifier
                self.token_cache.clear()
                log.info("keys reloaded")
        ignored = [
            name
            for name in type(new).model_fields
            if name not in ("rules",) and getattr(new, name) != getattr(self.cfg, name)
        ]
        if ignored:
            log.warning("config changes need a restart and were not applied", extra={"sections": ignored})

    @property
    def url(self) -> str:
        scheme = "https" if self.cfg.listen.tls else "http"
        host = self.cfg.listen.host if self.cfg.listen.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.cfg.admin.host}:{self.admin_port}"


def _bound_port(site: web.TCPSite, configured: int) -> int:
    server: Any = site._server
    sockets = getattr(server, "sockets", None) or []
    return sockets[0].getsockname()[1] if sockets else configured
