"""Rate limits through Bastion (memory backend): the 429 and its fields, keys that resist bypasses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.config import Config
from proxy.ratelimit.base import QUOTA_EXCEEDED
from tests.conftest import EchoUpstream, Running, StartBastion, make_config, parse_head, raw_request
from tests.ratelimit.conftest import AUTH, token

RulesConfig = Callable[..., Config]


async def get(proxy: Running, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + path, headers=headers or {}) as r:
        body = await r.read()
        doc = orjson.loads(body) if r.content_type.endswith("json") and body else {}
        return r.status, r.headers, doc


async def raw_get(proxy: Running, target: str, extra: str = "") -> int:
    head = f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{extra}\r\n".encode()
    return parse_head(await raw_request(proxy.port, head))[0]


async def test_429_carries_retry_after_the_draft_fields_and_a_problem(
    upstream: EchoUpstream, start_bastion: StartBastion
) -> None:
    cfg = make_config(upstream.url, rate_limits={"default": [{"key": "ip", "rate": "2/hour", "name": "per-ip"}]})
    proxy = await start_bastion(cfg)
    statuses = [(await get(proxy, "/a"))[0] for _ in range(2)]
    status, headers, doc = await get(proxy, "/a")
    assert statuses == [200, 200] and status == 429 and len(upstream.seen) == 2
    assert headers["RateLimit-Policy"] == '"per-ip";q=2;w=3600'
    assert headers["RateLimit"] == '"per-ip";r=0;t=1800'
    assert int(headers["Retry-After"]) == 1800, "Retry-After is never earlier than t"
    assert headers["Content-Type"] == "application/problem+json"
    assert doc["type"] == QUOTA_EXCEEDED and doc["status"] == 429 and doc["violated-policies"] == ["per-ip"]
    assert "127.0.0.1" not in str(dict(headers)) + str(doc), "policy names only, never key values"
    access = await proxy.access(3)
    assert access[-1]["bastion.reason"] == "rate_limited" and "per-ip" in access[-1]["bastion.detail"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("always", ('"ip";q=3;w=3600', '"ip";r=2;t=1200'), id="always"),
        pytest.param("on_limit", (None, None), id="on-limit"),
    ],
)
async def test_fields_on_allowed_answers_only_when_configured(
    upstream: EchoUpstream, start_bastion: StartBastion, mode: str, expected: tuple[str | None, str | None]
) -> None:
    limits = {"default": [{"key": "ip", "rate": "3/hour"}], "headers": mode}
    proxy = await start_bastion(make_config(upstream.url, rate_limits=limits))
    status, headers, _ = await get(proxy, "/a")
    assert status == 200
    assert (headers.get("RateLimit-Policy"), headers.get("RateLimit")) == expected


@pytest.mark.parametrize(
    ("trusted", "admitted"),
    [
        pytest.param([], 2, id="untrusted-peer-spoofing-xff-shares-one-bucket"),
        pytest.param(["127.0.0.1/32"], 6, id="trusted-proxy-xff-is-the-key"),
    ],
)
async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    upstream: EchoUpstream, start_bastion: StartBastion, trusted: list[str], admitted: int
) -> None:
    cfg = make_config(upstream.url, trusted_proxies=trusted, rate_limits={"default": [{"key": "ip", "rate": "2/hour"}]})
    proxy = await start_bastion(cfg)
    statuses = []
    for client in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(2):
            statuses.append((await get(proxy, "/a", {"X-Forwarded-For": client}))[0])
    assert statuses.count(200) == admitted and len(upstream.seen) == admitted


async def test_path_spellings_share_the_rule_limit(
    upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> None:
    proxy = await start_bastion(rules_config(upstream.url))
    spellings = ["/items/1", "/items/%31", "//items/./7", "/items/../items/1", "/items/2"]
    statuses = [await raw_get(proxy, t) for t in spellings]
    assert statuses == [200, 200, 200, 429, 429], "the rule id is the key, not the raw path"
    assert await raw_get(proxy, "/ITEMS/1") == 404, "another spelling reaches no rule, so no upstream"
    assert len(upstream.seen) == 3


async def test_header_keys_are_hashed_and_separate(
    upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> None:
    proxy = await start_bastion(rules_config(upstream.url))
    a = [(await get(proxy, "/keyed", {"X-Api-Key": "key-a"}))[0] for _ in range(3)]
    b = (await get(proxy, "/keyed", {"X-Api-Key": "key-b"}))[0]
    none = [(await get(proxy, "/keyed"))[0] for _ in range(3)]
    _, headers, doc = await get(proxy, "/keyed", {"X-Api-Key": "key-a"})
    assert a == [200, 200, 429] and b == 200 and none == [200] * 3, "no header: the limit does not apply"
    assert doc["violated-policies"] == ["keyed.api-key"] and "key-a" not in str(dict(headers)) + str(doc)
    assert await raw_get(proxy, "/keyed", "X-Api-Key: k1\r\nX-Api-Key: k2\r\n") == 400, "two keys: ambiguous"


async def test_identity_limits_count_per_verified_subject(
    upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> None:
    proxy = await start_bastion(rules_config(upstream.url, auth=AUTH))
    alice = {"Authorization": f"Bearer {token('alice')}"}
    statuses = [(await get(proxy, "/me", alice))[0] for _ in range(3)]
    _, _, doc = await get(proxy, "/me", {"Authorization": f"Bearer {token('alice')}"})
    bob = (await get(proxy, "/me", {"Authorization": f"Bearer {token('bob')}"}))[0]
    anonymous = [(await get(proxy, "/me"))[0] for _ in range(4)]
    assert statuses == [200, 200, 429] and bob == 200
    assert doc["violated-policies"] == ["me.user"], "a fresh token of the same subject shares the limit"
    assert anonymous == [401] * 4, "sub limits do not apply before there is a subject"


async def test_client_limits_run_before_authentication(
    upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> None:
    cfg = rules_config(upstream.url, auth=AUTH, rate_limits={"default": [{"key": "ip", "rate": "3/hour"}]})
    proxy = await start_bastion(cfg)
    bad = {"Authorization": "Bearer not.a.token"}
    assert [(await get(proxy, "/me", bad))[0] for _ in range(5)] == [401, 401, 401, 429, 429]


async def test_global_and_rule_limits_are_one_decision(
    upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> None:
    proxy = await start_bastion(rules_config(upstream.url, rate_limits={"default": [{"key": "ip", "rate": "5/hour"}]}))
    items = [(await get(proxy, "/items/1"))[0] for _ in range(4)]
    _, headers, doc = await get(proxy, "/items/1")
    open_ = [(await get(proxy, "/open/x"))[0] for _ in range(3)]
    assert items == [200, 200, 200, 429] and doc["violated-policies"] == ["items.ip"]
    assert headers["RateLimit-Policy"] == '"ip";q=5;w=3600, "items.ip";q=3;w=3600'
    assert open_ == [200, 200, 429], "the denied /items requests used none of the global limit"


async def test_both_stages_share_the_fields_and_a_429_has_only_its_own(
    upstream: EchoUpstream, start_bastion: StartBastion, rules_config: RulesConfig
) -> None:
    limits = {"default": [{"key": "ip", "rate": "10/hour"}], "headers": "always"}
    proxy = await start_bastion(rules_config(upstream.url, auth=AUTH, rate_limits=limits))
    alice = {"Authorization": f"Bearer {token('alice')}"}
    _, ok, _ = await get(proxy, "/me", alice)
    await get(proxy, "/me", alice)
    _, limited, _ = await get(proxy, "/me", alice)
    assert ok.getall("RateLimit-Policy") == ['"ip";q=10;w=3600, "me.user";q=2;w=3600']
    assert ok.getall("RateLimit") == ['"ip";r=9;t=360, "me.user";r=1;t=1800']
    assert limited.getall("RateLimit") == ['"me.user";r=0;t=1800'] and limited["Retry-After"] == "1800"


def test_the_pipeline_order(upstream: EchoUpstream, rules_config: RulesConfig) -> None:
    from proxy.app import Bastion
    from proxy.logs import LogOutput

    output = LogOutput()
    try:
        names = [c.name for c in Bastion(rules_config(upstream.url, auth=AUTH), output).pipeline.checks]
    finally:
        output.close()
    wanted = ["rule_match", "client_limits", "login_guard", "authn", "identity_limits", "authorize"]
    assert [n for n in names if n in wanted] == wanted
    assert names.index("ingress") < names.index("rule_match")
