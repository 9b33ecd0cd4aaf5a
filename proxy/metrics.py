"""Prometheus metrics, derived from the log records rather than counted on the request path.

Every access record and every event record already says what happened (rule, status, decision,
reason, timings, detections, reloads, breaker transitions), so the log writer thread hands each one
to `Metrics.observe` after the event loop is done with it: the request path pays nothing, and the
metrics can never disagree with the logs. Sinks report their queues through `observe_sink`. The
one exception is the JWKS freshness gauge, which `jwt/jwks.py` sets on a successful fetch (the
Prometheus idiom for "age": a last-success timestamp, so `time() - gauge` keeps growing while the
IdP is down, with no one left to log anything).

Request-level security counters (authentication failures, rate-limit hits, lockouts, detections)
are counted from the access record only: the log writer also derives security *event* records
from it, and counting those too would count every request twice. Process-level events (rule
reloads, JWKS fetch failures, Redis breaker transitions) exist only as event records
(`event.action`) and are counted from those.

The `decision` label of `bastion_requests_total`:
- `deny`: Bastion refused the request (the record has a `bastion.reason` that is a refusal);
- `allow`, `would_deny`, `detected`, `reply`: the record's own `bastion.decision`;
- `forward`: nothing decided and nothing refused (no access rules configured, `rules: []`).
An upstream failure (502/504, a masked 5xx, a body broken mid-stream) keeps the decision that let
the request through; the status label shows the failure.

Each `Metrics` owns its registry, so tests (and several `Bastion`s in one process) never share
counters. With `--workers N` the values live in prometheus-client's multiprocess files instead
(`PROMETHEUS_MULTIPROC_DIR`, set by the supervisor before a worker starts) and the supervisor
serves the sum; every gauge therefore names its `multiprocess_mode`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

from proxy import __version__
from proxy.decision import AUTHENTICATION_REASONS, Reason

log = logging.getLogger("bastion.metrics")

# 0.5 ms to 10 s: Bastion's own time is sub-millisecond on a cache hit, an upstream can be slow
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_UPSTREAM_BUCKETS = (*_BUCKETS, 30.0, 60.0)

# a `bastion.reason` that is not a refusal: the request was let through and then failed
_NOT_REFUSALS = frozenset(
    {"upstream_unavailable", "upstream_timeout", "upstream_error", "upstream_broken", Reason.INTERNAL.value}
)
# what a shadow rule logs as would_deny; any other reason next to would_deny is a real refusal after it
_SHADOW_REASONS = frozenset({Reason.AUTH_REQUIRED.value, Reason.FORBIDDEN.value, Reason.NO_RULE.value})
_RATE_LIMITED, _LOGIN_LOCKED, _INJECTION = (
    Reason.RATE_LIMITED.value,
    Reason.LOGIN_LOCKED.value,
    Reason.INJECTION_SUSPECTED.value,
)
_QUOTED = re.compile(r'"([^"]*)"')  # policy names in a RateLimit-Policy field value
# Labels come from config (rule ids, policies, sinks, issuers) and fixed sets, so they are bounded;
# this cap is the backstop should a record ever carry something unbounded.
MAX_SERIES = 1000
_KNOWN_STATUS = frozenset(int(s) for s in HTTPStatus) | {499}  # 499: the client went away (nginx's code)
_OTHER = "other"

_EVENT_RELOAD = {"rules-reloaded": "ok", "rules-reload-failed": "failed", "config-reload-failed": "failed"}

Child = Any  # a labelled Counter/Gauge/Histogram child (prometheus-client's types are its parent's)


class Metrics:
    """The `bastion_*` metrics of one process, fed from its log records.

    >>> m = Metrics()
    >>> m.observe({"event.dataset": "bastion.access", "http.response.status_code": 200, "bastion.rule": "tasks",
    ...            "bastion.decision": "allow", "bastion.duration_ms": 1.5, "bastion.upstream_ms": 1.2})
    >>> m.registry.get_sample_value("bastion_requests_total", {"rule": "tasks", "status": "200", "decision": "allow"})
    1.0

    Cost of `observe` (timeit, 3 × 200k calls, best run, Python 3.11 on the 2-core dev box): 2.0 µs for
    an allowed access record (one counter, two histograms), 1.6 µs for a denial, 2.4 µs with a detection,
    0.1 µs for an event record nothing counts; `observe_sink` 0.8 µs.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bastion_requests",
            "Requests by access rule, status and decision",
            ("rule", "status", "decision"),
            registry=r,
        )
        self.duration = Histogram(
            "bastion_request_duration_seconds",
            "Bastion's own time per request: total minus the time to the upstream's response headers",
            buckets=_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "bastion_upstream_duration_seconds",
            "Time to the upstream's response headers",
            buckets=_UPSTREAM_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "bastion_auth_failures", "Requests refused for authentication, by reason code", ("reason",), registry=r
        )
        self.ratelimit_hits = Counter(
            "bastion_ratelimit_hits", "Requests refused by a rate limit (429), by policy", ("policy",), registry=r
        )
        self.login_lockouts = Counter(
            "bastion_login_lockouts",
            "Login attempts refused by a brute-force lockout, by what is locked (login-ip, login-username)",
            ("subject",),
            registry=r,
        )
        self.detections = Counter(
            "bastion_detections",
            "Attack detector findings, by class and action (blocked or detected)",
            ("class", "action"),
            registry=r,
        )
        self.jwks_failures = Counter(
            "bastion_jwks_fetch_failures", "Failed JWKS fetches (stale keys are kept)", ("issuer",), registry=r
        )
        # livemin: with several workers the stalest one is the one to alert on
        self.jwks_last_success = Gauge(
            "bastion_jwks_last_success_timestamp_seconds",
            "Unix time of the last successful JWKS fetch",
            ("issuer",),
            registry=r,
            multiprocess_mode="livemin",
        )
        self.jwks_keys = Gauge(
            "bastion_jwks_keys", "Usable keys in the cached JWKS", ("issuer",), registry=r, multiprocess_mode="livemin"
        )
        self.reloads = Counter(
            "bastion_config_reloads", "Rule and config reloads, by outcome (ok or failed)", ("outcome",), registry=r
        )
        self.queue_depth = Gauge(
            "bastion_log_queue_depth",
            "Records waiting in a log sink's memory queue",
            ("sink",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spooled = Gauge(
            "bastion_log_spooled_records",
            "Records held in a log sink's disk spool",
            ("sink",),
            registry=r,
            multiprocess_mode="livesum",
        )
        self.dropped = Counter(
            "bastion_log_dropped", "Records a log sink dropped (queue and spool full)", ("sink",), registry=r
        )
        # livemax: one worker with an open circuit is a degraded service
        self.breaker_open = Gauge(
            "bastion_redis_breaker_open",
            "1 while the shared store's circuit is open, else 0",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.observe_errors = Counter(
            "bastion_metrics_observe_errors",
            "Records the metrics could not read (a bug: please report)",
            registry=r,
        )
        Gauge(
            "bastion_build_info",
            "Always 1; the version in a label",
            ("version",),
            registry=r,
            multiprocess_mode="livemax",
        ).labels(__version__).set(1)

        # label tuple -> child: `labels()` validates and hashes its arguments on every call
        self._requests: dict[tuple[str, int | str, str], Child] = {}
        self._auth: dict[str, Child] = {}
        self._limits: dict[str, tuple[Child, ...]] = {}
        self._lockouts: dict[str, tuple[Child, ...]] = {}
        self._detections: dict[tuple[str, str], Child] = {}
        self._sinks: dict[str, tuple[Child, Child, Child]] = {}
        self._dropped_seen: dict[str, int] = {}
        self._sink_lock = threading.Lock()
        self._events: dict[str, Callable[[Mapping[str, Any]], None]] = {
            **{name: self._reload for name in _EVENT_RELOAD},
            "jwks_fetch_failed": self._jwks_failed,
        }

    # -- fed by the log writer thread ----------------------------------------------------------------

    def observe(self, record: Mapping[str, Any]) -> None:
        """One log record (see `observe_many`)."""
        self.observe_many((record,))

    def observe_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """One drain's records. Thread-safe (prometheus-client values lock; the caches only ever gain
        entries, and a racing duplicate `labels()` returns the same child) and never raises: a
        malformed record must not stop the writer thread that calls this. The request counter and
        the two histograms are summed per batch and applied once: prometheus-client takes a lock per
        `inc()` and walks the buckets in Python per `observe()`, ~3 µs a request that the writer
        thread (which shares the GIL with the event loop) does not need to spend."""
        batch = _Batch()
        for record in records:
            try:
                if record.get("event.dataset") == "bastion.access":
                    self._access(record, batch)
                    continue
                action = record.get("event.action")
                if action is not None:
                    handler = self._events.get(action)
                    if handler is not None:
                        handler(record)
            except Exception:
                self.observe_errors.inc()
        try:
            for key, n in batch.requests.items():
                child = self._requests.get(key)
                if child is None:
                    rule, status, label = key
                    child = self._requests[key] = self._labelled(
                        self.requests, self._requests, str(rule), str(status), label
                    )
                child.inc(n)
            _observe_all(self.duration, batch.duration)
            _observe_all(self.upstream, batch.upstream)
        except Exception:
            self.observe_errors.inc()

    def observe_sink(self, name: str, queued: int, spooled: int, dropped_total: int) -> None:
        """A sink's queue depth, spool size and cumulative drop count, polled by the writer. Never raises."""
        try:
            children = self._sinks.get(name)
            if children is None:
                label = name if len(self._sinks) < MAX_SERIES else _OTHER
                children = self._sinks[name] = (
                    self.queue_depth.labels(label),
                    self.spooled.labels(label),
                    self.dropped.labels(label),
                )
            depth, spool, dropped = children
            depth.set(queued)
            spool.set(spooled)
            with self._sink_lock:
                seen = self._dropped_seen.get(name, 0)
                # a smaller total means the sink started counting again: all of it is new
                delta = dropped_total - seen if dropped_total >= seen else dropped_total
                self._dropped_seen[name] = dropped_total
            if delta > 0:
                dropped.inc(delta)
        except Exception:
            self.observe_errors.inc()

    # -- set from the event loop -----------------------------------------------------------------------

    def breaker_changed(self, is_open: bool) -> None:
        """`Breaker.on_change`: the gauge follows the breaker itself, not its log records (a dropped
        or late record must not leave it wrong)."""
        self.breaker_open.set(1 if is_open else 0)

    def jwks_fetched(self, issuer: str, keys: int) -> None:
        """Called by `JwksKeys` after each successful fetch."""
        try:
            self.jwks_last_success.labels(issuer).set(time.time())
            self.jwks_keys.labels(issuer).set(keys)
        except Exception:
            self.observe_errors.inc()

    def render(self) -> bytes:
        """The exposition text of this process's registry (what `/metrics` serves)."""
        return generate_latest(self.registry)

    # -- records -------------------------------------------------------------------------------------

    def _access(self, rec: Mapping[str, Any], batch: _Batch) -> None:
        status = rec.get("http.response.status_code") or 0
        rule = rec.get("bastion.rule") or "none"
        reason = rec.get("bastion.reason")
        decision = rec.get("bastion.decision")
        if reason is None or reason in _NOT_REFUSALS:
            label = decision or "forward"
        elif decision == "would_deny" and reason in _SHADOW_REASONS:
            label = decision
        else:
            label = "deny"
        # SECURITY: the status is the only label value from outside the config (an upstream sends any
        # 100-999, and a client can steer some): codes HTTP does not register share one series
        key = (rule, status if status in _KNOWN_STATUS else _OTHER, label)
        batch.requests[key] = batch.requests.get(key, 0) + 1

        total = rec.get("bastion.duration_ms")
        upstream = rec.get("bastion.upstream_ms")
        if upstream is not None:
            batch.upstream.append(upstream / 1000.0)
            if total is not None:
                batch.duration.append(max(0.0, total - upstream) / 1000.0)
        elif total is not None:
            batch.duration.append(total / 1000.0)

        if label == "deny":
            if reason in AUTHENTICATION_REASONS:
                child = self._auth.get(reason)
                if child is None:
                    child = self._auth[reason] = self.auth_failures.labels(reason)
                child.inc()
            elif reason == _RATE_LIMITED:
                for child in self._policies(rec, self.ratelimit_hits, self._limits):
                    child.inc()
            elif reason == _LOGIN_LOCKED:
                for child in self._policies(rec, self.login_lockouts, self._lockouts):
                    child.inc()
        found = rec.get("bastion.detections")
        if found:
            action = "blocked" if label == "deny" and reason == _INJECTION else "detected"
            for finding in found:
                cls = finding.get("class") or "unknown"
                dkey = (cls, action)
                child = self._detections.get(dkey)
                if child is None:
                    child = self._detections[dkey] = self._labelled(self.detections, self._detections, cls, action)
                child.inc()

    def _policies(
        self, rec: Mapping[str, Any], metric: Counter, cache: dict[str, tuple[Child, ...]]
    ) -> tuple[Child, ...]:
        """The violated policies of a 429: `bastion.policies` (a list of names, from the denial), else
        `bastion.ratelimit`'s `policy` (a RateLimit-Policy field value, `"name";q=5;w=60, ...`)."""
        value = rec.get("bastion.policies")
        if value is None:
            limit = rec.get("bastion.ratelimit")
            value = limit.get("policy") if isinstance(limit, Mapping) else rec.get("bastion.ratelimit.policy")
        cache_key = value if isinstance(value, str) else repr(value)
        children = cache.get(cache_key)
        if children is None:
            if isinstance(value, str):
                names = _QUOTED.findall(value) or [n.strip() for n in value.split(",")]
            elif isinstance(value, list | tuple):
                names = [str(n) for n in value]
            else:
                names = []
            names = [n for n in names if n] or ["unknown"]
            if len(cache) >= MAX_SERIES:
                names = [_OTHER]
            children = cache[cache_key] = tuple(metric.labels(n) for n in dict.fromkeys(names))
        return children

    def _reload(self, rec: Mapping[str, Any]) -> None:
        self.reloads.labels(_EVENT_RELOAD[rec["event.action"]]).inc()

    def _jwks_failed(self, rec: Mapping[str, Any]) -> None:
        self.jwks_failures.labels(str(rec.get("issuer") or rec.get("jwks_url") or "unknown")).inc()

    @staticmethod
    def _labelled(metric: Any, cache: Mapping[Any, Any], *values: str) -> Child:
        if len(cache) >= MAX_SERIES:
            return metric.labels(*(_OTHER for _ in values))
        return metric.labels(*values)


# -- --workers N: prometheus-client's multiprocess mode -------------------------------------------------

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Batch:
    __slots__ = ("requests", "duration", "upstream")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int | str, str], int] = {}
        self.duration: list[float] = []
        self.upstream: list[float] = []


def _observe_all(hist: Histogram, values: list[float]) -> None:
    """`hist.observe(v)` for every value, with one lock round per bucket rather than per value.
    Uses the histogram's `_upper_bounds`, `_buckets` and `_sum` (stable across prometheus-client
    releases since 0.4, the same values `observe` updates, in multiprocess mode too); falls back to
    `observe` if they are ever gone."""
    if not values:
        return
    bounds = getattr(hist, "_upper_bounds", None)
    buckets = getattr(hist, "_buckets", None)
    total = getattr(hist, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for v in values:
            hist.observe(v)
        return
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1  # first bound >= v: where `observe` puts it
    for i, c in enumerate(counts):
        if c:
            buckets[i].inc(c)
    total.inc(sum(values))


def render_multiprocess(path: str) -> bytes:
    """The sum over every worker's files in `path` (counters of dead workers included, as they must
    be: a restart never makes a counter go down; gauges per their `multiprocess_mode`)."""
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


def mark_process_dead(pid: int, path: str) -> None:
    """A worker exited: drop its live gauges (its counters and histograms stay in the sum)."""
    try:
        _multiprocess.mark_process_dead(pid, path)
    except OSError as exc:  # pragma: no cover - a metrics file we cannot remove must not stop the supervisor
        log.warning("cannot remove a dead worker's metrics files", extra={"pid": pid, "error": str(exc)})
