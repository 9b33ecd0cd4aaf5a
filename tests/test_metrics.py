"""Prometheus metrics (proxy/metrics.py): derived from log records, served on the admin listener only.

Every value is read back through prometheus-client's own text parser, as a scraper would read it:
first record by record (tables), then through a running Bastion, then summed over `--workers 2`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import psutil
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpServer

import proxy.metrics
from proxy import __version__
from proxy.config import Breaker as BreakerConfig
from proxy.config import JwksCache
from proxy.jwt.jwks import JwksKeys, JwksUnavailable
from proxy.logs import OutputHandler
from proxy.metrics import MULTIPROC_ENV, Metrics, render_multiprocess
from proxy.ratelimit.breaker import Breaker
from tests.conftest import EchoUpstream, Process, Running, StartBastion, free_port, make_config, wait_http, write_config
from tests.jwt.conftest import to_jwk

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def counters(samples: Samples) -> dict[str, float]:
    """Every counter sample that moved, as `name{k=v,...}` (the build info is always 1, not a counter)."""
    return {
        name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels)) + "}": v
        for (name, labels), v in samples.items()
        if name.endswith("_total") and v
    }


_FIELDS = {"status": "http.response.status_code"}  # every other keyword `k` is `bastion.k`


def access(**fields: Any) -> dict[str, Any]:
    """An access record: `access(status=401, reason="expired")`."""
    record: dict[str, Any] = {
        "event.dataset": "bastion.access",
        "http.response.status_code": 200,
        "bastion.duration_ms": 1.0,
        "bastion.upstream_ms": 0.5,
    }
    record.update({_FIELDS.get(k, "bastion." + k): v for k, v in fields.items()})
    return record


SQLI = {"class": "sqli", "detector": "sqli.union", "field": "query.q", "snippet": "' union select"}
XSS = {"class": "xss", "detector": "xss.script", "field": "body.name", "snippet": "<script>"}


# -- one access record at a time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            access(rule="tasks", decision="allow"),
            {"bastion_requests_total{decision=allow,rule=tasks,status=200}": 1},
            id="allowed",
        ),
        pytest.param(
            access(),
            {"bastion_requests_total{decision=forward,rule=none,status=200}": 1},
            id="no-rules-configured-forwarded",
        ),
        pytest.param(
            access(status=401, rule="tasks", reason="expired", upstream_ms=None),
            {
                "bastion_requests_total{decision=deny,rule=tasks,status=401}": 1,
                "bastion_auth_failures_total{reason=expired}": 1,
            },
            id="expired-token",
        ),
        pytest.param(
            access(
                status=401, rule="tasks", decision="deny",
                reason="auth_required", upstream_ms=None,
            ),
            {
                "bastion_requests_total{decision=deny,rule=tasks,status=401}": 1,
                "bastion_auth_failures_total{reason=auth_required}": 1,
            },
            id="anonymous-on-an-authenticated-rule",
        ),
        pytest.param(
            access(
                status=403, rule="admin", decision="deny",
                reason="forbidden", upstream_ms=None,
            ),
            {"bastion_requests_total{decision=deny,rule=admin,status=403}": 1},
            id="forbidden-is-not-an-authentication-failure",
        ),
        pytest.param(
            access(status=404, decision="deny", reason="no_rule", upstream_ms=None),
            {"bastion_requests_total{decision=deny,rule=none,status=404}": 1},
            id="no-rule",
        ),
        pytest.param(
            access(rule="tasks", decision="would_deny", reason="auth_required"),
            {"bastion_requests_total{decision=would_deny,rule=tasks,status=200}": 1},
            id="shadow-would-deny-is-no-auth-failure",
        ),
        pytest.param(
            access(
                status=403, rule="tasks", decision="would_deny",
                reason="injection_suspected", detections=[SQLI], upstream_ms=None,
            ),
            {
                "bastion_requests_total{decision=deny,rule=tasks,status=403}": 1,
                "bastion_detections_total{action=blocked,class=sqli}": 1,
            },
            id="shadow-rule-then-attack-blocked",
        ),
        pytest.param(
            access(
                status=429, rule="tasks", reason="rate_limited",
                policies=["per_ip", "tasks.burst"], upstream_ms=None,
            ),
            {
                "bastion_requests_total{decision=deny,rule=tasks,status=429}": 1,
                "bastion_ratelimit_hits_total{policy=per_ip}": 1,
                "bastion_ratelimit_hits_total{policy=tasks.burst}": 1,
            },
            id="rate-limited-violated-policies",
        ),
        pytest.param(
            access(
                status=429, reason="rate_limited", upstream_ms=None,
                ratelimit={"policy": '"per_ip";q=5;w=60', "state": '"per_ip";r=0;t=12'},
            ),
            {
                "bastion_requests_total{decision=deny,rule=none,status=429}": 1,
                "bastion_ratelimit_hits_total{policy=per_ip}": 1,
            },
            id="rate-limited-policy-field",
        ),
        pytest.param(
            access(status=429, reason="rate_limited", upstream_ms=None),
            {
                "bastion_requests_total{decision=deny,rule=none,status=429}": 1,
                "bastion_ratelimit_hits_total{policy=unknown}": 1,
            },
            id="rate-limited-policy-unknown",
        ),
        pytest.param(
            access(
                status=429, rule="login", reason="login_locked",
                policies=["login-username"], login="locked", upstream_ms=None,
            ),
            {
                "bastion_requests_total{decision=deny,rule=login,status=429}": 1,
                "bastion_login_lockouts_total{subject=login-username}": 1,
            },
            id="login-locked",
        ),
        pytest.param(
            access(rule="search", decision="detected", detections=[SQLI, XSS, SQLI]),
            {
                "bastion_requests_total{decision=detected,rule=search,status=200}": 1,
                "bastion_detections_total{action=detected,class=sqli}": 2,
                "bastion_detections_total{action=detected,class=xss}": 1,
            },
            id="detect-mode-every-finding",
        ),
        pytest.param(
            access(
                status=502, rule="tasks", decision="allow",
                reason="upstream_unavailable", upstream_ms=None,
            ),
            {"bastion_requests_total{decision=allow,rule=tasks,status=502}": 1},
            id="upstream-down-after-allow-keeps-the-decision",
        ),
        pytest.param(
            access(status=204, rule="tasks", decision="reply", upstream_ms=None),
            {"bastion_requests_total{decision=reply,rule=tasks,status=204}": 1},
            id="cors-preflight-reply",
        ),
        pytest.param(
            access(rule="login", decision="allow", auth_ignored="expired"),
            {"bastion_requests_total{decision=allow,rule=login,status=200}": 1},
            id="token-ignored-on-an-anonymous-rule",
        ),
    ],
)  # fmt: skip
def test_access_record_counts(record: dict[str, Any], expected: dict[str, float]) -> None:
    m = Metrics()
    m.observe(record)
    assert counters(parse(m.render())) == expected


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        pytest.param([{"event.action": "rules-reloaded"}], {"bastion_config_reloads_total{outcome=ok}": 1},
                     id="reload"),
        pytest.param(
            [{"event.action": "rules-reload-failed"}, {"event.action": "config-reload-failed"}],
            {"bastion_config_reloads_total{outcome=failed}": 2},
            id="reload-failed",
        ),
        pytest.param(
            [{"event.action": "jwks_fetch_failed", "issuer": "https://idp", "jwks_url": "https://idp/jwks"}] * 2,
            {"bastion_jwks_fetch_failures_total{issuer=https://idp}": 2},
            id="jwks-failures-by-issuer",
        ),
        pytest.param(
            [{"event.action": "jwks_fetch_failed", "jwks_url": "https://idp/jwks"}],
            {"bastion_jwks_fetch_failures_total{issuer=https://idp/jwks}": 1},
            id="jwks-failure-without-issuer-names-the-url",
        ),
        pytest.param(
            [
                {"event.dataset": "bastion.security", "event.action": action, "bastion.reason": "expired"}
                for action in ("authentication_failed", "attack_blocked", "attack_detected", "rate_limited",
                               "login_locked", "access_denied")
            ],
            {},
            id="derived-security-events-are-not-counted-twice",
        ),
        pytest.param([{"message": "listening", "log.level": "info"}], {}, id="plain-log-line"),
    ],
)  # fmt: skip
def test_event_record_counts(records: list[dict[str, Any]], expected: dict[str, float]) -> None:
    m = Metrics()
    for record in records:
        m.observe(record)
    assert counters(parse(m.render())) == expected


def test_durations_split_bastion_time_from_upstream_time() -> None:
    m = Metrics()
    m.observe(access(duration_ms=12.5, upstream_ms=10.0))  # 2.5 ms of Bastion's own
    m.observe(access(status=401, reason="jwt_missing", duration_ms=0.4,
                     upstream_ms=None))  # fmt: skip
    s = parse(m.render())
    assert value(s, "bastion_upstream_duration_seconds_count") == 1
    assert value(s, "bastion_upstream_duration_seconds_sum") == pytest.approx(0.010)
    assert value(s, "bastion_upstream_duration_seconds_bucket", le="0.005") == 0
    assert value(s, "bastion_upstream_duration_seconds_bucket", le="0.01") == 1
    assert value(s, "bastion_request_duration_seconds_count") == 2
    assert value(s, "bastion_request_duration_seconds_sum") == pytest.approx(0.0029)
    assert value(s, "bastion_request_duration_seconds_bucket", le="0.0005") == 1  # the denial
    assert value(s, "bastion_request_duration_seconds_bucket", le="0.0025") == 2


def test_breaker_gauge_follows_the_transitions() -> None:
    m = Metrics()
    readings = []
    for is_open in (True, False, True):
        m.breaker_changed(is_open)
        readings.append(value(parse(m.render()), "bastion_redis_breaker_open"))
    assert readings == [1, 0, 1]
    m.observe({"event.action": "ratelimit_store_recovered", "store": "redis"})  # a late log record
    assert value(parse(m.render()), "bastion_redis_breaker_open") == 1  # does not move the gauge


def test_sink_gauges_and_drops_as_a_counter() -> None:
    m = Metrics()
    m.observe_sink("tcp", queued=120, spooled=3000, dropped_total=5)
    m.observe_sink("stdout", queued=0, spooled=0, dropped_total=0)
    m.observe_sink("tcp", queued=7, spooled=0, dropped_total=12)
    s = parse(m.render())
    assert value(s, "bastion_log_queue_depth", sink="tcp") == 7
    assert value(s, "bastion_log_spooled_records", sink="tcp") == 0
    assert value(s, "bastion_log_dropped_total", sink="tcp") == 12
    assert value(s, "bastion_log_dropped_total", sink="stdout") == 0
    m.observe_sink("tcp", queued=0, spooled=0, dropped_total=2)  # the sink counts from 0 again
    assert value(parse(m.render()), "bastion_log_dropped_total", sink="tcp") == 14


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(None, id="none"),
        pytest.param({"event.dataset": "bastion.access", "bastion.duration_ms": "slow"}, id="duration-not-a-number"),
        pytest.param({"event.dataset": "bastion.access", "bastion.detections": [None]}, id="detection-not-a-dict"),
        pytest.param({"event.dataset": "bastion.access", "bastion.rule": ["x"]}, id="unhashable-rule"),
    ],
)
def test_a_malformed_record_never_raises_and_is_counted(record: Any) -> None:
    m = Metrics()
    m.observe(record)
    m.observe_sink(None, "x", None, object())  # type: ignore[arg-type]
    assert value(parse(m.render()), "bastion_metrics_observe_errors_total") == 2


def test_label_sets_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy.metrics, "MAX_SERIES", 3)
    m = Metrics()
    for i in range(6):
        m.observe(access(rule=f"r{i}", decision="allow"))
    rules = {
        dict(labels)["rule"]: v for (name, labels), v in parse(m.render()).items() if name == "bastion_requests_total"
    }
    assert rules == {"r0": 1, "r1": 1, "r2": 1, "other": 3}


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe(access())
    assert value(parse(a.render()), "bastion_requests_total", rule="none", status="200", decision="forward") == 1
    assert value(parse(b.render()), "bastion_requests_total", rule="none", status="200", decision="forward") == 0


def test_observe_is_thread_safe() -> None:
    m = Metrics()
    records = [access(rule=f"r{i % 3}", decision="allow") for i in range(5000)]

    def feed() -> None:
        for r in records:
            m.observe(r)
            m.observe_sink("tcp", 1, 0, 0)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = parse(m.render())
    assert sum(v for (name, _), v in s.items() if name == "bastion_requests_total") == 20000
    assert value(s, "bastion_request_duration_seconds_count") == 20000
    assert value(s, "bastion_metrics_observe_errors_total") == 0


# -- the producers: the records that jwks.py and breaker.py log are the ones the metrics read -------


def _as_dict(record: logging.LogRecord) -> dict[str, Any]:
    return dict(record.__dict__)  # the `extra` fields sit on the LogRecord, as the JSON formatter reads them


async def test_jwks_success_sets_the_age_gauge_and_failure_logs_the_counted_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    answers: list[Any] = [(200, {}, orjson.dumps({"keys": [to_jwk(key, "k1", "ES256")]})), OSError("refused")]

    async def fetch(url: str) -> tuple[int, Mapping[str, str], bytes]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    m = Metrics()
    keys = JwksKeys("https://idp.test/jwks", JwksCache(), frozenset({"ES256"}), fetch)
    keys.issuer = "https://idp.test"
    keys.on_fetched = m.jwks_fetched
    before = time.time()
    await keys.refresh()
    s = parse(m.render())
    assert before <= value(s, "bastion_jwks_last_success_timestamp_seconds", issuer="https://idp.test") <= time.time()
    assert value(s, "bastion_jwks_keys", issuer="https://idp.test") == 1

    with caplog.at_level(logging.WARNING, logger="bastion.jwks"), pytest.raises(JwksUnavailable):
        await keys.refresh()
    [failed] = [r for r in caplog.records if getattr(r, "event.action", None) == "jwks_fetch_failed"]
    m.observe(_as_dict(failed))
    assert value(parse(m.render()), "bastion_jwks_fetch_failures_total", issuer="https://idp.test") == 1


async def test_breaker_transitions_set_the_gauge() -> None:
    async def probe() -> None:
        return None

    m = Metrics()
    breaker = Breaker(BreakerConfig(failures=1, retry_every=0.01), probe)
    breaker.on_change = m.breaker_changed  # as app.py wires it
    breaker.failure(ConnectionError())
    assert value(parse(m.render()), "bastion_redis_breaker_open") == 1
    deadline = time.monotonic() + 5
    while not breaker.closed and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await breaker.stop()
    assert value(parse(m.render()), "bastion_redis_breaker_open") == 0


# -- a running Bastion ----------------------------------------------------------------------------

RULES = """
rules:
  - id: open
    match: {path: /open, methods: [GET]}
    allow: anonymous
  - id: private
    match: {path: /private, methods: [GET]}
    allow: authenticated
