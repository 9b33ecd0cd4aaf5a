"""The JWKS key cache: rotation, unknown-kid refetch limits, stale-if-error, readiness, TTLs.

The first half runs Bastion against a real local JWKS server; the second drives `JwksKeys`
directly with an injected fetch and a fake clock.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from pytest_aiohttp import AiohttpServer
from yarl import URL

from proxy.app import Bastion
from proxy.config import JwksCache
from proxy.jwt.jwks import JwksKeys, JwksUnavailable
from proxy.logs import LogOutput
from tests.conftest import EchoUpstream, RecordingStream, free_port
from tests.jwt.conftest import (
    JWKS_ISS,
    Forger,
    Gate,
    JwksServer,
    Keys,
    MakeGate,
    assert_refused,
    default_jwks,
    gate_config,
    to_jwk,
)

# --- through the proxy, with a real JWKS server ---------------------------------------------------


def kid_token(gate: Gate, kid: str, key: Any = None) -> str:
    return gate.forge.token(JWKS_ISS, header={"kid": kid}, key=key)


async def test_rotation_old_and_new_kid_valid_while_both_published(gate: Gate, keys: Keys) -> None:
    old, new = to_jwk(keys.jwks_rsa, "rsa-1", "RS256"), to_jwk(keys.jwks_rsa_next, "rsa-2", "RS256")
    gate.jwks.publish(old, new)
    await gate.jwks_keys.refresh()
    assert (await gate.bearer(kid_token(gate, "rsa-1"))).status == 200
    assert (await gate.bearer(kid_token(gate, "rsa-2", keys.jwks_rsa_next))).status == 200

    gate.jwks.publish(new)  # the IdP retires the old key
    await gate.jwks_keys.refresh()
    assert (await gate.bearer(kid_token(gate, "rsa-2", keys.jwks_rsa_next))).status == 200
    assert len(gate.upstream.seen) == 3
    gate.upstream.seen.clear()
    answer = await gate.bearer(kid_token(gate, "rsa-1"))  # a fresh token under the retired kid
    await assert_refused(gate, answer, "kid_unknown")


async def test_new_kid_is_picked_up_by_an_unknown_kid_refetch(make_gate: MakeGate, keys: Keys) -> None:
    gate = await make_gate(jwks_cache={"refetch_unknown_kid_after": 0.2})
    gate.jwks.publish(*default_jwks(keys), to_jwk(keys.jwks_rsa_next, "rsa-2", "RS256"))
    await asyncio.sleep(0.25)
    hits = gate.jwks.hits
    answer = await gate.bearer(kid_token(gate, "rsa-2", keys.jwks_rsa_next))
    assert answer.status == 200, answer.body
    assert gate.jwks.hits == hits + 1


async def test_unknown_kid_refetch_happens_at_most_once_per_window(make_gate: MakeGate) -> None:
    window = 30.0
    gate = await make_gate(jwks_cache={"refetch_unknown_kid_after": window})
    assert gate.jwks.hits == 1  # the prefetch at start
    clock = Clock(time.monotonic())
    gate.jwks_keys._clock = clock  # the window is measured on this clock from here on

    async def burst(n: int) -> list[int]:
        answers = await asyncio.gather(
            *(gate.bearer(kid_token(gate, f"rand-{secrets.token_hex(4)}")) for _ in range(n))
        )
        return [a.status for a in answers]

    assert await burst(10) == [401] * 10  # inside the window that began with the prefetch
    assert gate.jwks.hits == 1
    clock.now += window
    assert await burst(20) == [401] * 20  # 20 random kids at once: one shared refetch
    assert gate.jwks.hits == 2
    clock.now += window - 1
    assert await burst(10) == [401] * 10
    assert gate.jwks.hits == 2
    clock.now += 1
    assert await burst(1) == [401]
    assert gate.jwks.hits == 3
    assert gate.upstream.seen == []


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [
        pytest.param("public, max-age=600", 600, id="max-age-honoured"),
        pytest.param("max-age=5", 60, id="raised-to-min-ttl"),
        pytest.param("max-age=604800", 3600, id="lowered-to-max-ttl"),
        pytest.param(None, 60, id="absent-min-ttl"),
    ],
)
async def test_cache_control_of_the_real_jwks_response_sets_the_ttl(
    make_gate: MakeGate, jwks_server: JwksServer, cache_control: str | None, ttl: float
) -> None:
    jwks_server.cache_control = cache_control
    gate = await make_gate(jwks_cache={"min_ttl": 60, "max_ttl": 3600})
    keys = gate.jwks_keys
    assert keys.fetched_at is not None
    assert keys.expires_at - keys.fetched_at == pytest.approx(ttl)


@pytest.mark.parametrize("mode", ["503", "garbage", "drop"])
async def test_jwks_down_at_refresh_keeps_the_stale_keys(gate: Gate, mode: str) -> None:
    gate.jwks.mode = mode
    with pytest.raises(JwksUnavailable):
        await gate.jwks_keys.refresh()
    assert gate.jwks_keys.last_error
    for alg in ("RS256", "ES256"):
        answer = await gate.bearer(gate.forge.legit(JWKS_ISS, alg=alg))
        assert answer.status == 200, answer.body
    assert await gate.readyz() == 200  # stale keys still serve: the instance stays in rotation


async def test_jwks_down_at_start_is_not_ready_until_the_keys_arrive(
    make_gate: MakeGate, aiohttp_server: AiohttpServer, keys: Keys
) -> None:
    port = free_port()
    gate = await make_gate(jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    assert not gate.jwks_keys.ready
    assert await gate.readyz() == 503
    token = gate.forge.legit(JWKS_ISS)
    assert (await gate.bearer(token)).status == 401
    assert (await gate.bearer(gate.forge.legit())).status == 200  # other issuers are not held up

    idp = JwksServer(default_jwks(keys))
    idp.server = await aiohttp_server(idp.app(), port=port)
    await gate.jwks_keys.refresh()
    assert await gate.readyz() == 200
    gate.upstream.seen.clear()
    answer = await gate.bearer(token)
    assert answer.status == 200, answer.body


async def test_jwks_down_at_start_recovers_without_help(
    make_gate: MakeGate, aiohttp_server: AiohttpServer, keys: Keys
) -> None:
    port = free_port()
    gate = await make_gate(jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    assert await gate.readyz() == 503
    idp = JwksServer(default_jwks(keys))
    idp.server = await aiohttp_server(idp.app(), port=port)
    deadline = time.monotonic() + 5
    while await gate.readyz() != 200:  # the background refresher retries (first backoff: 1 s)
        assert time.monotonic() < deadline, "never became ready"
        await asyncio.sleep(0.1)
    assert (await gate.bearer(gate.forge.legit(JWKS_ISS))).status == 200


async def test_token_of_an_issuer_whose_jwks_never_loaded_says_jwks_unavailable(make_gate: MakeGate) -> None:
    gate = await make_gate(jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json")
    answer = await gate.bearer(gate.forge.legit(JWKS_ISS))
    await assert_refused(gate, answer, "jwks_unavailable")


async def test_one_unparseable_key_in_the_jwks_does_not_spoil_the_others(gate: Gate, keys: Keys) -> None:
    # IdPs publish encryption keys and new key types next to the signing keys; those are skipped
    gate.jwks.publish(
        {"kty": "OKP", "crv": "X25519", "kid": "ecdh-1", "use": "enc", "x": X25519_X},
        {"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AA", "y": "AA"},
        to_jwk(keys.jwks_ec, "ec-1", "RS256"),  # mislabelled
        to_jwk(keys.jwks_rsa_next, "rsa-2", "RS256"),
    )
    await gate.jwks_keys.refresh()
    assert set(gate.jwks_keys.keys) == {"rsa-2"}
    answer = await gate.bearer(kid_token(gate, "rsa-2", keys.jwks_rsa_next))
    assert answer.status == 200, answer.body


async def test_jwks_that_hangs_up_at_start_does_not_stop_bastion(
    upstream: EchoUpstream, jwks_server: JwksServer, keys: Keys, forge: Forger, tmp_path: Path
) -> None:
    jwks_server.mode = "drop"  # the IdP accepts the connection and closes it without an answer
    output = LogOutput(RecordingStream())  # type: ignore[arg-type]
    bastion = Bastion(gate_config(upstream.url, jwks_server.url, tmp_path, keys), output)
    try:
        await bastion.start()  # a broken IdP is a readiness problem, never a crash at start
        async with aiohttp.ClientSession() as s:
            async with s.get(bastion.admin_url + "/readyz") as r:
                assert r.status == 503
            headers = {"Authorization": f"Bearer {forge.legit()}"}
            async with s.get(bastion.url + "/resource", headers=headers) as r:
                assert r.status == 200
    finally:  # built by hand, so a failed start is still cleaned up
        await bastion.shutdown(drain=False)
        output.close()


async def test_jwks_that_hangs_up_on_unknown_kid_refetch_is_a_401_not_a_500(make_gate: MakeGate) -> None:
    gate = await make_gate(jwks_cache={"refetch_unknown_kid_after": 0})
    gate.jwks.mode = "drop"
    answer = await gate.bearer(kid_token(gate, "rotated-9"))
    await assert_refused(gate, answer, "kid_unknown")
    gate.upstream.seen.clear()
    assert (await gate.bearer(gate.forge.legit(JWKS_ISS))).status == 200  # the cached keys still serve


# --- JwksKeys alone: injected fetch, fake clock ----------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Reply = tuple[int, Mapping[str, str], bytes]


class StubFetch:
    """The IdP as a function: replies are produced by `behave`, calls are counted."""

    def __init__(self, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.behave: Callable[[], Awaitable[Reply]] = self.ok
        self.body = body
        self.headers = dict(headers or {})
        self.calls = 0

    async def ok(self) -> Reply:
        return 200, self.headers, orjson.dumps(self.body)

    async def __call__(self, url: str) -> Reply:
        self.calls += 1
        return await self.behave()


IDP_URL = URL("https://idp.example/jwks.json")
IDP_REQUEST = aiohttp.RequestInfo(IDP_URL, "GET", CIMultiDictProxy(CIMultiDict()), IDP_URL)
X25519_X = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"  # an ECDH key: not for signatures


def jwk_set(*jwks: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(jwks)}


def make_keys(fetch: StubFetch, clock: Clock, algs: tuple[str, ...] = ("RS256", "ES256"), **cfg: Any) -> JwksKeys:
    return JwksKeys("https://idp.example/jwks.json", JwksCache(**cfg), frozenset(algs), fetch, clock)


@pytest.mark.parametrize(
    ("cache_control", "expected_ttl"),
    [
        pytest.param(None, 300, id="no-header-min-ttl"),
        pytest.param("max-age=600", 600, id="max-age-honoured"),
        pytest.param("public, max-age=3600, must-revalidate", 3600, id="max-age-among-directives"),
        pytest.param("MAX-AGE=700", 700, id="max-age-case-insensitive"),
        pytest.param("max-age=10", 300, id="clamped-up-to-min-ttl"),
        pytest.param("max-age=0", 300, id="zero-clamped-to-min-ttl"),
        pytest.param("max-age=99999999", 86400, id="clamped-down-to-max-ttl"),
        pytest.param("no-store", 300, id="no-store-min-ttl"),
        pytest.param("max-age=abc", 300, id="unparseable-min-ttl"),
    ],
)
async def test_cache_control_max_age_within_min_and_max_ttl(
    keys: Keys, cache_control: str | None, expected_ttl: float
) -> None:
    clock = Clock()
    fetch = StubFetch(jwk_set(*default_jwks(keys)), {"Cache-Control": cache_control} if cache_control else None)
    jk = make_keys(fetch, clock, min_ttl=300, max_ttl=86400)
    await jk.refresh()
    assert jk.fetched_at == clock.now
    assert jk.expires_at == clock.now + expected_ttl


async def test_unknown_kid_refetch_window_with_a_fake_clock(keys: Keys) -> None:
    clock = Clock()
    fetch = StubFetch(jwk_set(*default_jwks(keys)))
    jk = make_keys(fetch, clock, refetch_unknown_kid_after=30)
    await jk.refresh()
    assert fetch.calls == 1
    for _ in range(5):
        assert await jk.get("unknown", "RS256") is None
    assert fetch.calls == 1
    clock.now += 29.9
    assert await jk.get("unknown", "RS256") is None
    assert fetch.calls == 1
    clock.now += 0.1
    assert await jk.get("unknown", "RS256") is None
    assert await jk.get("other-unknown", "RS256") is None
    assert fetch.calls == 2
    assert await jk.get("rsa-1", "RS256") is not None  # a known kid never fetches
    assert fetch.calls == 2


async def test_concurrent_unknown_kids_share_one_fetch(keys: Keys) -> None:
    clock = Clock()
    fetch = StubFetch(jwk_set(*default_jwks(keys)))
    jk = make_keys(fetch, clock)
    await jk.refresh()
    clock.now += 3600
    gate = asyncio.Event()

    async def slow() -> Reply:
        await gate.wait()
        return 200, {}, orjson.dumps(jwk_set(*default_jwks(keys), to_jwk(keys.jwks_rsa_next, "rsa-2")))

    fetch.behave = slow
    lookups = [asyncio.create_task(jk.get(f"kid-{i}" if i else "rsa-2", "RS256")) for i in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    found = await asyncio.gather(*lookups)
    assert fetch.calls == 2
    assert found[0] is not None and found[1:] == [None] * 19


def status(code: int) -> Callable[[], Awaitable[Reply]]:
    async def reply() -> Reply:
        await asyncio.sleep(0.01)  # a real fetch suspends: concurrent callers get to wait on it
        return code, {}, b"{}"

    return reply


def body(raw: bytes) -> Callable[[], Awaitable[Reply]]:
    async def reply() -> Reply:
        await asyncio.sleep(0.01)
        return 200, {}, raw

    return reply


def raises(exc: BaseException) -> Callable[[], Awaitable[Reply]]:
    async def reply() -> Reply:
        await asyncio.sleep(0.01)
        raise exc

    return reply


async def hangs() -> Reply:
    await asyncio.sleep(10)
    raise AssertionError("not reached")


FAILURES = [
    pytest.param(status(500), id="http-500"),
    pytest.param(status(302), id="http-302-redirect-not-followed"),
    pytest.param(status(404), id="http-404"),
    pytest.param(body(b"<html>"), id="not-json"),
    pytest.param(body(b"\xff\xfe"), id="not-utf8"),
    pytest.param(body(b"[]"), id="json-array"),
    pytest.param(body(b'{"keys": "x"}'), id="keys-not-a-list"),
    pytest.param(body(b'{"keys": []}'), id="empty-set"),
    pytest.param(body(json.dumps(jwk_set({"kty": "oct", "k": "c2VjcmV0"})).encode()), id="only-symmetric-keys"),
    pytest.param(raises(ConnectionRefusedError()), id="connection-refused"),
    pytest.param(raises(OSError("network unreachable")), id="os-error"),
    pytest.param(hangs, id="hangs-past-fetch-timeout"),
    pytest.param(raises(aiohttp.ServerDisconnectedError()), id="server-disconnected"),
    pytest.param(raises(aiohttp.ClientPayloadError("truncated")), id="truncated-body"),
    pytest.param(raises(aiohttp.ClientResponseError(IDP_REQUEST, (), status=400)), id="malformed-http-response"),
]


@pytest.mark.parametrize("failure", FAILURES)
async def test_failed_refresh_raises_jwks_unavailable_and_keeps_stale_keys(
    keys: Keys, failure: Callable[[], Awaitable[Reply]]
) -> None:
    clock = Clock()
    fetch = StubFetch(jwk_set(*default_jwks(keys)))
    jk = make_keys(fetch, clock, fetch_timeout=0.05)
    await jk.refresh()
    fetch.behave = failure
    with pytest.raises(JwksUnavailable):
        await jk.refresh()
    assert jk.ready
    assert await jk.get("rsa-1", "RS256") is not None
    assert await jk.get("ec-1", "ES256") is not None
    assert jk.failures == 1 and jk.last_error


@pytest.mark.parametrize("failure", FAILURES)
async def test_callers_waiting_on_a_failed_fetch_are_released(
    keys: Keys, failure: Callable[[], Awaitable[Reply]]
) -> None:
    fetch = StubFetch(jwk_set(*default_jwks(keys)))
    jk = make_keys(fetch, Clock(), fetch_timeout=0.05)
    await jk.refresh()
    fetch.behave = failure
    async with asyncio.timeout(1):  # nobody may hang on a fetch that failed
        outcomes = await asyncio.gather(
            jk.refresh(), jk.refresh(), jk.get("rotated-2", "RS256"), return_exceptions=True
        )
    assert [type(o) for o in outcomes] == [JwksUnavailable, JwksUnavailable, type(None)]
    assert fetch.calls == 2  # the three callers shared one (failing) fetch
    assert jk.ready


@pytest.mark.parametrize(
    ("jwk", "kept"),
    [
        pytest.param(lambda k: to_jwk(k.jwks_rsa, "x", "RS256"), True, id="rsa-2048-rs256"),
        pytest.param(lambda k: to_jwk(k.jwks_rsa, "x"), True, id="rsa-no-alg"),
        pytest.param(lambda k: to_jwk(k.jwks_ec, "x", "ES256"), True, id="p256-es256"),
        pytest.param(lambda k: to_jwk(k.jwks_rsa, "x", "RS256", use="enc"), False, id="use-enc"),
        pytest.param(
            lambda k: {"kty": "oct", "kid": "x", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}, False, id="symmetric-oct"
        ),
        pytest.param(lambda k: {"kty": "oct", "kid": "x", "alg": "HS256", "k": "c2VjcmV0"}, False, id="oct-hs256"),
        pytest.param(lambda k: to_jwk(k.small_rsa, "x", "RS256"), False, id="rsa-1024"),
        pytest.param(lambda k: to_jwk(k.p384, "x", "ES256"), False, id="p384-labelled-es256"),
        pytest.param(lambda k: to_jwk(k.p384, "x"), False, id="p384-for-es256-only-issuer"),
        pytest.param(lambda k: to_jwk(k.jwks_rsa, "x", "RS512"), False, id="alg-not-allowed"),
        pytest.param(lambda k: to_jwk(k.jwks_ec, "x", "RS256"), False, id="ec-labelled-rs256"),
        pytest.param(lambda k: {**to_jwk(k.jwks_rsa, "x", "RS256"), "n": "!!"}, False, id="broken-modulus"),
        pytest.param(lambda k: {"kty": "RSA", "kid": "x"}, False, id="missing-members"),
        pytest.param(lambda k: "not-an-object", False, id="not-an-object"),
        pytest.param(lambda k: {"kty": "OKP", "crv": "X25519", "kid": "x", "x": X25519_X}, False, id="okp-x25519"),
        pytest.param(lambda k: {"kty": "EC", "crv": "P-192", "kid": "x", "x": "AA", "y": "AA"}, False, id="ec-p192"),
        pytest.param(lambda k: {"kty": "PQ", "kid": "x"}, False, id="kty-unknown"),
        pytest.param(lambda k: {"kid": "x", "n": "AQAB", "e": "AQAB"}, False, id="kty-missing"),
    ],
)
async def test_only_usable_signature_keys_are_taken_from_a_jwks(
    keys: Keys, jwk: Callable[[Keys], Any], kept: bool
) -> None:
    anchor = to_jwk(keys.jwks_ec, "anchor", "ES256")  # keeps the set usable so the row's key is judged alone
    fetch = StubFetch(jwk_set(anchor, jwk(keys)))
    jk = make_keys(fetch, Clock())
    await jk.refresh()
    assert ("x" in jk.keys) is kept


async def test_a_kidless_token_is_matched_only_when_one_key_fits(keys: Keys) -> None:
    fetch = StubFetch(jwk_set(to_jwk(keys.jwks_rsa, "rsa-1", "RS256"), to_jwk(keys.jwks_ec, "ec-1", "ES256")))
    jk = make_keys(fetch, Clock())
    await jk.refresh()
    assert (await jk.get(None, "RS256")) is jk.keys["rsa-1"]
    fetch.body = jwk_set(*fetch.body["keys"], to_jwk(keys.jwks_rsa_next, "rsa-2", "RS256"))
    await jk.refresh()
    assert await jk.get(None, "RS256") is None  # two RSA keys: a token without kid is ambiguous
