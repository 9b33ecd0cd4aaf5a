"""Login brute force through Bastion: failures counted per ip and username, lockouts before the upstream.

The login rule (conftest RULES) matches `POST /status/{code}`, which the echo upstream answers with
that status: `/status/401` is a failed login, `/status/200` a successful one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.checks.login import Ambiguous, submitted_username
from proxy.config import Config
from proxy.ratelimit.base import ABNORMAL_USAGE
from tests.conftest import EchoUpstream, Running, StartBastion
from tests.ratelimit.conftest import AUTH, token

RulesConfig = Callable[..., Config]
LOGIN = {"max_failures": 3, "ip_max_failures": 6, "lockout": "300ms", "max_lockout": "1s"}


async def post(
    proxy: Running, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, Any]]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with aiohttp.ClientSession() as s, s.post(proxy.url + path, data=data, headers=headers or {}) as r:
        raw = await r.read()
        return r.status, r.headers, orjson.loads(raw) if r.content_type.endswith("json") and raw else {}


async def login(proxy: Running, user: str, ok: bool = False) -> int:
    return (await post(proxy, "/status/200" if ok else "/status/401", {"username": user, "password": "x"}))[0]


@pytest.fixture(params=["memory", "redis"])
async def guarded(
    request: pytest.FixtureRequest, upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> Running:
    """Bastion with the login rules, counting in memory or in a real Redis."""
    store: dict[str, Any] = {}
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
        store = {"backend": "redis", "redis": {"url": url, "key_prefix": f"t{uuid.uuid4().hex[:8]}:", "timeout": "1s"}}
    cfg = rules_config(upstream.url, auth=AUTH, rate_limits={"login": LOGIN}, store=store)
    return await start_bastion(cfg)


async def test_a_username_is_locked_after_its_failures_and_the_upstream_is_spared(
    guarded: Running, upstream: EchoUpstream
) -> None:
    assert [await login(guarded, "alice") for _ in range(3)] == [401] * 3
    status, headers, doc = await post(guarded, "/status/200", {"username": "alice", "password": "right"})
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert doc["type"] == ABNORMAL_USAGE and doc["violated-policies"] == ["login-username"]
    assert len(upstream.seen) == 3, "a locked login never reaches the upstream, not even the right password"
    assert await login(guarded, "bob") == 401, "other usernames are not locked"
    records = await guarded.access(5)
    assert [r.get("bastion.login") for r in records] == ["failure"] * 3 + ["locked", "failure"]


async def test_lockout_expires_and_the_next_one_is_longer(guarded: Running) -> None:
    for _ in range(3):
        await login(guarded, "carol")
    assert await login(guarded, "carol") == 429
    await asyncio.sleep(0.35)
    assert [await login(guarded, "carol") for _ in range(4)] == [401, 401, 401, 429]
    await asyncio.sleep(0.35)
    assert await login(guarded, "carol") == 429, "the second lockout is twice the first (600 ms)"
    await asyncio.sleep(0.3)
    assert await login(guarded, "carol", ok=True) == 200


async def test_an_address_is_locked_across_usernames(guarded: Running) -> None:
    statuses = [await login(guarded, f"user{i}") for i in range(8)]
    assert statuses == [401] * 6 + [429, 429]
    _, _, doc = await post(guarded, "/status/401", {"username": "fresh", "password": "x"})
    assert doc["violated-policies"] == ["login-ip"]


@pytest.mark.parametrize(
    "spellings",
    [
        pytest.param(["Dave", "dave ", "DAVE"], id="case-and-space"),
        pytest.param(["ｄａｖｅ", "dave", "Ｄave"], id="fullwidth"),
    ],
)
async def test_spellings_of_a_username_share_its_count(guarded: Running, spellings: list[str]) -> None:
    assert [await login(guarded, s) for s in spellings] == [401] * 3
    assert await login(guarded, "dave") == 429


async def test_success_and_other_answers_do_not_count(guarded: Running) -> None:
    for _ in range(2):
        await login(guarded, "erin")
    assert await login(guarded, "erin", ok=True) == 200  # clears erin's two failures
    statuses = [(await post(guarded, "/status/400", {"username": "erin"}))[0] for _ in range(4)]
    assert statuses == [400] * 4, "a 400 is refunded, not a failure"
    await asyncio.sleep(0.05)  # settling runs after the answer
    assert [await login(guarded, "erin") for _ in range(4)] == [401, 401, 401, 429]


async def test_concurrent_guesses_are_counted_exactly(guarded: Running, upstream: EchoUpstream) -> None:
    statuses = await asyncio.gather(*(login(guarded, "frank") for _ in range(20)))
    assert sorted(statuses) == [401] * 3 + [429] * 17 and len(upstream.seen) == 3


async def test_bastions_own_401s_on_a_login_route_count(guarded: Running, upstream: EchoUpstream) -> None:
    bad = {"Authorization": "Bearer not.a.token"}
    statuses = [(await post(guarded, "/sudo", {"user": "grace"}, bad))[0] for _ in range(4)]
    good = {"Authorization": f"Bearer {token('grace')}"}
    assert statuses == [401, 401, 401, 429]
    assert (await post(guarded, "/sudo", {"user": "grace"}, good))[0] == 429, "locked even with a valid token"
    assert (await post(guarded, "/sudo", {"user": "heidi"}, good))[0] == 200 and len(upstream.seen) == 1


async def test_form_bodies_and_ambiguous_bodies(guarded: Running) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    statuses = [(await post(guarded, "/status/401", b"username=ivan&password=x", form))[0] for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    twice = b'{"username": "judy", "username": "someone-else"}'
    assert (await post(guarded, "/status/401", twice))[0] == 400


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'{"username": "Alice"}', "alice", id="json"),
        pytest.param(b"username=Alice&password=x", "alice", id="form"),
        pytest.param(b'{"username": 42}', "42", id="number"),
        pytest.param(b'{"password": "x"}', None, id="absent"),
        pytest.param(b'{"username": {"$ne": ""}}', None, id="object-is-no-username"),
        pytest.param(b'["username"]', None, id="json-array"),
        pytest.param(b"\xff\xfe", None, id="undecodable"),
        pytest.param(b'{"username": "  "}', None, id="blank"),
    ],
)
def test_submitted_username(body: bytes, expected: str | None) -> None:
    assert submitted_username(body, "username") == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"username": "a", "username": "b"}', id="json-twice"),
        pytest.param(b"username=a&username=b", id="form-twice"),
    ],
)
def test_a_username_given_twice_is_refused(body: bytes) -> None:
    with pytest.raises(Ambiguous):
        submitted_username(body, "username")