"""
ISS, SECRET = "https://issuer.test", "s" * 40


def _token(**claims: Any) -> str:
    return jwt.encode({"iss": ISS, "sub": "alice", "exp": int(time.time()) + 600, **claims}, SECRET, "HS256")


async def _scrape(url: str) -> tuple[aiohttp.ClientResponse, Samples]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        return r, parse(await r.read())


async def _until_requests(url: str, n: float, timeout: float = 10.0) -> Samples:
    """The scrape once `bastion_requests_total` sums to `n` (the log writer runs every 50 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        _, s = await _scrape(url)
        total = sum(v for (name, _), v in s.items() if name == "bastion_requests_total")
        if total >= n or time.monotonic() > deadline:
            assert total == n, counters(s)
            return s
        await asyncio.sleep(0.05)


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(start_bastion: StartBastion, upstream: EchoUpstream) -> AsyncIterator[Start]:
    """A Bastion whose log writer feeds its metrics, as `runtime.serve` wires it, with the `bastion.*`
    loggers going to its output too (the fixture leaves `logging` alone), so events are counted."""
    logger = logging.getLogger("bastion")
    level, handlers = logger.level, []

    async def run(**cfg: Any) -> Running:
        running = await start_bastion(make_config(upstream.url, **cfg))
        running.output.observer = running.bastion.metrics.observe_many
        handlers.append(OutputHandler(running.output))
        logger.addHandler(handlers[-1])
        logger.setLevel(logging.INFO)
        return running

    yield run
    for h in handlers:
        logger.removeHandler(h)
    logger.setLevel(level)


async def test_metrics_of_a_running_bastion_count_exactly(start: Start, tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(RULES)
    auth = {"issuers": [{"issuer": ISS, "algorithms": ["HS256"], "secret": SECRET}]}
    proxy = await start(rules=[str(tmp_path / "*.yaml")], auth=auth)
    expired = _token(exp=int(time.time()) - 3600)
    anonymous: str | None = None
    plan = (
        [("/open", anonymous, 200)] * 4
        + [("/private", anonymous, 401)] * 3
        + [("/private", expired, 401)] * 2
        + [("/private", _token(), 200)]
        + [("/nowhere", anonymous, 404)] * 2
    )
    async with aiohttp.ClientSession() as s:
        for path, token, status in plan:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with s.get(proxy.url + path, headers=headers) as r:
                assert r.status == status, path
    await proxy.bastion.reload("test")

    samples = await _until_requests(proxy.bastion.admin_url, len(plan))
    assert counters(samples) == {
        "bastion_requests_total{decision=allow,rule=open,status=200}": 4,
        "bastion_requests_total{decision=allow,rule=private,status=200}": 1,
        "bastion_requests_total{decision=deny,rule=private,status=401}": 5,
        "bastion_requests_total{decision=deny,rule=none,status=404}": 2,
        "bastion_auth_failures_total{reason=jwt_missing}": 3,
        "bastion_auth_failures_total{reason=expired}": 2,
        "bastion_config_reloads_total{outcome=ok}": 1,
    }
    assert value(samples, "bastion_upstream_duration_seconds_count") == 5
    assert value(samples, "bastion_request_duration_seconds_count") == len(plan)
    assert value(samples, "bastion_build_info", version=__version__) == 1


async def test_metrics_only_on_the_admin_listener(start: Start, upstream: EchoUpstream, tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(RULES)
    proxy = await start(rules=[str(tmp_path / "*.yaml")])
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/metrics") as r:
            assert r.status == 404 and b"bastion_" not in await r.read()
        async with s.get(proxy.bastion.admin_url + "/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"] == CONTENT_TYPE_LATEST
            assert "Server" not in r.headers
            assert value(parse(await r.read()), "bastion_build_info", version=__version__) == 1
    assert upstream.paths() == []  # not even passed on


async def test_jwks_metrics_of_a_running_bastion(start: Start, aiohttp_server: AiohttpServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [to_jwk(key, "k1", "ES256"), to_jwk(key, "k2", "ES256")]})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    idp = await aiohttp_server(app)
    cache = {"fetch_timeout": 1}
    auth = {
        "issuers": [
            {"issuer": "https://up.test", "algorithms": ["ES256"], "jwks_url": str(idp.make_url("/jwks.json")),
             "jwks_cache": cache},
            {"issuer": "https://down.test", "algorithms": ["ES256"],
             "jwks_url": f"http://127.0.0.1:{free_port()}/jwks.json", "jwks_cache": cache},
        ]
    }  # fmt: skip
    before = time.time()
    proxy = await start(auth=auth)
    deadline = time.monotonic() + 10
    while True:
        _, s = await _scrape(proxy.bastion.admin_url)
        failures = value(s, "bastion_jwks_fetch_failures_total", issuer="https://down.test")
        if failures >= 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert failures >= 1
    assert value(s, "bastion_jwks_fetch_failures_total", issuer="https://up.test") == 0
    assert before <= value(s, "bastion_jwks_last_success_timestamp_seconds", issuer="https://up.test") <= time.time()
    assert value(s, "bastion_jwks_keys", issuer="https://up.test") == 2
    assert ("bastion_jwks_last_success_timestamp_seconds", frozenset({("issuer", "https://down.test")})) not in s


# -- --workers 2: one sum over the workers' files ---------------------------------------------------


async def _status(admin: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin}/status") as r:
        return dict(await r.json())


async def _workers(admin: int, n: int, exclude: int | None = None) -> list[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = list((await _status(admin))["workers"])
        if len(pids) == n and exclude not in pids:
            return pids
        await asyncio.sleep(0.1)
    raise AssertionError("workers did not come up")


async def _listening(pids: list[int], port: int) -> None:
    """Until every worker has bound the port (a worker shows in /status before it listens)."""

    def bound(pid: int) -> bool:
        return any(
            c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections()
        )

    deadline = time.monotonic() + 20
    while not all(bound(p) for p in pids):
        assert time.monotonic() < deadline, "workers did not listen"
        await asyncio.sleep(0.05)


async def _requests(port: int, n: int) -> None:
    # a fresh connection each: SO_REUSEPORT spreads connections, not requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(n):
            async with s.get(f"http://127.0.0.1:{port}/ping") as r:
                assert r.status == 200


def _one_worker(metrics_dir: str, pid: int, tmp_path: Path) -> Samples:
    """What one worker counted: its own files, summed alone."""
    alone = tmp_path / f"alone-{pid}"
    alone.mkdir()
    for f in Path(metrics_dir).glob(f"*_{pid}.db"):
        shutil.copy(f, alone / f.name)
    return parse(render_multiprocess(str(alone)))


async def test_workers_metrics_are_summed_by_the_supervisor(
    upstream: EchoUpstream, spawn: Callable[..., Process], tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    cfg = write_config(tmp_path / "c.yaml", upstream.url, port, admin, extra="shutdown: {drain_delay: 0s}\n")
    proc = spawn("proxy", "run", "-c", str(cfg), "--workers", "2")
    await wait_http(f"http://127.0.0.1:{admin}/readyz")
    pids = await _workers(admin, 2)
    await _listening(pids, port)
    await wait_http(f"http://127.0.0.1:{port}/ping")
    metrics_dir = psutil.Process(pids[0]).environ()[MULTIPROC_ENV]
    assert psutil.Process(pids[1]).environ()[MULTIPROC_ENV] == metrics_dir
    assert MULTIPROC_ENV not in psutil.Process(proc.proc.pid).environ()  # the supervisor's own stays in memory

    url = f"http://127.0.0.1:{admin}"
    await _until_requests(url, 1)  # wait_http's request
    await _requests(port, 39)
    samples = await _until_requests(url, 40)
    assert value(samples, "bastion_requests_total", rule="none", status="200", decision="forward") == 40
    assert value(samples, "bastion_upstream_duration_seconds_count") == 40
    per_worker = [
        value(_one_worker(metrics_dir, pid, tmp_path), "bastion_requests_total", rule="none", status="200",
              decision="forward")
        for pid in pids
    ]  # fmt: skip
    assert sum(per_worker) == 40 and all(n > 0 for n in per_worker), per_worker  # both served, one sum

    # a worker dies: its counts stay in the sum, its live gauges go; the replacement adds to the sum
    assert list(Path(metrics_dir).glob(f"gauge_live*_{pids[0]}.db"))
    os.kill(pids[0], signal.SIGKILL)
    await _listening(await _workers(admin, 2, exclude=pids[0]), port)
    deadline = time.monotonic() + 5
    while list(Path(metrics_dir).glob(f"gauge_live*_{pids[0]}.db")) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not list(Path(metrics_dir).glob(f"gauge_live*_{pids[0]}.db"))
    assert value((await _scrape(url))[1], "bastion_requests_total", rule="none", status="200", decision="forward") == 40
    await _requests(port, 10)
    await _until_requests(url, 50)

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert b"bastion_requests_total" not in await r.read()  # the proxied port forwards it (rules: [])
    proc.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.proc.wait, 20) == 0
    assert not Path(metrics_dir).exists()


def test_a_batch_of_values_fills_a_histogram_exactly_as_observe_would() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from proxy.metrics import _observe_all

    values = [0.0, 0.0005, 0.00051, 0.001, 0.0249, 0.025, 0.7, 9.9, 10.0, 60.0, 1e9]
    one, batch = CollectorRegistry(), CollectorRegistry()
    bounds = (0.0005, 0.001, 0.025, 0.5, 10.0)
    h1 = Histogram("h", "h", buckets=bounds, registry=one)
    h2 = Histogram("h", "h", buckets=bounds, registry=batch)
    for v in values:
        h1.observe(v)
    _observe_all(h2, values)

    def samples(reg: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(reg).decode().splitlines() if not line.startswith("h_created")]

    assert samples(one) == samples(batch)
    assert 'h_bucket{le="0.0005"} 2.0' in samples(batch)  # a value on a bound falls in that bucket


def test_unregistered_status_codes_share_one_series() -> None:
    from proxy.metrics import Metrics

    m = Metrics()
    base = {"event.dataset": "bastion.access", "bastion.rule": "r", "bastion.decision": "allow"}
    m.observe_many([{**base, "http.response.status_code": code} for code in (200, 299, 599, 799, 404, 499)])
    text = m.render().decode()
    statuses = {
        line.split('status="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("bastion_requests_total{")
    }
    assert statuses == {"200", "404", "499", "other"}  # 299, 599 and 799 are no registered codes
