"""The verified-token cache saves the signature check, never the revocation check; revocations
arrive through the admin endpoint and bite on the very next request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

import proxy.jwt.verifier as verifier_module
from tests.conftest import parse_head, raw_request
from tests.jwt.conftest import ADMIN_TOKEN, EC_ISS, HS_ISS, JWKS_ISS, RS_ISS, Gate, assert_refused


class Counter:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts every signature verification the verifier performs."""
    counter = Counter(verifier_module.verify_signature)
    monkeypatch.setattr(verifier_module, "verify_signature", counter)
    return counter


class FakeTime:
    """Moves the clocks of the token cache, the verifier and the revocation store together."""

    def __init__(self, gate: Gate) -> None:
        self.offset = 0.0
        authn = gate.authn
        authn.cache.clock = self
        authn.verifier.clock = self
        gate.bastion.revocations.clock = self

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize("iss", [HS_ISS, RS_ISS, EC_ISS, JWKS_ISS])
async def test_second_request_with_the_same_token_skips_the_signature_check(
    gate: Gate, signature_checks: Counter, iss: str
) -> None:
    token = gate.forge.legit(iss)
    for _ in range(3):
        assert (await gate.bearer(token)).status == 200
    assert signature_checks.calls == 1
    assert gate.authn.cache.hits == 2
    assert [s.header("X-User-Id") for s in gate.upstream.seen] == ["alice"] * 3  # identity from the cache too


async def test_each_distinct_token_is_verified_once(gate: Gate, signature_checks: Counter) -> None:
    tokens = [gate.forge.legit(sub=f"user-{i}") for i in range(3)]
    for token in tokens * 2:
        assert (await gate.bearer(token)).status == 200
    assert signature_checks.calls == 3
    assert [s.header("X-User-Id") for s in gate.upstream.seen] == ["user-0", "user-1", "user-2"] * 2


async def test_a_refused_token_is_not_cached(gate: Gate, signature_checks: Counter) -> None:
    token = gate.forge.token(key=b"not-the-secret-not-the-secret-not-the-secret")
    for _ in range(2):
        assert (await gate.bearer(token)).status == 401
    assert signature_checks.calls == 2
    assert len(gate.authn.cache) == 0


async def test_cached_token_stops_working_at_exp_plus_leeway(gate: Gate, signature_checks: Counter) -> None:
    clock = FakeTime(gate)
    token = gate.forge.legit(exp=int(time.time()) + 60)
    assert (await gate.bearer(token)).status == 200
    clock.offset = 60 + 29  # past exp, inside the 30 s leeway
    assert (await gate.bearer(token)).status == 200
    gate.upstream.seen.clear()
    clock.offset = 60 + 31
    await assert_refused(gate, await gate.bearer(token), "expired")


async def test_cache_entries_are_re_verified_after_the_cache_ttl(gate: Gate, signature_checks: Counter) -> None:
    clock = FakeTime(gate)
    token = gate.forge.legit(exp=int(time.time()) + 3600)
    assert (await gate.bearer(token)).status == 200
    clock.offset = gate.cfg.auth.cache.ttl + 1
    assert (await gate.bearer(token)).status == 200
    assert signature_checks.calls == 2


# --- revocation through the admin endpoint -------------------------------------------------------


async def test_revoked_jti_is_refused_on_the_next_request_though_cached(gate: Gate, signature_checks: Counter) -> None:
    claims = gate.forge.claims(jti="tok-1")
    token = gate.forge.legit(**claims)
    other = gate.forge.legit(jti="tok-2")
    assert (await gate.bearer(token)).status == 200
    assert await gate.revoke({"jti": "tok-1", "expires_at": claims["exp"]}) == 204
    gate.upstream.seen.clear()
    await assert_refused(gate, await gate.bearer(token), "revoked")
    assert signature_checks.calls == 1  # it was refused from the cache: revocation is checked anyway
    assert (await gate.bearer(other)).status == 200  # alice's other token is not affected


