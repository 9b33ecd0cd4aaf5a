"""Security events as their own records, one schema with the access record they came from.

Each attacker-visible outcome (a forged token, a missing one, a refused role, an injection, a rate
limit, a login lockout) is driven through a real Bastion and must produce its event with the
request id, the trace id and the reason, and never the credential.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from tests.conftest import EchoUpstream, Running, StartBastion, make_config

ISSUER = "https://issuer.events.test"
SECRET = "events-test-secret-0123456789-abcdefgh"
RULES = """
roles: {user: [], admin: []}
rules:
  - id: me
    match: {path: /me}
    allow: authenticated
  - id: admin
    match: {path: /admin}
    allow: {roles_any: [admin]}
  - id: comments
    match: {path: /comments, methods: [POST]}
    allow: anonymous
    detect: {mode: block}
  - id: audit
    match: {path: /audit, methods: [POST]}
    allow: anonymous
    detect: {mode: detect}
  - id: limited
    match: {path: /limited}
    allow: anonymous
    rate_limit: [{key: ip, rate: 1/hour, name: per-ip}]
  - id: login
    match: {path: "/status/{code}", methods: [POST]}
    allow: anonymous
    login: true
"""


def token(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "alice", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


@pytest.fixture
async def proxy_e(upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path) -> Running:
    (tmp_path / "r.yaml").write_text(RULES)
    auth = {"issuers": [{"issuer": ISSUER, "algorithms": ["HS256"], "secret": SECRET}]}
    return await start_bastion(
        make_config(
            upstream.url,
            rules=[str(tmp_path / "r.yaml")],
            rules_watch=False,
            auth=auth,
            logging={"headers": ["authorization"]},
        )
    )


async def _events(proxy: Running, action: str, n: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 3
    while True:
        found = [r for r in proxy.logs.lines if r.get("event.action") == action]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def _send(proxy: Running, method: str, path: str, **kw: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, proxy.url + path, **kw) as r:
        return r.status, r.headers["X-Request-ID"]


FORGED = token()[:-4] + "AAAA"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "jwt_missing"),
        ({"Authorization": f"Bearer {FORGED}"}, "bad_signature"),
        ({"Authorization": "Bearer " + token(iss="https://evil.example")}, "unknown_issuer"),
        ({"Authorization": "Bearer " + token(exp=int(time.time()) - 3600)}, "expired"),
    ],
)
async def test_authentication_failures(
    proxy_e: Running, upstream: EchoUpstream, headers: dict[str, str], reason: str
) -> None:
    status, rid = await _send(proxy_e, "GET", "/me", headers=headers)
    assert status == 401 and not upstream.seen
    [ev] = await _events(proxy_e, "authentication_failed")
    assert ev["event.dataset"] == "bastion.security" and ev["event.category"] == "authentication"
    assert ev["bastion.reason"] == reason and ev["http.request.id"] == rid and ev["event.outcome"] == "failure"
    [access] = [r for r in proxy_e.logs.access() if r["http.request.id"] == rid]
    assert ev["trace.id"] == access["trace.id"] and ev["event.id"] != access["event.id"]
    # the access record logs the Authorization header (configured), as its hash only
    assert FORGED not in str(proxy_e.logs.lines)
    if headers:
        assert access["http.request.header.authorization"].startswith("Bearer [redacted:")


async def test_access_denied(proxy_e: Running, upstream: EchoUpstream) -> None:
    status, rid = await _send(proxy_e, "GET", "/admin", headers={"Authorization": f"Bearer {token(roles=['user'])}"})
    assert status == 403 and not upstream.seen
    [ev] = await _events(proxy_e, "access_denied")
    assert ev["bastion.reason"] == "forbidden" and ev["user.id"] == "alice" and ev["bastion.rule"] == "admin"


@pytest.mark.parametrize(
    ("path", "action", "status"), [("/comments", "attack_blocked", 403), ("/audit", "attack_detected", 200)]
)
async def test_attacks(proxy_e: Running, upstream: EchoUpstream, path: str, action: str, status: int) -> None:
    got, rid = await _send(proxy_e, "POST", path, json={"text": "x' OR 1=1 --"})
    assert got == status and bool(upstream.seen) is (status == 200)
    [ev] = await _events(proxy_e, action)
    assert ev["event.kind"] == "alert" and ev["event.category"] == "intrusion_detection"
    attack = ev["bastion.attack"]
    assert attack["class"] == "sqli" and attack["field"] and attack["detector"] and len(attack["snippet"]) <= 64
    assert ev["http.request.id"] == rid and ev["bastion.rule"] == path.strip("/")


async def test_rate_limit_hit(proxy_e: Running, upstream: EchoUpstream) -> None:
    assert (await _send(proxy_e, "GET", "/limited"))[0] == 200
    status, rid = await _send(proxy_e, "GET", "/limited")
    assert status == 429 and len(upstream.seen) == 1
    [ev] = await _events(proxy_e, "rate_limited")
    assert ev["bastion.ratelimit.policy"] == ["limited.per-ip"] and ev["http.request.id"] == rid


async def test_login_failures_and_lockout(proxy_e: Running, upstream: EchoUpstream) -> None:
    statuses = [(await _send(proxy_e, "POST", "/status/401", json={"username": "bob"}))[0] for _ in range(8)]
    assert statuses[0] == 401 and statuses[-1] == 429
    failed = await _events(proxy_e, "login_failed")
    locked = await _events(proxy_e, "login_locked")
    assert failed and locked
    assert statuses.count(401) == len(failed) and statuses.count(429) == len(locked)
    assert len(upstream.seen) == statuses.count(401)  # a locked attempt never reaches the login service


async def test_with_the_access_log_off_events_and_metrics_remain(
    upstream: EchoUpstream, start_bastion: StartBastion, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    (tmp_path / "r.yaml").write_text(RULES)
    auth = {"issuers": [{"issuer": ISSUER, "algorithms": ["HS256"], "secret": SECRET}]}
    proxy = await start_bastion(
        make_config(upstream.url, rules=[str(tmp_path / "r.yaml")], rules_watch=False, auth=auth,
                    logging={"access_log": False})
    )  # fmt: skip
    assert (await _send(proxy, "GET", "/me"))[0] == 401
    assert (await _send(proxy, "GET", "/me", headers={"Authorization": f"Bearer {token()}"}))[0] == 200
    [ev] = await _events(proxy, "authentication_failed")
    assert ev["bastion.reason"] == "jwt_missing"
    assert not proxy.logs.access()  # no access lines
    want = ("bastion_requests_total", (("decision", "allow"), ("rule", "me"), ("status", "200")))
    deadline = time.monotonic() + 3
    while True:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{proxy.bastion.admin_port}/metrics") as r:
            text = await r.text()
        samples = {
            (m.name, tuple(sorted(m.labels.items()))): m.value
            for fam in text_string_to_metric_families(text)
            for m in fam.samples
        }
        if want in samples or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert samples[want] == 1
    assert samples[("bastion_auth_failures_total", (("reason", "jwt_missing"),))] == 1


async def test_one_request_full_of_payloads_logs_at_most_ten_findings(proxy_e: Running, upstream: EchoUpstream) -> None:
    body = {f"f{i}": "x' OR 1=1 --" for i in range(30)}  # detect mode: every field is a finding
    status, rid = await _send(proxy_e, "POST", "/audit", json=body)
    assert status == 200
    events = await _events(proxy_e, "attack_detected", 10)
    [access] = [r for r in proxy_e.logs.access() if r["http.request.id"] == rid]
    assert len(access["bastion.detections"]) == 10 and access["bastion.detections_total"] == 30
    assert len(events) == 10  # the collector is not flooded with one event per payload