async def test_subject_cut_off_revokes_every_earlier_token_of_that_subject(gate: Gate) -> None:
    now = int(time.time())
    earlier = gate.forge.legit(sub="alice", iat=now - 60)
    no_iat = gate.forge.token(claims={"sub": "alice"}, drop=["iat"])
    bob = gate.forge.legit(sub="bob", iat=now - 60)
    for token in (earlier, no_iat, bob):
        assert (await gate.bearer(token)).status == 200
    assert await gate.revoke({"sub": "alice"}) == 204
    gate.upstream.seen.clear()
    await assert_refused(gate, await gate.bearer(earlier), "revoked")
    await assert_refused(gate, await gate.bearer(no_iat), "revoked")  # without iat it cannot prove it is newer
    assert (await gate.bearer(bob)).status == 200
    later = gate.forge.legit(sub="alice", iat=now + 2)  # a login after the cut-off
    assert (await gate.bearer(later)).status == 200
    assert [s.header("X-User-Id") for s in gate.upstream.seen] == ["bob", "alice"]


async def test_subject_cut_off_with_an_explicit_time(gate: Gate) -> None:
    now = int(time.time())
    older = gate.forge.legit(iat=now - 200)
    newer = gate.forge.legit(iat=now - 50)
    assert await gate.revoke({"sub": "alice", "before": now - 100}) == 204
    assert (await gate.bearer(newer)).status == 200
    gate.upstream.seen.clear()
    await assert_refused(gate, await gate.bearer(older), "revoked")


async def test_revocation_outlasts_the_leeway_of_the_token_it_revokes(gate: Gate) -> None:
    # A token 5 s past exp is still accepted (30 s leeway), so its revocation must live as long.
    claims = gate.forge.claims(jti="late-1", exp=int(time.time()) - 5)
    token = gate.forge.legit(**claims)
    assert (await gate.bearer(token)).status == 200
    assert await gate.revoke({"jti": "late-1", "expires_at": claims["exp"]}) == 204
    assert (await gate.bearer(token)).status == 401
    assert await gate.revoke({"jti": "unrelated", "expires_at": time.time() + 60}) == 204  # sweeps old entries
    gate.upstream.seen.clear()
    await assert_refused(gate, await gate.bearer(token), "revoked")


def admin_request(authorization: bytes | None, body: bytes) -> bytes:
    head = b"POST /revocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if authorization is not None:
        head += b"Authorization: " + authorization + b"\r\n"
    return head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param(b"Bearer wrong-token", id="wrong-token"),
        pytest.param(b"Bearer " + ADMIN_TOKEN.encode()[:-1], id="prefix-of-the-token"),
        pytest.param(b"Bearer " + ADMIN_TOKEN.encode() + b"x", id="token-plus-one-char"),
        pytest.param(ADMIN_TOKEN.encode(), id="no-scheme"),
        pytest.param(b"Basic " + ADMIN_TOKEN.encode(), id="basic-scheme"),
        pytest.param(b"Bearer", id="scheme-only"),
        pytest.param(b"Bearer \xff\xfe" + ADMIN_TOKEN.encode(), id="not-utf8"),
    ],
)
async def test_wrong_admin_token_revokes_nothing(gate: Gate, authorization: bytes | None) -> None:
    token = gate.forge.legit(jti="keep-1")
    exp = gate.forge.claims()["exp"]
    body = orjson.dumps({"jti": "keep-1", "expires_at": exp})
    status, headers, raw = parse_head(await raw_request(gate.bastion.admin_port, admin_request(authorization, body)))
    assert status == 401, raw
    assert headers["content-type"] == "application/problem+json"
    assert orjson.loads(raw) == {"type": "about:blank", "title": "Unauthorized", "status": 401}
    assert (await gate.bearer(token)).status == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"jti=keep-1", id="not-json"),
        pytest.param(b'["keep-1"]', id="json-array"),
        pytest.param(b'{"jti": "keep-1"}', id="jti-without-expires-at"),
        pytest.param(b'{"jti": "keep-1", "expires_at": "tomorrow"}', id="expires-at-string"),
        pytest.param(b'{"jti": 1, "expires_at": 4000000000}', id="jti-number"),
        pytest.param(b'{"sub": ["alice"]}', id="sub-list"),
        pytest.param(b'{"sub": "alice", "before": "now"}', id="before-string"),
        pytest.param(b"{}", id="empty-object"),
    ],
)
async def test_malformed_revocation_is_a_400_and_revokes_nothing(gate: Gate, body: bytes) -> None:
    token = gate.forge.legit(jti="keep-1")
    request = admin_request(b"Bearer " + ADMIN_TOKEN.encode(), body)
    status, _, raw = parse_head(await raw_request(gate.bastion.admin_port, request))
    assert status == 400, raw
    assert orjson.loads(raw)["status"] == 400
    assert (await gate.bearer(token)).status == 200
